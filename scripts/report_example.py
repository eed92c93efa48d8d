"""Make the README's example report: a simulated campaign on both gateways, posted over HTTP to
`smswatch serve`, then `smswatch report` and a Chromium screenshot of its first page.

    python scripts/report_example.py        writes docs/report-example.html and .png
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMSWATCH = [sys.executable, "-m", "smswatch"]
CAMPAIGN = "payday-reminder"


def wait_healthy(url: str) -> None:
    for _ in range(100):
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("serve did not start")


def main() -> None:
    html, png = ROOT / "docs" / "report-example.html", ROOT / "docs" / "report-example.png"
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "campaign.db"
        serve = subprocess.Popen(
            [
                *SMSWATCH,
                "serve",
                "--db",
                str(db),
                "--port",
                "18931",
                "--no-feed",
                "--campaign",
                CAMPAIGN,
                "--campaign-keys",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = "http://127.0.0.1:18931"
            wait_healthy(url)
            for provider, messages, recipients, seed in (
                ("lisoloo", 4, 250, 7),
                ("yebolink", 1, 300, 8),
            ):
                subprocess.run(
                    [
                        *SMSWATCH,
                        "simulate",
                        "--url",
                        url,
                        "--provider",
                        provider,
                        "--messages",
                        str(messages),
                        "--recipients",
                        str(recipients),
                        "--rate",
                        "3000",
                        "--speed",
                        "4",
                        "--fail-rate",
                        "0.12",
                        "--seed",
                        str(seed),
                        "--quiet",
                    ],
                    check=True,
                )
        finally:
            serve.terminate()
            serve.wait(30)
        subprocess.run(
            [*SMSWATCH, "report", CAMPAIGN, "--db", str(db), "--out", str(html)], check=True
        )
    chromium = shutil.which("chromium") or "/usr/lib/chromium/chromium"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--window-size=1100,1500",
                f"--screenshot={png}",
                html.as_uri(),
            ],
            check=True,
            capture_output=True,
        )
    print(f"wrote {html} and {png}")


if __name__ == "__main__":
    main()
