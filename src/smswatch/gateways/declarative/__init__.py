"""Gateways described in TOML files (`--gateway-file`, the `gateway_files` setting): a team's
own gateway without code. `load` reads and checks the files; `install` puts their gateways in
the registry beside the built-ins, where the listener, the screens, campaigns, exports and the
forwarder find them as they find a built-in one. They have no status API and no simulator
profile; their error codes can be explained by a catalogue in `<config dir>/catalogue/NAME.toml`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from smswatch.config import Credentials
from smswatch.gateways.base import (
    QUERY_MARK,
    Resigned,
    SimPlanner,
    form_body,
)
from smswatch.gateways.declarative.spec import GatewaySpec, SpecError, load_file, loads
from smswatch.gateways.declarative.webhook import VIA, DeclaredProvider, adapter_class

__all__ = [
    "DeclaredGateway",
    "GatewaySpec",
    "SpecError",
    "install",
    "load",
    "load_file",
    "loads",
    "shown_url",
]


class DeclaredGateway:
    """The `Gateway` (gateways/base.py) of one described gateway."""

    credential = None  # its secrets are in its file's [verify] (or the variables it names)
    reconcile_quiet_us = 300_000_000  # never polled: it has no status API

    def __init__(self, spec: GatewaySpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.title = spec.title
        self.adapter: type[DeclaredProvider] = adapter_class(spec)
        # What replay recognizes its recorded bodies by when a record names no provider: the
        # first key of its batch or its status path (built-ins are tried first).
        first = spec.batch or spec.paths["status"][0]
        self.envelope_key = first[1] if first[0] == "^" else first[0]
        self._provider = self.adapter()  # made once: a bad key fails at load, not per request

    def provider(self, credentials: Credentials) -> DeclaredProvider:
        return self._provider

    def status_api(self) -> None:
        return None

    def simulate(self, planner: SimPlanner, start: float) -> None:
        """Plans nothing: a gateway described in a file has no simulator profile (the demo
        and `simulate` play the built-ins' traffic)."""

    def sandbox(self) -> None:
        return None

    def resign(self, body: bytes, credentials: Credentials, url: str) -> Resigned:
        """As the gateway's own posts are checked by the file's verifier, when the file holds
        what signs them (a shared secret); an Ed25519 file holds only the public key, and a URL
        token travels in the target's URL, which is the team's to write."""
        spec = self.spec
        params = spec.verify.params
        method = spec.verify.method
        check = self._provider._check
        # A form goes as a form (the poster's default type is JSON); a query goes as a GET.
        typed = {} if body.startswith(QUERY_MARK) or _json_like(body) else dict(FORM_HEADER)
        if method == "basic-auth":
            return Resigned(basic_auth=(params["user"], params["secret"]), headers=typed)
        if method == "hmac":
            if params.get("over", "body") == "body":
                signed = body
            else:
                from smswatch.gateways import verifiers

                pairs = self._provider.signed_pairs(body)
                signed = (url + verifiers.sorted_params(pairs)).encode("utf-8", "surrogateescape")
            return Resigned(headers={**typed, check.header: check.header_value(signed)})
        if method == "jwt-hs256":
            raw = b"" if body.startswith(QUERY_MARK) else body
            full = url if not body.startswith(QUERY_MARK) else _with_query(url, body)
            return Resigned(headers={**typed, check.header: check.sign(full, raw)})
        return Resigned(headers=typed)

    def post_body(self, payload: str) -> bytes:
        """A stored event's payload as the gateway posts it: a report of a batch in a batch of
        its own (fields the batch had outside its reports, `^.` paths, are not in it), a form
        as a form, a query as the GET it came as."""
        if self.spec.body == "form":
            return form_body(payload)
        if self.spec.body == "query" and _via(payload):
            obj = json.loads(payload)
            via = obj.pop(VIA)
            form = form_body(json.dumps(obj))
            return QUERY_MARK + form if via == "query" else form
        if self.spec.batch is None:
            return payload.encode()
        wrapped: object = [json.loads(payload)]
        for part in reversed(self.spec.batch):
            wrapped = {part: wrapped}
        return json.dumps(wrapped, separators=(",", ":"), ensure_ascii=False).encode()


def _via(payload: str) -> bool:
    """A `query` gateway's payload that came as a query or a form (not as JSON)."""
    if VIA not in payload:
        return False
    obj = json.loads(payload)
    return isinstance(obj, dict) and VIA in obj


FORM_HEADER = {"Content-Type": "application/x-www-form-urlencoded"}


def _json_like(body: bytes) -> bool:
    return body.lstrip()[:1] in (b"{", b"[")


def _with_query(url: str, body: bytes) -> str:
    from smswatch.gateways.base import outgoing

    return outgoing(url, body)[1]


def shown_url(name: str, url: str) -> str:
    """`url` as a gateway from a file checked by a token in the URL is to call it, the token
    elided (`?token=…`), for a screen or a log; any other gateway's as it is."""
    from smswatch.gateways.registry import gateway

    found = gateway(name)
    if not isinstance(found, DeclaredGateway) or found.spec.verify.method != "url-token":
        return url
    param = found.spec.verify.params.get("param", "token")
    return f"{url}{'&' if '?' in url else '?'}{param}=…"


def load(paths: Iterable[Path]) -> list[DeclaredGateway]:
    """The gateways of these files, in order, each checked; two of one name are refused, and so
    is one named as a built-in. Raises SpecError (`FILE:LINE: reason`)."""
    from smswatch.gateways.registry import BUILT_IN

    out: list[DeclaredGateway] = []
    seen: dict[str, Path] = {}
    for path in paths:
        spec = load_file(Path(path))
        if spec.name in BUILT_IN:
            raise SpecError(f"{path}:1: name: {spec.name!r} is a built-in gateway's name")
        if spec.name in seen:
            raise SpecError(f"{path}:1: name: {spec.name!r} is {seen[spec.name]}'s too")
        seen[spec.name] = Path(path)
        try:
            out.append(DeclaredGateway(spec))
        except ValueError as exc:
            raise SpecError(f"{path}:1: verify: {exc}") from None
    return out


def install(paths: Iterable[Path]) -> list[DeclaredGateway]:
    """Load these files and put their gateways in the registry (after the built-ins), in
    place of any gateways from files installed before."""
    from smswatch.gateways import registry

    loaded = load(paths)
    for name in registry.file_gateways():
        registry.unregister(name)
    for gateway in loaded:
        registry.register(gateway)
    return loaded
