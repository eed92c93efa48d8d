"""The registry is the one place a gateway is named: each registered gateway brings every part
under its own name (adapter, status API, simulator profile, sandbox, error catalogue), and the
views the listener uses (`NAMES`, `ADAPTERS`, `build`) follow it."""

from __future__ import annotations

from pathlib import Path

from smswatch import gateways
from smswatch.config import Credentials
from smswatch.gateways.catalogue import catalogue
from smswatch.gateways.registry import GATEWAYS, gateway


def test_every_part_of_a_gateway_carries_its_name() -> None:
    for name, g in GATEWAYS.items():
        assert g.name == name == g.adapter.name
        assert g.title == g.adapter.title
        assert g.provider(Credentials()).name == name
        api = g.status_api()
        assert api is None or api.name == name
        sandbox = g.sandbox()
        assert sandbox is None or sandbox.name == name


def test_every_gateway_ships_its_error_catalogue() -> None:
    for name in GATEWAYS:
        errors = Path(gateways.__file__).parent / name / "errors.toml"
        assert errors.is_file()
        assert catalogue(name).codes


def test_the_listeners_views_follow_the_registry() -> None:
    assert tuple(GATEWAYS) == gateways.NAMES
    assert list(gateways.ADAPTERS) == list(GATEWAYS)
    assert list(gateways.build(Credentials())) == list(GATEWAYS)
    assert gateway("no-such-gateway") is None
