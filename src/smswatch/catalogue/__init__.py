"""Error-code catalogues as data: what a gateway's failure code means and whether to retry.

The catalogues ship as TOML next to this module. A user can add or override codes by putting a
file of the same shape in `<config dir>/catalogue/<provider>.toml`. Unknown codes pass through
with their group's meaning when the code falls in a known range.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from smswatch.paths import config_dir

HERE = Path(__file__).parent


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
    for path in (HERE / f"{provider}.toml", config_dir() / "catalogue" / f"{provider}.toml"):
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
    entry = cat.codes.get(code)
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
            info = ErrorInfo(**{**info.__dict__, "retry": verdict, "source": "gateway"})
    return info
