"""Vonage: its SMS API delivery receipts (a GET's query, a form or JSON, signed by `sig`) and its
Messages API status callbacks (JSON, signed by a JWT) on one route, its Reports API, its error
codes (errors.toml)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from smswatch.config import Credentials
from smswatch.gateways.base import Resigned, SimPlanner
from smswatch.gateways.vonage.sim import plan_message
from smswatch.gateways.vonage.webhook import (
    DEFAULT_METHOD,
    FORM,
    FORM_TYPE,
    JSON,
    JSON_TYPE,
    QUERY,
    SIGNATURE_FIELDS,
    Vonage,
    bearer,
    is_status,
    post_fields,
    received,
    sign_fields,
    signed_pairs,
    wire_body,
)

if TYPE_CHECKING:
    from smswatch.gateways.vonage.api import VonageApi
    from smswatch.gateways.vonage.sandbox import VonageSandbox

# Its settings in core.credentials.GATEWAY_CREDENTIALS: the signature secret (the dashboard's
# "Signature secret", which signs receipts and keys the Messages API's JWTs) and how receipts
# are signed by it (the dashboard's "Signature method").
CREDENTIAL = "vonage_signature_secret"
METHOD = "vonage_signature_method"


class VonageGateway:
    name = Vonage.name
    title = Vonage.title
    adapter = Vonage
    envelope_key = "messageId"
    credential = CREDENTIAL
    # Vonage retries a receipt it could not deliver for hours (and makes an `expired` one
    # itself after 72 h without the carrier's), and each Reports API lookup is charged: a
    # message is looked up only after a quarter of an hour without news.
    reconcile_quiet_us = 900_000_000

    def provider(self, credentials: Credentials) -> Vonage:
        return Vonage(credentials.token(CREDENTIAL), credentials.token(METHOD))

    def status_api(self) -> type[VonageApi]:
        from smswatch.gateways.vonage.api import VonageApi

        return VonageApi

    def simulate(self, planner: SimPlanner, start: float) -> None:
        plan_message(planner, start)

    def sandbox(self) -> type[VonageSandbox]:
        from smswatch.gateways.vonage.sandbox import VonageSandbox

        return VonageSandbox

    def resign(self, body: bytes, credentials: Credentials, url: str) -> Resigned:
        # Signed as Vonage signs, with the secret the app verifies Vonage's by: a receipt with
        # a fresh timestamp, nonce and sig (the method the dashboard's and the app's), a
        # Messages API callback with a fresh JWT over the body as forwarded.
        seen = received(body)
        headers = (
            {}
            if seen.via == QUERY
            else {"Content-Type": FORM_TYPE if seen.via == FORM else JSON_TYPE}
        )
        secret = credentials.token(CREDENTIAL)
        if secret is None:
            return Resigned(headers=headers)
        now = time.time()
        if seen.via == JSON and is_status(seen.obj):
            headers["Authorization"] = f"Bearer {bearer(secret, body, now)}"
            return Resigned(headers=headers)
        method = credentials.token(METHOD) or DEFAULT_METHOD
        pairs = sign_fields(secret, method, signed_pairs(seen), now)
        if seen.via != JSON:
            return Resigned(headers=headers, body=wire_body(seen.via, pairs))
        obj = {k: v for k, v in seen.obj.items() if k not in SIGNATURE_FIELDS}
        obj.update(pairs[-3:])  # timestamp, nonce, sig
        signed = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
        return Resigned(headers=headers, body=signed)

    def post_body(self, payload: str) -> bytes:
        via, pairs = post_fields(payload)
        return payload.encode() if pairs is None else wire_body(via, pairs)


GATEWAY = VonageGateway()
