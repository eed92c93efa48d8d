"""Error-code catalogues as data: what a gateway's failure code means, whether to retry, and
whether the number itself is bad (the do-not-send list of `export --suppression`).

Each gateway's catalogue ships as `errors.toml` in its package (`gateways/<provider>/`), so a
new gateway brings its codes with it and this module knows none by name. A user can add or
override codes by putting a file of the same shape in `<config dir>/catalogue/<provider>.toml`
(an entry there replaces the shipped entry for that code as a whole). Unknown codes pass through
with their group's meaning when the code falls in a known range. Codes are numbers (Twilio's,
in ranges) or words (Africa's Talking's `failureReason`s, matched in any case).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from smswatch.paths import config_dir

HERE = Path(__file__).parent  # the gateways' packages, each with its errors.toml


@dataclass(frozen=True)
class ErrorInfo:
    provider: str
    code: str
    name: str | None  # None when the code is not in the catalogue
    group: str | None
    meaning: str
    retry: str  # yes | no | maybe | unknown
    action: str
    source: str  # documented | inferred | twilio | gateway | unknown
    note: str | None = None
    # The failure is about the number (bad, unknown, landline, blocked): never text it again.
    # Not implied by retry == "no", which also covers faults of the account or the sender.
    suppress: bool = False
    # Lower-case fragments of error_message that show a suppressing code's failure was not
    # about the number after all (one code covering several causes, like Lisoloo's 1502).
    keep_if_message: tuple[str, ...] = ()

    @property
    def known(self) -> bool:
        return self.name is not None

    @property
    def title(self) -> str:
        return self.name or (f"unknown {self.group} code" if self.group else "unknown code")


@dataclass(frozen=True)
class Catalogue:
    provider: str
    codes: dict[str, dict[str, Any]]
    groups: tuple[dict[str, Any], ...]

    def entry(self, code: str) -> dict[str, Any] | None:
        """A code's entry: as written, else, for a code that is a word, in any case (Africa's
        Talking documents `UserInBlackList`, its send API says `UserInBlacklist`)."""
        found = self.codes.get(code)
        if found is None and not code.isdigit():
            folded = code.casefold()
            found = next((v for k, v in self.codes.items() if k.casefold() == folded), None)
        return found

    def group_of(self, code: str) -> dict[str, Any] | None:
        if not code.isdigit():
            return None
        number = int(code)
        for group in self.groups:
            if group["from"] <= number <= group["to"]:
                return group
        return None


def _read(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)


@cache
def catalogue(provider: str) -> Catalogue:
    data: dict[str, Any] = {"codes": {}, "group": []}
    for path in (HERE / provider / "errors.toml", config_dir() / "catalogue" / f"{provider}.toml"):
        if path.is_file():
            extra = _read(path)
            data["codes"].update({str(k): v for k, v in extra.get("codes", {}).items()})
            data["group"].extend(extra.get("group", []))
    return Catalogue(provider, data["codes"], tuple(data["group"]))


def explain(provider: str, code: str | None, retryable: bool | None = None) -> ErrorInfo | None:
    """What a failure code means. The gateway's own `retryable` flag, when the event has one,
    overrides the catalogue's verdict."""
    if not code:
        return None
    cat = catalogue(provider)
    entry = cat.entry(code)
    group = cat.group_of(code)
    group_name = group["name"] if group else None
    if entry:
        info = ErrorInfo(
            provider=provider,
            code=code,
            name=entry["name"],
            group=group_name,
            meaning=entry.get("meaning", ""),
            retry=entry.get("retry", "unknown"),
            action=entry.get("action", ""),
            source=entry.get("source", "documented"),
            note=entry.get("note"),
            # `is True`: a user file's `suppress = "no"` must not put numbers on the list.
            suppress=entry.get("suppress") is True,
            keep_if_message=_fragments(entry.get("keep_if_message")),
        )
    elif group:
        info = ErrorInfo(
            provider=provider,
            code=code,
            name=None,
            group=group_name,
            meaning=f"Not named in the catalogue; in the {group_name} range.",
            retry=group.get("retry", "unknown"),
            action=group.get("action", ""),
            source=group.get("source", "inferred"),
        )
    else:
        info = ErrorInfo(
            provider=provider,
            code=code,
            name=None,
            group=None,
            meaning="Not in smswatch's catalogue.",
            retry="unknown",
            action="See the gateway's documentation for this code.",
            source="unknown",
        )
    if retryable is not None:
        verdict = "yes" if retryable else "no"
        if verdict != info.retry:
            info = replace(info, retry=verdict, source="gateway")
        if retryable and info.suppress:
            # A gateway that says sending again can succeed also says the number is not dead.
            info = replace(info, suppress=False)
    return info


def suppressible(
    provider: str, code: str | None, error_message: str | None, retryable: bool | None
) -> bool:
    """Whether a failure means the recipient should never be texted again: the catalogue marks
    the code `suppress`, the gateway did not call it retryable, and the message does not show
    one of the code's causes that are not about the number (`keep_if_message`)."""
    info = explain(provider, code, retryable)
    if info is None or not info.suppress:
        return False
    text = (error_message or "").casefold()
    return not any(fragment in text for fragment in info.keep_if_message)


def _fragments(value: Any) -> tuple[str, ...]:
    """`keep_if_message` as case-folded fragments. A lone string (a user file's slip for a
    one-item list) counts as one fragment, not as its letters; blank ones would match any
    message and are dropped."""
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return tuple(v.casefold() for v in items if isinstance(v, str) and v.strip())
