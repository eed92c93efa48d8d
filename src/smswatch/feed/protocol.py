"""The feed's wire format: JSON text frames, one object each, with a `type`.

Server → client: `hello` (who is speaking), `snapshot` (everything to draw), `delta` (one per hub
tick), `resync` (the client fell behind: its queued deltas were dropped and a snapshot follows),
`reply` (the answer to a query). Client → server: `query`.

The payloads are the domain dataclasses themselves (Snapshot, Delta, MessageDetail, …),
serialized by pydantic: enums as their values, dicts keyed by state as {"queued": n, …}, bytes
(rejected bodies) as base64. docs/feed-protocol.md describes it for other clients.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

from smswatch.campaigns.analysis import CampaignView
from smswatch.core.campaigns import Summary
from smswatch.core.domain import MessageState, State
from smswatch.core.figures import FailureGroup
from smswatch.core.live import Delta
from smswatch.core.records import Rejection, StoredEvent
from smswatch.exports.suppression import Suppressed
from smswatch.source.api import (
    Forwards,
    MessageDetail,
    RecipientDetail,
    Snapshot,
    SourceInfo,
    Stuck,
)

PROTOCOL_VERSION = 1


class Frame(BaseModel):
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")


class Hello(Frame):
    type: Literal["hello"] = "hello"
    protocol: int = PROTOCOL_VERSION
    server: str  # smswatch version
    info: SourceInfo


class SnapshotFrame(Frame):
    type: Literal["snapshot"] = "snapshot"
    data: Snapshot


class DeltaFrame(Frame):
    type: Literal["delta"] = "delta"
    data: Delta


class Resync(Frame):
    type: Literal["resync"] = "resync"
    reason: str


class Reply(Frame):
    type: Literal["reply"] = "reply"
    id: int
    ok: bool
    result: Any = None
    error: str | None = None


class Query(Frame):
    type: Literal["query"] = "query"
    id: int
    method: str
    params: dict[str, Any] = {}


ServerFrame = Annotated[
    Hello | SnapshotFrame | DeltaFrame | Resync | Reply, Field(discriminator="type")
]
SERVER_FRAME: TypeAdapter[Any] = TypeAdapter(ServerFrame)
QUERY: TypeAdapter[Query] = TypeAdapter(Query)


# --- queries: the methods a client may call, their parameters and their result type -----------


def _params(method: str, **fields: Any) -> type[Frame]:
    return create_model(f"{method.title()}Params", __base__=Frame, **fields)


def _result(name: str, tp: Any) -> type[Frame]:
    return create_model(f"{name.title()}Result", __base__=Frame, value=(tp, ...))


MAX_LIMIT = 10_000  # no query may ask for more rows than this

METHODS: dict[str, tuple[type[Frame], type[Frame]]] = {
    "messages": (
        _params("messages", query=(str, ""), failed_only=(bool, False), limit=(int, 200)),
        _result("messages", list[MessageState]),
    ),
    "message": (
        _params(
            "message",
            message_id=(str, ...),
            query=(str, ""),
            failed_only=(bool, False),
            limit=(int, 5000),
        ),
        _result("message", MessageDetail | None),
    ),
    "recipient": (
        _params("recipient", message_id=(str, ...), recipient=(str, ...)),
        _result("recipient", RecipientDetail | None),
    ),
    "failures": (_params("failures", limit=(int, 20)), _result("failures", list[FailureGroup])),
    "stuck": (
        _params("stuck", deadlines=(dict[State, int], ...), now=(int, ...), limit=(int, 20)),
        _result("stuck", Stuck),
    ),
    "rejections": (_params("rejections", limit=(int, 50)), _result("rejections", list[Rejection])),
    "events": (
        _params("events", after=(int, 0), limit=(int, 1000)),
        _result("events", list[StoredEvent]),
    ),
    "forwards": (
        _params("forwards", events=(Annotated[list[int], Field(max_length=MAX_LIMIT)], ...)),
        _result("forwards", Forwards),
    ),
    "campaigns": (_params("campaigns"), _result("campaigns", list[Summary])),
    "campaign": (
        _params("campaign", name=(str, ...), deadlines=(dict[State, int], ...), now=(int, ...)),
        _result("campaign", CampaignView | None),
    ),
    "campaign_messages": (
        _params(
            "campaign_messages",
            name=(str, ...),
            failed_only=(bool, False),
            limit=(Annotated[int, Field(ge=1, le=MAX_LIMIT)], 500),
        ),
        _result("campaign_messages", list[MessageState]),
    ),
    "suppressed": (
        _params("suppressed", campaign=(str | None, None)),
        _result("suppressed", list[Suppressed]),
    ),
}


def encode_result(method: str, value: Any) -> Any:
    """A query's result as JSON-ready data."""
    return METHODS[method][1](value=value).model_dump(mode="json")["value"]


def decode_result(method: str, data: Any) -> Any:
    return METHODS[method][1].model_validate({"value": data}).value
