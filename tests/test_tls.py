"""Built-in TLS: the listener serves HTTPS itself, with a self-signed certificate made here."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from smswatch import gateways
from smswatch.config import Credentials
from smswatch.gateways.yebolink.webhook import sign
from smswatch.ingest.http import TLSError
from smswatch.ingest.webhooks import Listener, ListenerConfig
from smswatch.live.engine import Engine
from smswatch.live.hub import Hub
from smswatch.store.sqlite.reader import Reader
from tests.conftest import BASIC, SECRET, basic_header, running
from tests.fixtures.seeds import LISOLOO, YEBOLINK
from tests.helpers import SMSWATCH, free_port, run


def write_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return key


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost and its key, as PEM files, made
    in Python so that no TLS test depends on an `openssl` command being installed."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key_file = folder / "cert.pem", folder / "key.pem"
    key = write_key(key_file)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return cert, key_file


def trusting(cert: Path) -> ssl.SSLContext:
    """A client context that trusts only the test's certificate, and checks the host name."""
    return ssl.create_default_context(cafile=str(cert))


async def test_a_signed_webhook_over_https_is_stored(
    make_engine: Callable[..., Engine], cert: tuple[Path, Path], db_path: Path
) -> None:
    eng = make_engine(credentials=Credentials(BASIC, SECRET), tls_cert=cert[0], tls_key=cert[1])
    async with running(eng), aiohttp.ClientSession() as session:
        base = eng.listener.base_url
        assert base == f"https://127.0.0.1:{eng.listener.port}"
        assert eng.listener.url("yebolink") == base + "/webhooks/yebolink"
        assert {g.url.split(":")[0] for g in eng.gateways()} == {"https"}
        context = trusting(cert[0])
        body = YEBOLINK["message.delivered"].encode()
        async with session.post(
            eng.listener.url("yebolink"),
            data=body,
            headers={"X-YeboLink-Signature": sign(SECRET, body)},
            ssl=context,
        ) as resp:
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["status"] == "stored"
        # Basic auth, and a kept-alive second request on the same TLS connection.
        for _ in range(2):
            async with session.post(
                eng.listener.url("lisoloo"),
                data=LISOLOO["sms.sent"],
                headers={"Authorization": basic_header(*BASIC)},
                ssl=context,
            ) as resp:
                assert resp.status == 200
        async with session.get(base + "/healthz", ssl=context) as resp:
            assert (await resp.json())["status"] == "ok"
        async with session.post(eng.listener.url("lisoloo"), data=b"{}", ssl=context) as resp:
            assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Basic")
    async with await Reader.open(db_path) as r:
        assert sorted([e.provider async for e in r.iter_events()]) == ["lisoloo", "yebolink"]


async def test_pipelined_requests_over_tls(
    make_engine: Callable[..., Engine], cert: tuple[Path, Path]
) -> None:
    eng = make_engine(tls_cert=cert[0], tls_key=cert[1])
    async with running(eng):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", eng.listener.port, ssl=trusting(cert[0]), server_hostname="127.0.0.1"
        )
        bodies = [
            json.dumps(
                {"event_id": f"tls-{i}", "event_type": "sms.sent", "message_id": "m", "data": {}}
            ).encode()
            for i in range(3)
        ]
        writer.write(
            b"".join(
                b"POST /webhooks/lisoloo HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b)
                for b in bodies
            )
        )
        ids = []
        for _ in bodies:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200 ")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            ids.append(json.loads(await reader.readexactly(length))["event_id"])
        writer.close()
    assert ids == ["tls-0", "tls-1", "tls-2"]


