"""Regenerate sample_data/ (recorded webhook traffic for `smswatch replay` and the tests).

    .venv/bin/python scripts/make_sample_data.py

The campaign files come from the simulator with fixed seeds, in arrival order (so out of order
and with duplicate retries), each line an `export`-shaped record: provider, received_at, payload.
The edge-case file is written by hand below.
"""

from __future__ import annotations

import json
from pathlib import Path

from smswatch.devtools.simulate import SimConfig, plan_campaign
from smswatch.timefmt import iso

OUT = Path(__file__).resolve().parent.parent / "sample_data"
T0 = 1_795_000_000_000_000  # 2026-11-18T…Z: a fixed start so the files never change


def record(provider: str, at_us: int, payload: dict) -> str:
    return json.dumps(
        {"provider": provider, "received_at": iso(at_us), "payload": payload}, ensure_ascii=False
    )


def campaign(name: str, config: SimConfig) -> None:
    plan = plan_campaign(config, t0_us=T0)
    lines = [record(d.provider, T0 + int(d.due * 1e6), json.loads(d.body)) for d in plan.deliveries]
    (OUT / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with (OUT / f"{name}.truth.jsonl").open("w", encoding="utf-8") as f:
        for t in plan.truth:
            f.write(json.dumps(t.record()) + "\n")
    print(
        f"{name}: {len(lines)} deliveries, {plan.events} unique events, "
        f"{len(plan.truth)} recipients"
    )


ESC = "\x1b"
EDGE_MESSAGE = "e0e0e0e0e0e0e0e0e0e0e0e0"


def edge_cases() -> list[str]:
    t = T0
    out: list[str] = []

    def add(provider: str, payload: dict) -> None:
        nonlocal t
        t += 250_000
        out.append(record(provider, t, payload))

    def lisoloo(n: int, kind: str, data: dict, **envelope) -> dict:
        return {
            "event_id": f"00000000-0000-4000-8000-{n:012d}",
            "event_type": kind,
            "timestamp": iso(t),
            "message_id": EDGE_MESSAGE,
            "data": data,
            **envelope,
        }

    add(
        "lisoloo",
        lisoloo(
            1,
            "sms.queued",
            {
                "total_recipients": 5,
                "total_messages": 5,
                "total_cost": 0.1,
                "currency": "USD",
                "scheduled_at": None,
            },
        ),
    )
    # Markup and escapes in every kind of string field: they must show literally.
    add(
        "lisoloo",
        lisoloo(
            2, "sms.processing", {"recipient_phone": "+243810000001", "carrier": "[bold red]x[/]"}
        ),
    )
    add(
        "lisoloo",
        lisoloo(
            3,
            "sms.sent",
            {
                "recipient_phone": "+243810000001",
                "carrier": f"{ESC}[31mred{ESC}[0m",
                "sent_at": iso(t),
            },
        ),
    )
    add(
        "lisoloo",
        lisoloo(
            4,
            "sms.failed",
            {
                "recipient_phone": "+243810000001",
                "carrier": "vodacom_drc",
                "failed_at": iso(t),
                "error_code": "1599",
                "error_message": "Échec : numéro injoignable — 用户不可达 [bold red]x[/] "
                + f"{ESC}]0;pwned\x07{ESC}[2J",
                "retryable": False,
            },
        ),
    )
    # Missing optional fields: no carrier, no segments, no delivered_at (envelope time is used).
    add("lisoloo", lisoloo(5, "sms.delivered", {"recipient_phone": "+243810000002"}))
    # No timestamp at all: the receive time stands in, marked as estimated.
    payload = lisoloo(6, "sms.sent", {"recipient_phone": "+243810000003", "carrier": "airtel_drc"})
    del payload["timestamp"]
    add("lisoloo", payload)
    # An event type Lisoloo may add later: stored as unknown, never rejected.
    add(
        "lisoloo",
        lisoloo(
            7, "sms.undelivered", {"recipient_phone": "+243810000003", "reason": "handset off"}
        ),
    )
    # A right-to-left override and a very long value.
    add(
        "lisoloo",
        lisoloo(
            8,
            "sms.processing",
            {"recipient_phone": "+243810000004\u202eevil", "carrier": "x" * 5000},
        ),
    )
    # Unknown extra fields everywhere.
    add(
        "lisoloo",
        lisoloo(
            9,
            "sms.processing",
            {
                "recipient_phone": "+243810000005",
                "carrier": "orange_drc",
                "priority": "high",
                "route": {"id": 7},
            },
            api_version="v1.1",
        ),
    )

    def yebolink(kind: str, data: dict) -> dict:
        return {"event": kind, "timestamp": iso(t), "data": data}

    ymid = "9b2f4c1e-5d6a-4e7b-8c9d-0a1b2c3d4e5f"
    add(
        "yebolink",
        yebolink(
            "message.queued",
            {
                "message_id": ymid,
                "channel": "sms",
                "recipient": "+26876000001",
                "status": "queued",
                "credits_used": 2,
                "metadata": {
                    "name": "Zodwa Dlamini-Nkosi 🌍",
                    "note": "[link=https://example.invalid]click[/link]",
                    "vip": True,
                },
            },
        ),
    )
    add(
        "yebolink",
        yebolink(
            "message.delivered",
            {
                "message_id": ymid,
                "channel": "sms",
                "recipient": "+26876000001",
                "status": "delivered",
            },
        ),
    )
    add(
        "yebolink",
        yebolink(
            "message.read", {"message_id": ymid, "channel": "sms", "recipient": "+26876000001"}
        ),
    )
    add(
        "yebolink",
        yebolink(
            "message.failed",
            {
                "message_id": "1c7e9f3a-2b4d-4c6e-8a0b-112233445566",
                "channel": "whatsapp",
                "recipient": "+27820000002",
                "status": "failed",
                "error_code": "63016",
                "error_message": f"Outside the 24h window {ESC}[5mBLINK{ESC}[0m",
                "provider_message_id": "SMdeadbeef",
                "metadata": {},
            },
        ),
    )
    add(
        "yebolink",
        yebolink(
            "message.sent",
            {
                "message_id": "5e5e5e5e-0000-4000-8000-000000000003",
                "channel": "email",
                "recipient": "thandi@example.org",
                "status": "sent",
                "provider_message_id": None,
            },
        ),
    )
    return out


def main() -> None:
    OUT.mkdir(exist_ok=True)
    campaign(
        "lisoloo_campaign",
        SimConfig(
            provider="lisoloo",
            messages=6,
            recipients=40,
            fail_rate=0.12,
            duplicate_rate=0.08,
            seed=2026,
            spread=20,
        ),
    )
    campaign(
        "yebolink_bulk",
        SimConfig(
            provider="yebolink",
            messages=2,
            recipients=60,
            fail_rate=0.1,
            duplicate_rate=0.05,
            seed=31,
            spread=5,
        ),
    )
    lines = edge_cases()
    (OUT / "edge_cases.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"edge_cases: {len(lines)} lines")


if __name__ == "__main__":
    main()
