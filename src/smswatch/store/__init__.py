"""Durable storage: schema, the group-commit writer, and read queries."""

from smswatch.store.reader import NoDatabase, Reader
from smswatch.store.rows import Rejection, StoredEvent
from smswatch.store.writer import (
    Commit,
    Outcome,
    StoreUnavailable,
    Transition,
    Unstorable,
    Writer,
)

__all__ = [
    "Commit",
    "NoDatabase",
    "Outcome",
    "Reader",
    "Rejection",
    "StoreUnavailable",
    "StoredEvent",
    "Transition",
    "Unstorable",
    "Writer",
]
