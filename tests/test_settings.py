"""Settings as a user gives them: the config file's keys (each one the README and docs/ name is
accepted and reaches the commands that have it), options typed before the subcommand, errors
that name the variable or the file and key, and the serve banner that says what it picked up."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from click.testing import CliRunner

from smswatch import config
from smswatch.cli import main
from smswatch.settings import Settings
from tests.helpers import SMSWATCH, Server, free_port, run

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LISOLOO_KEY = "sk_test_0123456789abcdefghij"
YEBOLINK_KEY = "ybk_live_0123456789abcdefghij"

# A valid value for every key (a key added to the model needs one here: the test says so).
SAMPLES: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 0,
    "db": "PLACEHOLDER",
    "durability": "normal",
    "checkpoint_interval": 0.5,
    "basic_auth": "ops:secret",
    "yebolink_secret": "yebo-secret",
    "twilio_auth_token": "twilio-token",
    "vonage_signature_secret": "vonage-signature-secret",
    "vonage_signature_method": "sha256",
    "africastalking_token": "at-token",
    "infobip_basic_auth": "hooks:infobip-pw",
    "telnyx_public_key": "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=",
    "telnyx_signing_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    "plivo_auth_token": "plivo-token",
    "sinch_webhook_secret": "sinch-webhook-secret",
    "sinch_basic_auth": "hooks:sinch-pw",
    "public_url": "https://hooks.example.com",
    "insecure": True,
    "max_body": 4096,
    "max_db_mb": 64,
    "read_timeout": 3.0,
    "tls_cert": "PLACEHOLDER",
    "tls_key": "PLACEHOLDER",
    "campaign": "spring-sale",
    "campaign_keys": ["batch", "campaign"],
    "gateway_files": "PLACEHOLDER",
    "feed_host": "127.0.0.1",
    "feed_port": 0,
    "feed_token": "feed-token-123",
    "log_format": "json",
    "summary_interval": 2.0,
    "metrics_host": "127.0.0.1",
    "metrics_port": 0,
    "forward_to": ["http://127.0.0.1:9/hooks"],
    "forward_basic_auth": "fw:pw",
    "forward_secret": "fw-secret",
    "forward_timeout": 2.0,
    "forward_concurrency": 3,
    "forward_max_attempts": 4,
    "forward_retry_4xx": True,
    "forward_polled": True,
    "lisoloo_app_key": LISOLOO_KEY,
    "lisoloo_api_url": "http://127.0.0.1:9",
    "yebolink_api_key": YEBOLINK_KEY,
    "yebolink_api_url": "http://127.0.0.1:9",
    "twilio_account_sid": "AC" + "0" * 32,
    "twilio_api_url": "http://127.0.0.1:9",
    "vonage_api_key": "5a1e0b7c",
    "vonage_api_secret": "vonage-api-secret",
    "vonage_api_url": "http://127.0.0.1:9",
    "infobip_api_key": "infobip-api-key-0123456789",
    "infobip_api_url": "http://127.0.0.1:9",
    "telnyx_api_key": "KEY0123456789abcdef",
    "telnyx_api_url": "http://127.0.0.1:9",
    "plivo_auth_id": "MA" + "0" * 18,
    "plivo_api_url": "http://127.0.0.1:9",
    "sinch_service_plan_id": "5a1e0b7c5a1e0b7c5a1e0b7c5a1e0b7c",
    "sinch_api_token": "sinch-api-token-0123456789",
    "sinch_api_url": "http://127.0.0.1:9",
    "theme": "light",
    "silence_after": 7,
    "stuck": {"sent": 120},
    "url": "http://127.0.0.1:9",
}
# Read by the monitor from the loaded settings, not through an option.
READ_DIRECTLY = {"silence_after", "stuck"}


def documented_table() -> set[str]:
    """The keys in the README's "The config file" table (`[stuck]` is the table `stuck`)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### The config file", 1)[1].split("\n#", 1)[0]
    keys: set[str] = set()
    for row in section.splitlines():
        if row.startswith("| `"):
            first = row.split("|")[1]
            keys |= {k.strip("[]") for k in re.findall(r"`([^`]+)`", first)}
    return keys


def documented_elsewhere() -> set[str]:
    """Keys the README and docs/ name in passing: "config file keys `a`/`b`", "config keys
    `a` / `b`", "`a` in the config file"."""
    keys: set[str] = set()
    for path in DOCS:
        text = " ".join(path.read_text().split())
        for run_of_keys in re.findall(
            r"config (?:file )?keys? ((?:`\w+`(?:\s*/\s*|, | and | or )?)+)", text
        ):
            keys |= set(re.findall(r"`(\w+)`", run_of_keys))
        keys |= set(re.findall(r"`(\w+)` in the config file", text))
    return keys


