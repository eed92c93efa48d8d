"""What the reconciler reports to the hub (and so to every screen and viewer): plain data."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ReconcileStatus:
    gateways: tuple[str, ...]  # polled (they have a key)
    queued: dict[str, int] = field(default_factory=dict)  # polls waiting, per gateway
    polls: int = 0  # calls made since start
    swept: int = 0  # YeboLink list sweeps made (each one or more of those calls)
    missing: int = 0  # delivery reports the gateways have and the webhooks never brought
    messages_missing: int = 0  # messages with at least one
    recovered: int = 0  # recipients whose final state only a poll brought (YeboLink)
    last_error: str | None = None  # the last call that failed (no key in it)
    paused_until: int | None = None  # a 429 asked us to wait until then (µs)
    # Gateways another instance sharing the database polls (it holds their key's lease).
    standby: tuple[str, ...] = ()
    # Gateways with no status API (Africa's Talking): never polled, said so beside the others.
    unpolled: tuple[str, ...] = ()

    @property
    def waiting(self) -> int:
        return sum(self.queued.values())


@dataclass(frozen=True, slots=True)
class PollResult:
    message_id: str
    provider: str
    found: bool  # the gateway knows the message
    final: bool  # the gateway calls it final: no need to poll again
    stored: bool  # the answer was new (not the same as last time)
    error: str | None = None
    via: str = "id"  # asked about by its id, or read from the gateway's "list"
