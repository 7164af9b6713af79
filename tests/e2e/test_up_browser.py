"""`finmed up` end to end: a real browser signs in, sees the status page, and Ctrl-C stops the suite cleanly."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing: `apt-get install chromium`"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"finmed up exited early: {proc.stdout.read() if proc.stdout else ''}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not become healthy in {timeout}s")


def test_up_login_and_clean_stop(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {**os.environ, "FINMED_DATA_DIR": str(tmp_path / "var")}
    finmed = shutil.which("finmed", path=str(Path(sys.executable).parent)) or "finmed"
    proc = subprocess.Popen(
        [finmed, "up", "--tiny", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        assert proc.stdout is not None
        while not any("app: ready at http" in line for line in lines):
            line = proc.stdout.readline()
            assert line, f"finmed up ended before printing its URL: {''.join(lines)}"
            lines.append(line)
        output = "".join(lines)
        password = re.search(r"user admin \(admin\); password \(shown once\): (\S+)", output).group(1)  # type: ignore[union-attr]
        url = re.search(r"app: ready at (http://127\.0\.0\.1:\d+)", output).group(1)  # type: ignore[union-attr]
        wait_healthy(url, proc)

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_role("textbox", name="Username").fill("admin")
            page.get_by_role("textbox", name="Password").fill(password)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("heading", name="Status").wait_for(timeout=60_000)
            page.get_by_text("Signed in as").wait_for()
            page.locator("[data-testid='stDataFrame']").wait_for(timeout=60_000)
            page.get_by_role("textbox", name="Password").wait_for(state="detached", timeout=30_000)
            page.screenshot(path=str(tmp_path / "status.png"), full_page=True)
            assert "admin" in page.inner_text("section[data-testid='stSidebar']")
            browser.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the app still listens after Ctrl-C"
