"""Forwarding's values: a target, a job in the outbox, an attempt and its outcome, a
target's status and an event's forwarding timeline."""

from __future__ import annotations

from dataclasses import dataclass

from smswatch.core.domain import POLLED_PREFIX


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    gateways: frozenset[str] | None = None  # None: every gateway's events
    # Polled answers (poll.status, poll.message: the status APIs' bodies, not webhooks) go to
    # the app only with --forward-polled: forwards are otherwise the gateway's own requests.
    polled: bool = False

    def takes(self, provider: str, event_type: str) -> bool:
        if event_type.startswith(POLLED_PREFIX) and not self.polled:
            return False
        return self.gateways is None or provider in self.gateways


@dataclass(frozen=True, slots=True)
class Job:
    event: int  # log id
    target: str
    attempts: int  # before this one
    provider: str
    event_id: str
    message_id: str
    payload: str
    event_type: str


@dataclass(frozen=True, slots=True)
class Attempt:
    event: int
    target: str
    at: int
    status: int | None  # None: no answer (refused, timed out, reset)
    error: str | None
    ms: int | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to record of one attempt: delivered, or when to try again (None: give up)."""

    job: Job
    attempt: Attempt
    delivered: bool
    retry_at: int | None = None


@dataclass(frozen=True, slots=True)
class TargetStatus:
    target: str
    backlog: int  # events waiting for it: pending, and stored but not yet queued
    failed: int
    delivered: int
    delivered_recent: int  # in the last RECENT_S seconds
    last: Attempt | None  # the latest attempt
    failing_since: int | None  # the oldest failed attempt since the last delivery, if any
    # (last status or None for no answer, count) of the failed forwards, most frequent first
    failures_by_status: tuple[tuple[int | None, int], ...] = ()
    failed_attempts: int = 0  # attempts that failed since the last delivery


@dataclass(frozen=True, slots=True)
class Forward:
    """One event's forwarding to one target, for its timeline."""

    event: int
    target: str
    # pending (queued, or stored and not yet queued) | delivered | failed | not forwarded
    # (stored before the target was configured, or from a gateway it does not take)
    state: str
    attempts: tuple[Attempt, ...] = ()  # oldest first


RECENT_S = 5
