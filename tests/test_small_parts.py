"""Catalogue, sanitizer, config, time formatting."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smswatch import config
from smswatch.campaigns.analysis import country_of
from smswatch.core.domain import State
from smswatch.core.rejected import Rejected
from smswatch.gateways.base import parse_form
from smswatch.gateways.catalogue import catalogue, explain
from smswatch.gateways.twilio.webhook import dlr_time
from smswatch.sanitize import safe, safe_block
from smswatch.timefmt import age, iso, span, to_us


def test_catalogue_named_grouped_and_unknown_codes() -> None:
    named = explain("lisoloo", "1502")
    assert (named.name, named.group, named.retry) == (
        "SMS_REJECTED_BY_CARRIER",
        "Carrier / SMS processor",
        "no",
    )
    grouped = explain("lisoloo", "1504")
    assert (
        grouped.name is None
        and grouped.group == "Carrier / SMS processor"
        and grouped.retry == "maybe"
    )
    unknown = explain("lisoloo", "ABC")
    assert (unknown.name, unknown.retry) == (None, "unknown")
    assert explain("lisoloo", None) is None


def test_the_gateways_retryable_flag_overrides_the_catalogue() -> None:
    assert explain("lisoloo", "1503").retry == "maybe"
    assert explain("lisoloo", "1503", retryable=False).retry == "no"
    assert explain("lisoloo", "1503", retryable=False).source == "gateway"


def test_yebolink_codes_use_twilio_meanings_and_note_the_disagreement() -> None:
    info = explain("yebolink", "30008")
    assert info.name == "UNKNOWN_ERROR"
    assert "30005" in info.note
    assert explain("yebolink", "30006").retry == "no"
    assert explain("yebolink", "63016").group is None  # outside every range: passes through


def test_every_catalogue_entry_is_complete() -> None:
    for provider in ("lisoloo", "yebolink"):
        cat = catalogue(provider)
        assert cat.codes and cat.groups
        for code, entry in cat.codes.items():
            assert code.isdigit()
            assert entry["retry"] in ("yes", "no", "maybe")
            assert entry["name"] and entry["meaning"] and entry["action"]


def test_user_catalogue_files_add_codes(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "catalogue").mkdir()
    (tmp_path / "catalogue" / "lisoloo.toml").write_text(
        '[codes.1505]\nname = "CARRIER_BUSY"\nmeaning = "busy"\nretry = "yes"\naction = "later"\n'
    )
    monkeypatch.setenv("SMSWATCH_CONFIG_DIR", str(tmp_path))
    catalogue.cache_clear()
    try:
        assert explain("lisoloo", "1505").name == "CARRIER_BUSY"
        assert explain("lisoloo", "1502").name == "SMS_REJECTED_BY_CARRIER"
    finally:
        catalogue.cache_clear()


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("[bold red]x[/]", "[bold red]x[/]"),
        ("\x1b[31mred\x1b[0m", "␛[31mred␛[0m"),
        ("a\nb\rc\td", "a␤b␍c␉d"),
        ("\x07\x08\x9b", "\\u0007\\u0008\\u009b"),
        ("abc\u202edcba", "abc\\u202edcba"),
        ("+24399885\u200b7000", "+24399885\\u200b7000"),
        ("a\u200cb\u200dc\u2060d\ufeffe", "a\\u200cb\\u200dc\\u2060d\\ufeffe"),
        ("soft\u00adhyphen", "soft\\u00adhyphen"),
        ("heart\u2764\ufe0f", "heart\u2764\\ufe0f"),
        ("flag\U000e0067\U000e007f", "flag\\U000e0067\\U000e007f"),
        ("Z" + "\u0336" * 30 + "!", "Z\u0336\u0336[+28 marks]!"),
        ("Vie\u0302\u0301t", "Vie\u0302\u0301t"),  # two stacked marks are real text
        ("\u0301x", "\u25cc\u0301x"),
        ("Zodwa Dlamini-Nkosi 🌍 用户", "Zodwa Dlamini-Nkosi 🌍 用户"),
        (None, ""),
        (12, "12"),
    ],
)
def test_safe_neutralises_control_characters_and_keeps_the_rest(raw, shown) -> None:
    assert safe(raw) == shown


def test_safe_bounds_length() -> None:
    assert safe("x" * 10_000, 20) == "x" * 19 + "…"
    assert len(safe("\x1b" * 10_000, 50)) == 50
    assert safe_block('{\n  "a": "\x1b[2J"\n}') == '{\n  "a": "␛[2J"\n}'


def test_config_file_keys_and_stuck_table(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('port = 9000\nbasic-auth = "a:b"\n[stuck]\nsent = 60\n')
    loaded = config.load(path)
    assert loaded["port"] == 9000 and loaded["basic_auth"] == "a:b"
    assert config.stuck_deadlines(loaded)[State.SENT] == 60_000_000
    assert config.stuck_deadlines({})[State.QUEUED] == 300_000_000
    path.write_text("prot = 9000\n")
    with pytest.raises(config.ConfigError, match="unknown setting 'prot'"):
        config.load(path)
    path.write_text("[stuck]\ndelivered = 5\n")
    with pytest.raises(config.ConfigError):
        config.load(path)
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.load(tmp_path / "missing.toml")


def test_iso_and_span() -> None:
    assert iso(0) == "1970-01-01T00:00:00Z"
    assert iso(1_500_000) == "1970-01-01T00:00:01.500Z"
    assert iso(1_000_001) == "1970-01-01T00:00:01.000001Z"
    assert [span(x) for x in (850_000, 12_300_000, 245_000_000, 7_980_000_000)] == [
        "850ms",
        "12.3s",
        "4m05s",
        "2h13m",
    ]


def test_ages_move_by_the_second() -> None:
    now = 1_795_400_000_000_000
    assert [age(now, now - x) for x in (400_000, 12_300_000, 12_900_000, 75_000_000)] == [
        "0s",
        "12s",
        "12s",
        "1m15s",
    ]
    assert age(now, None) == "-"
    assert age(now, now + 5_000_000) == "0s"  # a clock that runs behind the event's


def test_a_count_agrees_with_its_noun() -> None:
    from smswatch.words import plural

    assert plural(1, "event") == "1 event"
    assert plural(0, "event") == "0 events"
    assert plural(12_345, "recipient") == "12,345 recipients"
    assert plural(1, "stretch", "stretches") == "1 stretch"
    assert plural(2, "stretch", "stretches") == "2 stretches"


def test_no_output_hedges_a_plural_or_hand_rolls_one() -> None:
    """Every count smswatch prints goes through words.plural: none says "1 event(s)", and none
    picks its own 's' (the way "1 calls" and "queued 1 failed forwards" came about)."""
    import re

    src = Path(__file__).parent.parent / "src" / "smswatch"
    hedged = re.compile(r"\}[^\"'{}]*\b(?!http\()[a-z]+\(s\)")  # f"{n} thing(s)", not http(s)
    hand_rolled = re.compile(r"""'s' if|"s" if|else 's'|else "s"|'' if [^:]*== 1 else""")
    found = [
        f"{path.relative_to(src)}:{number}: {line.strip()}"
        for path in src.rglob("*.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if hedged.search(line) or hand_rolled.search(line)
    ]
    assert not found, "\n".join(found)


# Raw non-ASCII beside halves of a percent-encoded character ("%C3", "%A9" beside "é", "©"):
# parse_form decodes a field's bytes in one go, parse_qsl each ASCII run apart.
_FORM_PIECES = ("a", "b", "=", "&", "+", "%2B", "%", "é", ";", "%C3%A9", "%ZZ", "%FF", "%e9")
_FORM_PIECES += ("%C3", "%A9", "©", "%E2%82", "€")
_FORM_TEXT = st.lists(st.sampled_from(_FORM_PIECES), max_size=30).map("".join)


@settings(max_examples=3000)
@given(_FORM_TEXT | st.binary(max_size=40))
def test_parse_form_reads_what_parse_qsl_reads_strictly(raw: str | bytes) -> None:
    """gateways.base.parse_form splits by itself and decodes only the encoded fields: it must
    agree with the standard library's strict reading on every body, refusals included."""
    body = raw.encode() if isinstance(raw, str) else raw
    try:
        text = body.decode("utf-8")
        expected = parse_qsl(
            text, keep_blank_values=True, strict_parsing=True, errors="strict", max_num_fields=256
        )
    except ValueError:
        expected = None
    try:
        got = parse_form(body)
    except Rejected as exc:
        assert exc.status == 400 and exc.code == "malformed_form"
        got = None
    assert got == expected


