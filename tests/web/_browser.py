"""Driving Debian's headless Chromium with Playwright, and starting servers for it.

Nothing here downloads a browser: the tests skip (or fail under CI=true) when
/usr/bin/chromium or playwright is missing.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..stores import IN_CI

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
OUTPUT = Path(__file__).resolve().parents[1] / "output" / "web"
WAIT_MS = 15_000


def require_browser() -> Any:
    """Playwright's ``sync_playwright``, or a skip (a failure under CI=true) naming the gap."""
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = "playwright is not installed (pip install playwright)"
    if problem:
        if IN_CI:
            pytest.fail(f"{problem}; CI=true needs the browser tests")
        pytest.skip(problem)
    return sync_playwright


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running(command: list[str], port: int, what: str, cwd: Path | None = None) -> Iterator[None]:
    """Run ``command`` until the block ends, once something listens on ``port``."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read() if process.stdout else ""
                    pytest.fail(f"{what} did not start: {output}")
                time.sleep(0.05)
        yield
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Playwright's Browser) for the block."""
    sync_playwright = require_browser()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Any, **options: Any) -> Any:
    """A page in a fresh context; reduced motion, so screenshots show where bars are."""
    settings = {"viewport": {"width": 1100, "height": 520}, "reduced_motion": "reduce", **options}
    page = browser.new_context(**settings).new_page()
    page.set_default_timeout(WAIT_MS)
    return page