def test_the_docs_list_every_key_and_only_keys_that_exist() -> None:
    table = documented_table()
    assert table == set(Settings.model_fields), "README's config table and the model differ"
    assert {"tls_cert", "tls_key", "metrics_port", "metrics_host", "db"} <= documented_elsewhere()
    assert documented_elsewhere() <= table
    assert set(SAMPLES) == set(Settings.model_fields), "give each new key a sample value"
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no docstring"


def walk(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command and group under `command`, with the words that invoke it."""
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None
            yield from walk(sub, (*path, name))


def contexts(path: tuple[str, ...], cfg: Path) -> click.Context:
    """The parsed context of `smswatch PATH --config CFG`, as the real CLI builds it."""
    ctx = main.make_context("smswatch", ["--config", str(cfg), *path[:1]])
    command: click.Command = main
    for depth, name in enumerate(path):
        assert isinstance(command, click.Group)
        sub = command.get_command(ctx, name)
        assert sub is not None
        more = path[depth + 1 : depth + 2]
        args = list(more) if isinstance(sub, click.Group) else ["--config", str(cfg)]
        # Required arguments (a file to replay, a message id): any that parses.
        args += [
            str(cfg)
            for p in sub.params
            if isinstance(p, click.Argument) and p.required and not isinstance(sub, click.Group)
        ]
        ctx = sub.make_context(name, args, parent=ctx)
        command = sub
    return ctx


def every_key_file(tmp_path: Path, db: Path) -> Path:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not read by the parser\n")
    key.write_text("not read by the parser\n")
    gateway = tmp_path / "acme.toml"
    gateway.write_text("# not read by the parser\n")
    values = {**SAMPLES, "db": str(db), "tls_cert": str(cert), "tls_key": str(key)}
    values["gateway_files"] = [str(gateway)]
    lines = [f"{k} = {json.dumps(v)}" for k, v in values.items() if k != "stuck"]
    lines += ["[stuck]", *(f"{k} = {v}" for k, v in values["stuck"].items())]
    cfg = tmp_path / "every-key.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def test_every_documented_key_is_accepted_and_reaches_each_command_that_has_it(
    tmp_path: Path,
) -> None:
    db = tmp_path / "keys.db"
    Server(db, free_port(), "--no-feed").start().stop()
    cfg = every_key_file(tmp_path, db)
    loaded = config.load(cfg)
    assert set(loaded) == documented_table()

    # The real CLI takes the whole file (silence_after was refused by every command).
    result = run("stats", "--config", str(cfg), "--json", check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["events"] == 0  # the file's db

    reached: set[str] = set()
    for path, command in walk(main):
        if path and isinstance(command, click.Group):
            continue  # `campaign`, `forward`: no options of their own
        command_path = " ".join(("smswatch", *path))
        ctx = contexts(path, cfg)
        name = path[-1] if path else "smswatch"
        for param in ctx.command.params:
            if param.name not in loaded or param.name in READ_DIRECTLY:
                continue
            source = ctx.get_parameter_source(param.name)
            if name in config.ONLY_FOR.get(param.name, {name}):
                assert source is ParameterSource.DEFAULT_MAP, (command_path, param.name)
                reached.add(param.name)
            else:  # `export --campaign` is not the run's campaign
                assert source is not ParameterSource.DEFAULT_MAP, (command_path, param.name)
    assert reached | READ_DIRECTLY == set(Settings.model_fields), "a key that nothing reads"

    serve = contexts(("serve",), cfg)
    assert serve.params["port"] == 0 and serve.params["durability"] == "normal"
    assert serve.params["basic_auth"] == ("ops", "secret")
    assert serve.params["forward_to"] == ("http://127.0.0.1:9/hooks",)
    attach = contexts(("attach",), cfg)
    assert attach.params["feed_token"] == "feed-token-123"
    assert attach.params["feed_url"] == "ws://127.0.0.1:8788"  # not the senders' url

    # The keys the monitor reads itself.
    from smswatch.core.domain import State
    from smswatch.feed.client import RemoteSource
    from smswatch.tui.app import SmsWatchApp

    app = SmsWatchApp(RemoteSource("ws://127.0.0.1:9", "t"), settings=loaded, remember_theme=False)
    assert app.silence_after == 7_000_000
    assert app.stuck_deadlines[State.SENT] == 120_000_000


def test_documented_keys_take_effect_in_serve(tmp_path: Path) -> None:
    """`serve --config` alone: the file's port, db, credentials, feed, metrics, forwarding and
    status APIs show in the JSON listening line, the API keys redacted."""
    db, port, feed, metrics = tmp_path / "s.db", free_port(), free_port(), free_port()
    cfg = tmp_path / "serve.toml"
    cfg.write_text(
        f'db = "{db}"\nport = {port}\nlog-format = "json"\nbasic_auth = "ops:pw"\n'
        f'yebolink_secret = "s3"\nfeed_port = {feed}\nmetrics_port = {metrics}\n'
        'forward_to = ["lisoloo=http://u:pw@127.0.0.1:9/in", "http://127.0.0.1:9/all"]\n'
        f'lisoloo_app_key = "{LISOLOO_KEY}"\nlisoloo_api_url = "http://127.0.0.1:9"\n'
        f'yebolink_api_key = "{YEBOLINK_KEY}"\n'
    )
    listening = first_line(["serve", "--config", str(cfg)])
    assert listening["event"] == "listening"
    assert listening["urls"]["lisoloo"] == f"http://127.0.0.1:{port}/webhooks/lisoloo"
    assert listening["db"] == str(db.resolve())
    assert "ops" in listening["auth"]["lisoloo"]
    assert listening["feed"].endswith(f":{feed}")
    assert listening["metrics"].startswith(f"http://127.0.0.1:{metrics}/")
    assert listening["forward"] == [
        {"url": "http://u:***@127.0.0.1:9/in", "gateways": ["lisoloo"]},
        {"url": "http://127.0.0.1:9/all", "gateways": None},
    ]
    polling = listening["polling"]
    assert set(polling) == {"lisoloo", "yebolink"}
    assert polling["lisoloo"]["url"] == "http://127.0.0.1:9"
    assert polling["lisoloo"]["key"].startswith("sk_test_")
    assert polling["yebolink"]["url"] == "https://api.yebolink.com"
    text = json.dumps(listening)
    assert LISOLOO_KEY not in text and YEBOLINK_KEY not in text and ":pw@" not in text


def first_line(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """The first stdout line of a `serve` run as JSON, then stop it."""
    proc = subprocess.Popen(
        [*SMSWATCH, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.communicate(timeout=30)
        return dict(json.loads(line))
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def banner_of(args: list[str], env: dict[str, str] | None = None) -> str:
    """`serve`'s text banner (up to its health-check line), then stop it."""
    proc = subprocess.Popen(
        [*SMSWATCH, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Health check" in line:
                break
        return "".join(lines)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_serve_banner_says_where_it_forwards_and_what_it_polls(tmp_path: Path) -> None:
    port = free_port()
    text = banner_of(
        [
            "serve",
            *("--db", str(tmp_path / "b.db"), "--port", str(port), "--no-feed"),
            *(
                "--forward-to",
                "http://u:pw@127.0.0.1:9/in",
                "--forward-to",
                "yebolink=http://127.0.0.1:9/y",
            ),
            *("--lisoloo-api-url", "http://127.0.0.1:9"),
        ],
        env={"SMSWATCH_LISOLOO_APP_KEY": LISOLOO_KEY},
    )
    assert f"serving webhooks on http://127.0.0.1:{port}" in text, text
    assert "Forwarding every stored event" in text
    assert "http://u:***@127.0.0.1:9/in" in text
    assert re.search(r"http://127\.0\.0\.1:9/y\s+yebolink only", text)
    assert re.search(r"Lisoloo\s+http://127\.0\.0\.1:9\s+key sk_test_\*+", text)
    assert "YeboLink  https://api" not in text  # no YeboLink key: not polled
    assert LISOLOO_KEY not in text and ":pw@" not in text

    plain = banner_of(
        ["serve", "--db", str(tmp_path / "c.db"), "--port", str(free_port()), "--no-feed"]
    )
    assert "Forwarding" not in plain and "Polling" not in plain


# --- options before the subcommand ------------------------------------------------------------


def test_options_before_the_subcommand_are_applied_to_it(tmp_path: Path) -> None:
    port = free_port()
    text = banner_of(
        [
            *("--port", "1", "--basic-auth", "a:b", "--db", str(tmp_path / "m.db")),
            *("serve", "--port", str(port), "--no-feed"),  # typed after: this one wins
        ]
    )
    assert f"serving webhooks on http://127.0.0.1:{port}" in text, text
    assert "Basic auth (user a)" in text
    assert str(tmp_path / "m.db") in text

    db = tmp_path / "r.db"
    Server(db, free_port(), "--no-feed").start().stop()
    result = run("--db", str(db), "stats", "--json", check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["events"] == 0
    result = run("--db", str(db), "campaign", "list", "--json", check=False)
    assert result.returncode == 0 and json.loads(result.stdout) == [], result.stderr
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'db = "{db}"\n')
    result = run("--config", str(cfg), "stats", "--json", check=False)
    assert result.returncode == 0, result.stderr  # the file's db, not ./smswatch.db


def test_options_before_a_subcommand_that_lacks_them_are_refused() -> None:
    for args, option, where in [
        (["--port", "9811", "stats"], "--port", "smswatch stats"),
        (["--demo", "serve"], "--demo", "smswatch serve"),
        (["--no-listen", "attach"], "--no-listen", "smswatch attach"),
        (["--theme", "dark", "campaign", "list"], "--theme", "smswatch campaign list"),
    ]:
        result = run(*args, check=False)
        assert result.returncode == 2, (args, result.stderr)
        assert f"{option} is not an option of `{where}`" in result.stderr

    # Every option of the monitor, before a command that has only --db and --config.
    runner = CliRunner()
    for param in main.params:
        if not isinstance(param, click.Option) or param.is_eager or param.name in ("db", "config"):
            continue
        option = param.opts[0]
        args = [option] if param.is_flag else [option, sample(param)]
        result = runner.invoke(main, [*args, "inspect", "abc"])
        assert result.exit_code == 2, (option, result.output)
        assert f"{option} is not an option of `smswatch inspect`" in result.output


def sample(param: click.Parameter) -> str:
    """A value the option itself accepts."""
    kind = param.type
    if isinstance(kind, click.Choice):
        return str(kind.choices[0])
    if isinstance(kind, click.Path):
        return __file__
    if "auth" in (param.name or ""):
        return "a:b"
    if isinstance(kind, click.types._NumberRangeBase):
        return str(max(kind.min or 0, 1))
    return "1"


# --- errors name where the value came from ----------------------------------------------------


def test_bad_values_from_the_environment_or_the_file_name_their_source(tmp_path: Path) -> None:
    env = {**os.environ, "SMSWATCH_PORT": "abc"}
    for args in (["serve"], ["stats"]):
        result = run(*args, check=False, env=env)
        assert result.returncode == 2
        assert "SMSWATCH_PORT: 'abc' is not a valid integer" in result.stderr, result.stderr
        assert "--port" not in result.stderr

    cfg = tmp_path / "smswatch.toml"
    for text, expected in [
        ('port = "abc"\n', f"{cfg}: port: input should be a valid integer"),
        ("port = 70000\n", f"{cfg}: port: input should be less than or equal to 65535"),
        ('basic-auth = "nocolon"\n', f"{cfg}: basic_auth: basic auth must be USER:PASS"),
        ('durability = "sometimes"\n', f"{cfg}: durability: input should be 'full' or 'normal'"),
        ("[stuck]\nsent = -1\n", f"{cfg}: [stuck] sent must be a positive number"),
        ('colour = "red"\n', f"{cfg}: unknown setting 'colour'"),
        ("yebolink_secret = 12345678\n", f"{cfg}: yebolink_secret: input should be a valid string"),
    ]:
        cfg.write_text(text)
        result = run("serve", "--config", str(cfg), "--port", "0", check=False)
        assert result.returncode == 2, (text, result.stderr)
        assert expected in result.stderr, (text, result.stderr)
        assert "Invalid value for" not in result.stderr
        assert "12345678" not in result.stderr  # a credential is never echoed

    result = run("stats", check=False, env={**os.environ, "SMSWATCH_CONFIG": str(tmp_path / "no")})
    assert result.returncode == 2 and "SMSWATCH_CONFIG: config file" in result.stderr
    result = run("stats", check=False, env={**os.environ, "SMSWATCH_DB": str(tmp_path)})
    assert "SMSWATCH_DB: " in result.stderr and "is a directory" in result.stderr

    # Typed on the command line, it is still the flag's error.
    result = run("serve", "--port", "abc", check=False)
    assert result.returncode == 2 and "Invalid value for '--port'" in result.stderr


def test_no_environment_variable_error_names_a_flag() -> None:
    """Every option with a variable whose type refuses "abc": the error names the variable."""
    runner = CliRunner()
    checked = 0
    for path, command in walk(main):
        for param in command.params:
            envvar = param.envvar if isinstance(param.envvar, str) else None
            refuses_abc = (click.types.IntParamType, click.types.FloatParamType, click.Path)
            if envvar is None or not isinstance(param.type, refuses_abc):
                continue
            result = runner.invoke(main, list(path), env={envvar: "abc"})
            assert result.exit_code == 2, (path, envvar, result.output)
            assert result.output.startswith(f"smswatch: {envvar}: "), (path, result.output)
            checked += 1
    assert checked >= 5


# --- --help never points at a file that does not ship ----------------------------------------


def test_no_help_mentions_design_md() -> None:
    runner = CliRunner()
    for path, _ in walk(main):
        result = runner.invoke(main, [*path, "--help"], terminal_width=200)
        assert result.exit_code == 0, (path, result.output)
        assert "DESIGN.md" not in result.output, path
    assert "DESIGN.md" not in run("--help").stdout
    for folder in ("src", "docs"):
        for file in (ROOT / folder).rglob("*"):
            if file.suffix in (".py", ".md", ".toml"):
                assert "DESIGN.md" not in file.read_text(), file
    assert "DESIGN.md" not in (ROOT / "README.md").read_text()