@settings(max_examples=2000)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=4))
def test_a_derived_event_id_is_the_uuid5_of_its_parts(parts: list[str]) -> None:
    """Ids stored by earlier versions must stay the ids of the same events."""
    import uuid

    from smswatch.gateways import base

    expected = str(uuid.uuid5(base._ID_NAMESPACE, "\x1f".join(parts)))
    assert base.derived_id(*parts) == expected


def test_parse_form_refuses_more_fields_than_its_bound() -> None:
    assert len(parse_form(b"&".join([b"a=1"] * 256))) == 256
    with pytest.raises(Rejected):
        parse_form(b"&".join([b"a=1"] * 257))


@settings(max_examples=2000)
@given(st.text(alphabet="0123456789", min_size=10, max_size=10) | st.text(max_size=12))
def test_twilio_dlr_time_reads_what_strptime_reads(value: str) -> None:
    """RawDlrDoneDate (YYMMDDhhmm, UTC), read by fields: the same as strptime's %y%m%d%H%M."""
    try:
        ok = len(value) == 10 and value.isascii() and value.isdigit()
        expected = to_us(datetime.strptime(value, "%y%m%d%H%M").replace(tzinfo=UTC)) if ok else None
    except ValueError:
        expected = None
    assert dlr_time(value) == expected


@pytest.mark.parametrize(
    ("prefix", "country"),
    [
        ("+2782", "+27"),
        ("27821", "+27"),  # Infobip, Plivo and Sinch write E.164 without the '+'
        ("41793", "+41"),
        ("14155", "+1"),
        ("00447", "+44"),
        ("08212", "other"),  # national: the country is not in the number
        ("", "other"),
        (None, "other"),
        ("+999x", "other"),
        ("abc", "other"),
    ],
)
def test_a_recipients_country_is_read_with_or_without_the_plus(
    prefix: str | None, country: str
) -> None:
    assert country_of(prefix) == country
