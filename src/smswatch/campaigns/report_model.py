"""What a report holds (report.py gathers it; report_html.py and report_md.py write it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smswatch.campaigns.analysis import CampaignView
from smswatch.core.campaigns import CarrierRow, Series, Summary
from smswatch.core.domain import State
from smswatch.core.figures import FailureGroup
from smswatch.gateways.catalogue import ErrorInfo

SILENCE_US = 60_000_000  # nothing happening for this long while recipients wait is a silence
OPEN_STATES = (State.QUEUED, State.PROCESSING, State.SENT)


@dataclass(frozen=True, slots=True)
class Silence:
    """Nothing happened to the campaign from `start` to `end` (event time) while `waiting`
    recipients were not final; `end` None: nothing since, when the report was made."""

    start: int
    end: int | None
    waiting: int

    def length(self, now: int) -> int:
        return (self.end if self.end is not None else now) - self.start


@dataclass(frozen=True, slots=True)
class Anomalies:
    silences: tuple[Silence, ...]  # the longest MAX_SILENCES, in time order
    silence_count: int
    rejections: tuple[tuple[str, int], ...]  # (rejection code, requests), most first
    conflicts: int  # recipients reported both delivered and failed
    stuck: int  # recipients past their state's deadline
    falling: tuple[CarrierRow, ...]  # carriers whose delivery rate fell mid-campaign

    @property
    def rejected(self) -> int:
        return sum(n for _, n in self.rejections)

    @property
    def any(self) -> bool:
        return bool(
            self.silence_count or self.rejections or self.conflicts or self.stuck or self.falling
        )


@dataclass(frozen=True, slots=True)
class Timeline:
    """Over the campaign's whole span, per bucket: recipients sent (by when they were), and
    delivered and failed (where each ended, by when it did)."""

    sent: Series
    delivered: Series
    failed: Series

    @property
    def start(self) -> int:
        return self.sent.start

    @property
    def step(self) -> int:
        return self.sent.step


@dataclass(frozen=True, slots=True)
class Report:
    title: str  # the campaign's name (untrusted: it may come from a sender's metadata)
    campaign: str | None  # as asked for; None: the whole database
    database: str  # for the header: a path, or a URL without its password
    generated_at: int
    figures: dict[str, Any]  # `smswatch stats [--campaign NAME] --json`, exactly
    view: CampaignView
    failures: tuple[tuple[FailureGroup, ErrorInfo | None], ...]  # stats' failures + advice
    timeline: Timeline | None  # None: nothing happened yet
    latency: dict[str, list[int]]  # samples (µs) per leg, as the percentiles are made of
    anomalies: Anomalies
    first_event_at: int | None
    last_event_at: int | None

    @property
    def summary(self) -> Summary:
        return self.view.summary
