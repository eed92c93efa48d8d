"""What to forward where, and how hard to try."""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from smswatch import gateways as providers
from smswatch.config import Credentials
from smswatch.core.forwarding import Target


class ForwardConfigError(ValueError):
    pass


@dataclass(frozen=True)
class ForwardConfig:
    targets: tuple[Target, ...]
    # What the gateways re-sign their forwards with (each takes the one its posts carry).
    basic_auth: tuple[str, str] | None = None
    secret: str | None = None
    tokens: dict[str, str] = field(default_factory=dict)  # the gateways' own, by setting
    timeout: float = 10.0  # seconds for the app's whole answer
    concurrency: int = 8  # requests in flight to one target
    max_attempts: int = 25  # then the forward is `failed` (resend by hand)
    retry_4xx: bool = False  # a 4xx other than 408/425/429 is final unless this is set
    base_delay: float = 1.0
    max_delay: float = 300.0
    nice: int = 10
    headers: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        data["targets"] = [
            {
                "url": t.url,
                "gateways": sorted(t.gateways) if t.gateways else None,
                "polled": t.polled,
            }
            for t in self.targets
        ]
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ForwardConfig:
        data: dict[str, Any] = json.loads(text)
        data["targets"] = tuple(
            Target(t["url"], frozenset(t["gateways"] or ()) or None, t.get("polled", False))
            for t in data["targets"]
        )
        if data.get("basic_auth"):
            data["basic_auth"] = tuple(data["basic_auth"])
        return cls(**data)

    def credentials(self) -> Credentials:
        """What each gateway re-signs its forwards with (`Gateway.resign`)."""
        return Credentials(self.basic_auth, self.secret, self.tokens)

    def retryable(self, status: int | None) -> bool:
        """Whether an answer is worth another attempt (None: no answer at all)."""
        if status is None or status >= 500 or status in (408, 425, 429):
            return True
        return 400 <= status < 500 and self.retry_4xx

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds before attempt `attempts + 1`: exponential, capped, with full jitter over its
        upper half (so many failed forwards do not all come back at once); at least what the
        app asked for with Retry-After."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** max(attempts - 1, 0))
        wait = ceiling * random.uniform(0.5, 1.0)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait


def parse_targets(values: tuple[str, ...] | list[str], polled: bool = False) -> tuple[Target, ...]:
    """`URL` (every gateway's events) or `GATEWAY=URL`, repeatable; one target per URL.
    `polled`: the targets take the polled answers too (--forward-polled)."""
    by_url: dict[str, set[str] | None] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if sep and not name.startswith(("http://", "https://")):
            if name not in providers.NAMES:
                known = ", ".join(sorted(providers.NAMES))
                raise ForwardConfigError(
                    f"--forward-to {value}: unknown gateway {name!r} ({known})"
                )
            url, gateways = rest, {name}
        else:
            url, gateways = value, None
        if not url.startswith(("http://", "https://")):
            raise ForwardConfigError(f"--forward-to {value}: the target must be an http(s) URL")
        if url in by_url:
            seen = by_url[url]
            by_url[url] = None if seen is None or gateways is None else seen | gateways
        else:
            by_url[url] = gateways
    return tuple(
        Target(url, frozenset(gws) if gws is not None else None, polled)
        for url, gws in by_url.items()
    )
