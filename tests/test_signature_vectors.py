"""Known answers for every credential scheme smswatch checks or makes.

The other tests sign with production `sign()`, so a wrong scheme would agree with itself. Here
each expected value is a literal: the published vector where the standard has one (RFC 4231
for HMAC-SHA256, RFC 7617 for Basic auth), else worked out once by hand with Python's hmac
and written down. YeboLink's documentation gives the scheme (lowercase hex HMAC-SHA256 of the
raw body, see docs/) but no worked example with a secret.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest
from multidict import CIMultiDict

from smswatch.config import Credentials
from smswatch.core.forwarding import Job, Target
from smswatch.core.rejected import Rejected
from smswatch.forward.config import ForwardConfig
from smswatch.forward.worker import Forwarder
from smswatch.gateways.lisoloo.webhook import Lisoloo
from smswatch.gateways.yebolink.webhook import YeboLink, sign
from smswatch.live.engine import Engine
from smswatch.store.sqlite.files import connect_log
from tests.conftest import SECRET, Client, running
from tests.fixtures.seeds import LISOLOO, YEBOLINK

# RFC 4231, test cases 1 and 2: (key, data, HMAC-SHA256).
RFC4231 = [
    (
        b"\x0b" * 20,
        b"Hi There",
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    ),
    (
        b"Jefe",
        b"what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
]
# The seed's message.delivered body keyed with tests.conftest.SECRET, worked out by hand.
SEED_SIGNATURE = "eabcbb41057a57bf2415fa591c0e7217ebe9f625b89ffc4b21f472fb395983bc"
# RFC 7617, section 2: user "Aladdin", password "open sesame".
ALADDIN = ("Aladdin", "open sesame")
ALADDIN_HEADER = "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="


@pytest.mark.parametrize(("key", "data", "mac"), RFC4231)
def test_yebolink_signatures_are_rfc_4231_hmac_sha256_in_lowercase_hex(
    key: bytes, data: bytes, mac: str
) -> None:
    assert sign(key, data) == mac
    yl = YeboLink(key.decode())
    yl.check_auth(CIMultiDict({"X-YeboLink-Signature": mac}), data)
    with pytest.raises(Rejected):
        yl.check_auth(CIMultiDict({"X-YeboLink-Signature": mac[:-1] + "0"}), data)


def test_yebolink_accepts_the_known_signature_and_its_documented_variants() -> None:
    yl = YeboLink("Jefe")
    data, mac = RFC4231[1][1], RFC4231[1][2]
    for given in (mac, mac.upper(), f"sha256={mac}", f" {mac} "):
        yl.check_auth(CIMultiDict({"X-YeboLink-Signature": given}), data)


def test_lisoloo_accepts_rfc_7617s_example_and_nothing_else() -> None:
    lis = Lisoloo(ALADDIN)
    lis.check_auth(CIMultiDict({"Authorization": ALADDIN_HEADER}), b"")
    # "Aladdin:open sesamd", "Aladdin:open"
    for wrong in ("Basic QWxhZGRpbjpvcGVuIHNlc2FtZA==", "Basic QWxhZGRpbjpvcGVu"):
        with pytest.raises(Rejected):
            lis.check_auth(CIMultiDict({"Authorization": wrong}), b"")


async def test_the_listener_takes_the_known_answers_over_http(
    make_engine: Callable[..., Engine], session
) -> None:
    eng = make_engine(credentials=Credentials(ALADDIN, SECRET))
    async with running(eng):
        client = Client(session, eng.listener.base_url)
        body = YEBOLINK["message.delivered"]
        status, _, answer = await client.post(
            "/webhooks/yebolink", body, {"X-YeboLink-Signature": SEED_SIGNATURE}
        )
        assert (status, answer["status"]) == (200, "stored")
        status, _, answer = await client.post(
            "/webhooks/lisoloo", LISOLOO["sms.sent"], {"Authorization": ALADDIN_HEADER}
        )
        assert (status, answer["status"]) == (200, "stored")


def test_the_forwarder_signs_and_authenticates_with_the_known_answers(tmp_path: Path) -> None:
    db = tmp_path / "fwd.db"
    with contextlib.closing(connect_log(db)):
        pass
    config = ForwardConfig(
        targets=(Target("http://127.0.0.1:9/"),), basic_auth=ALADDIN, secret="Jefe"
    )
    forwarder = Forwarder(db, config)  # not run: only the headers it would send are asked
    data = RFC4231[1][1].decode()
    yebolink = Job(1, "http://127.0.0.1:9/", 0, "yebolink", "e1", "m1", data, "message.delivered")
    headers = forwarder._headers(yebolink, data.encode(), None)
    assert headers["X-YeboLink-Signature"] == RFC4231[1][2]
    assert "Authorization" not in headers
    lisoloo = Job(2, "http://127.0.0.1:9/", 0, "lisoloo", "e2", "m2", "{}", "sms.delivered")
    headers = forwarder._headers(lisoloo, b"{}", None)
    assert headers["Authorization"] == ALADDIN_HEADER
    assert "X-YeboLink-Signature" not in headers
    # Credentials in the target's URL win, for every gateway.
    headers = forwarder._headers(yebolink, data.encode(), ALADDIN)
    assert headers["Authorization"] == ALADDIN_HEADER
