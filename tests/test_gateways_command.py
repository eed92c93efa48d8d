"""`smswatch gateways`: every gateway, built in then from files, with its route, how it is
verified with the credentials given, whether it polls, and the URL for its console (from
--public-url, else the listen address); --json; the `gateway_files` setting, relative to the
config file; a bad file refused with its line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from smswatch.cli import main
from smswatch.gateways import registry
from smswatch.gateways.registry import BUILT_IN, GATEWAYS

EXAMPLES = Path(__file__).parent.parent / "docs" / "gateway-files"
ENV = {"SMSWATCH_BIRD_SIGNING_KEY": "b" * 32, "SMSWATCH_KANNEL_TOKEN": "kannel-secret-token"}


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    """The command registers its files in this process's registry: taken out after each test."""
    yield
    for name in registry.file_gateways():
        registry.unregister(name)


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, ["gateways", *args], env={**ENV, **(env or {})})


def listed(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run(*args, "--json", env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_every_built_in_is_listed_in_order_with_its_route_and_url() -> None:
    shown = listed("--host", "127.0.0.1", "--port", "9000")
    assert shown["base_url"] == "http://127.0.0.1:9000"
    records = shown["gateways"]
    assert [r["name"] for r in records] == [n for n in GATEWAYS if n in BUILT_IN]
    for r in records:
        assert r["source"] == "built-in"
        assert r["route"] == f"/webhooks/{r['name']}"
        assert r["url"] == f"http://127.0.0.1:9000/webhooks/{r['name']}"
        assert r["verified"] is False  # no credentials given
        assert r["polls"] is (GATEWAYS[r["name"]].status_api() is not None)
        assert r["polled"] is False  # no API key given
    by = {r["name"]: r for r in records}
    assert by["twilio"]["body"] == "form" and by["lisoloo"]["body"] == "json"
    assert by["lisoloo"]["polls"] and not by["africastalking"]["polls"]


def test_the_api_keys_given_say_which_gateways_are_polled(tmp_path: Path) -> None:
    # A key as a flag, one in the environment, one in the config file: as `serve` takes them.
    config = tmp_path / "smswatch.toml"
    config.write_text('vonage_api_key = "abcd1234"\nvonage_api_secret = "vonage-secret"\n')
    shown = listed(
        "--config",
        str(config),
        "--telnyx-api-key",
        "KEY-telnyx-0001",
        env={
            "SMSWATCH_LISOLOO_APP_KEY": "lisoloo-key",
            "SMSWATCH_LISOLOO_API_URL": "https://api.lisoloo.example",
        },
    )
    by = {r["name"]: r for r in shown["gateways"]}
    assert {n for n, r in by.items() if r["polled"]} == {"telnyx", "lisoloo", "vonage"}
    assert not by["africastalking"]["polls"] and not by["africastalking"]["polled"]
    assert "KEY-telnyx-0001" not in json.dumps(shown) and "vonage-secret" not in json.dumps(shown)
    table = run("--telnyx-api-key", "KEY-telnyx-0001", env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    lines = {line.split("│")[1].strip(): line for line in table.output.splitlines() if "│" in line}
    assert "│ yes " in lines["Telnyx (telnyx)"]
    assert "no key given" in lines["Infobip (infobip)"]
    assert "no status API" in lines["Africa's Talking (africastalking)"]


def test_credentials_make_gateways_verified_and_a_token_shows_elided() -> None:
    secret = "at-secret-token-0042"
    shown = listed(
        "--public-url",
        "https://hooks.example.com/sms",
        "--basic-auth",
        "ops:pw",
        "--africastalking-token",
        secret,
    )
    assert shown["base_url"] == "https://hooks.example.com/sms"
    by = {r["name"]: r for r in shown["gateways"]}
    assert by["lisoloo"]["verified"] and "ops" in by["lisoloo"]["verification"]
    assert by["africastalking"]["url"] == (
        "https://hooks.example.com/sms/webhooks/africastalking?token=…"
    )
    assert secret not in json.dumps(shown)
    assert not by["yebolink"]["verified"]


def test_gateways_from_files_follow_the_built_ins() -> None:
    shown = listed(
        "--gateway-file",
        str(EXAMPLES / "bird.toml"),
        "--gateway-file",
        str(EXAMPLES / "kannel.toml"),
        "--port",
        "8787",
    )
    records = shown["gateways"]
    assert [r["name"] for r in records[-2:]] == ["bird", "kannel"]
    bird, kannel = records[-2:]
    assert bird["source"] == str(EXAMPLES / "bird.toml")
    assert (bird["verified"], bird["polls"], bird["body"]) == (True, False, "query_form_json")
    assert "JWT HS256" in bird["verification"] and bird["console"]
    assert bird["url"] == "http://127.0.0.1:8787/webhooks/bird"
    assert kannel["url"] == "http://127.0.0.1:8787/webhooks/kannel?token=…"
    assert ENV["SMSWATCH_KANNEL_TOKEN"] not in json.dumps(shown)
    assert ENV["SMSWATCH_BIRD_SIGNING_KEY"] not in json.dumps(shown)


def test_the_table_names_each_gateway_its_verification_and_url() -> None:
    result = run(
        "--gateway-file",
        str(EXAMPLES / "kannel.toml"),
        "--public-url",
        "https://hooks.example.com",
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    out = result.output
    for text in (
        "Twilio (twilio)",
        "Kannel (kannel)",
        "kannel.toml",
        "built-in",
        "https://hooks.example.com/webhooks/kannel?token=…",
        "token in the URL",
    ):
        assert text in out, text


def test_the_setting_names_files_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "conf"
    (here / "gw").mkdir(parents=True)
    (here / "gw" / "kannel.toml").write_text((EXAMPLES / "kannel.toml").read_text())
    config = here / "smswatch.toml"
    config.write_text('gateway_files = ["gw/kannel.toml"]\nport = 9100\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    shown = listed("--config", str(config))
    assert shown["gateways"][-1]["name"] == "kannel"
    assert shown["gateways"][-1]["source"] == str(here / "gw" / "kannel.toml")
    assert shown["base_url"] == "http://127.0.0.1:9100"
    # And through the root's --config, as the monitor and serve read it.
    result = CliRunner().invoke(main, ["--config", str(config), "gateways", "--json"], env=ENV)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["gateways"][-1]["name"] == "kannel"


def test_a_bad_file_stops_the_start_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "acme"\n[report]\nstatus = "s"\n[status]\nok = "arrived"\n')
    for args in (
        ["gateways", "--gateway-file", str(bad)],
        ["serve", "--db", str(tmp_path / "x.db"), "--gateway-file", str(bad)],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output
        assert f"{bad}:5: status.ok: must be one of our states" in result.output
    assert not registry.file_gateways()
    missing = CliRunner().invoke(main, ["gateways", "--gateway-file", str(tmp_path / "no.toml")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    from_env = CliRunner().invoke(main, ["gateways"], env={"SMSWATCH_GATEWAY_FILES": str(bad)})
    assert from_env.exit_code == 2
    assert from_env.output.startswith("smswatch: SMSWATCH_GATEWAY_FILES: "), from_env.output
    unset = run(
        "--gateway-file", str(EXAMPLES / "bird.toml"), env={"SMSWATCH_BIRD_SIGNING_KEY": ""}
    )
    assert unset.exit_code == 2 and "SMSWATCH_BIRD_SIGNING_KEY is not set" in unset.output


def test_it_is_a_listed_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert "gateways" in result.output
    help_text = CliRunner().invoke(main, ["serve", "--help"]).output
    assert "--gateway-file" in help_text