async def test_plain_http_on_the_tls_port_gets_no_http_answer(
    make_engine: Callable[..., Engine], cert: tuple[Path, Path]
) -> None:
    async with running(make_engine(tls_cert=cert[0], tls_key=cert[1])) as eng:
        reader, writer = await asyncio.open_connection("127.0.0.1", eng.listener.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        with contextlib.suppress(ConnectionResetError):  # a reset is a close too
            while chunk := await asyncio.wait_for(reader.read(100), 30):
                got += chunk
        writer.close()
        # Closed by the server, with at most a TLS alert record (content type 21) before:
        # never an HTTP answer of any status, and nothing in the clear.
        assert b"HTTP" not in got and b"healthz" not in got, got
        assert got == b"" or got[0] == 21, got


@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("missing-key", "both a certificate and its key"),
        ("no-such-file", "cannot read TLS file"),
        ("not-pem", "cannot use TLS certificate"),
        ("key-of-another", "cannot use TLS certificate"),
    ],
)
async def test_unusable_tls_files_are_a_clear_error(
    cert: tuple[Path, Path], tmp_path: Path, which: str, message: str
) -> None:
    files: dict[str, tuple[Path | None, Path | None]] = {
        "missing-key": (cert[0], None),
        "no-such-file": (tmp_path / "nope.pem", cert[1]),
        "not-pem": (cert[0], cert[0]),  # the certificate given as its own key
        "key-of-another": (cert[0], other_key(tmp_path)),
    }
    tls_cert, tls_key = files[which]
    listener = Listener(
        ListenerConfig(port=0, tls_cert=tls_cert, tls_key=tls_key),
        gateways.build(Credentials()),
        None,  # type: ignore[arg-type]  # never reached
        Hub(),
    )
    with pytest.raises(TLSError, match=message):
        await listener.start()
    await listener.stop()


def other_key(folder: Path) -> Path:
    key = folder / "other.key"
    write_key(key)
    return key


# --- the command line -------------------------------------------------------------------------


@pytest.mark.slow
def test_serve_over_https_from_the_config_file(tmp_path: Path, cert: tuple[Path, Path]) -> None:
    port = free_port()
    config = tmp_path / "smswatch.toml"
    config.write_text(f'tls_cert = "{cert[0]}"\ntls_key = "{cert[1]}"\n')
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                *SMSWATCH,
                "serve",
                *("--config", str(config), "--db", str(tmp_path / "s.db"), "--port", str(port)),
                *("--no-feed", "--basic-auth", "ops:pw"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    base = f"https://127.0.0.1:{port}"
    context = trusting(cert[0])
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=1, context=context) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        req = urllib.request.Request(
            base + "/webhooks/lisoloo",
            data=LISOLOO["sms.sent"].encode(),
            headers={"Content-Type": "application/json", "Authorization": "Basic b3BzOnB3"},
        )
        with urllib.request.urlopen(req, timeout=5, context=context) as resp:
            assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
    text = log.read_text()
    assert f"serving webhooks on {base}" in text
    assert f"{base}/webhooks/lisoloo" in text and f"{base}/webhooks/yebolink" in text
    assert "stopped; 1 event in" in text


@pytest.mark.slow
def test_the_command_line_refuses_half_or_unusable_tls_settings(
    tmp_path: Path, cert: tuple[Path, Path]
) -> None:
    db = str(tmp_path / "x.db")
    only_cert = run("serve", "--db", db, "--tls-cert", str(cert[0]), check=False, timeout=30)
    assert only_cert.returncode == 2
    assert "--tls-cert needs --tls-key" in only_cert.stderr
    missing = run(
        "serve",
        "--db",
        db,
        "--tls-cert",
        str(tmp_path / "no.pem"),
        "--tls-key",
        str(cert[1]),
        check=False,
        timeout=30,
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    # From the environment, as from flags: a key that is not a key.
    env = {**os.environ, "SMSWATCH_TLS_CERT": str(cert[0]), "SMSWATCH_TLS_KEY": str(cert[0])}
    bad = run("serve", "--db", db, check=False, timeout=30, env=env)
    assert bad.returncode == 2
    assert "cannot use TLS certificate" in bad.stderr and "Traceback" not in bad.stderr
    assert not Path(db).exists()  # refused before anything was opened
