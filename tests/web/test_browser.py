"""A real browser (Debian's headless Chromium, driven by Playwright) against ``jobstatus serve``.

The server is a subprocess on a free port with a SQLite store this test
process writes to, so the page shows what another process's jobs are doing.
Screenshots land in ``tests/output/web/`` (gitignored) to look at by eye.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import jobstatus
from jobstatus._record import Change, utc_now_iso
from jobstatus.stores import SQLiteStore

from ._browser import OUTPUT, chromium, free_port, new_page, running
from ._support import SCRIPT, put

pytestmark = [pytest.mark.web, pytest.mark.browser]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, SQLiteStore]]:
    """``jobstatus serve --public`` on a free port, and the store it serves."""
    url = f"sqlite:///{tmp_path / 'web.db'}"
    store = SQLiteStore.from_url(url)
    port = free_port()
    command = [sys.executable, "-m", "jobstatus", "serve", "--store", url, "--host", "127.0.0.1"]
    command += ["--port", str(port), "--public", "--expose", "exception"]
    try:
        with running(command, port, "jobstatus serve"):
            yield f"http://127.0.0.1:{port}", store
    finally:
        store.close()


@pytest.fixture
def page() -> Iterator[Any]:
    with chromium() as browser:
        page = new_page(browser)
        yield page
        page.context.close()


def test_the_dashboard_shows_jobs_live(server: tuple[str, SQLiteStore], page: Any) -> None:
    base, store = server
    put(store, "export-2024", status="working", progress=0, total=20, step="rows")
    put(store, "export-2024", started_at=utc_now_iso(time.time() - 4))
    put(
        store,
        "send-mail-7",
        status="failed",
        exception={"class": "SMTPError", "message": "mail server refused"},
    )
    put(store, "thumbs-3", status="completed", progress=8, total=8)
    streams: list[str] = []
    page.on(
        "request",
        lambda request: (
            streams.append(request.url) if request.resource_type == "eventsource" else None
        ),
    )
    page.goto(base + "/")

    running = page.locator('tr[data-job="export-2024"]')
    running.wait_for()
    assert page.locator("#jobs tbody tr").first.get_attribute("data-job") == "send-mail-7"
    failed = page.locator('tr[data-job="send-mail-7"]')
    assert "SMTPError: mail server refused" in failed.locator(".detail").inner_text()
    assert failed.locator(".state").inner_text() == "failed"

    status = jobstatus.get("export-2024", store=store)
    for done in range(1, 11):
        status.update(progress=done)
        time.sleep(0.03)
    running.locator('.bar[aria-valuenow="50"]').wait_for()
    assert running.locator(".percent").inner_text() == "50%"
    assert running.locator(".eta").inner_text()  # an estimate is shown while working
    page.screenshot(path=str(OUTPUT / "dashboard-running.png"), full_page=True)

    for done in range(11, 21):
        status.update(progress=done)
        time.sleep(0.03)
    status.update(status="completed")
    running.locator('.bar[aria-valuenow="100"][data-state="completed"]').wait_for()
    assert running.locator(".state").inner_text() == "completed"
    assert any("/events?ids=" in url and "export-2024" in url for url in streams)
    page.screenshot(path=str(OUTPUT / "dashboard-finished.png"), full_page=True)


def test_the_job_page_is_live_and_shows_values_as_text(
    server: tuple[str, SQLiteStore], page: Any
) -> None:
    base, store = server
    put(store, "import-9", status="working", progress=1, total=4, step=SCRIPT, rows=120)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(base + "/jobs/import-9/view")

    detail = page.locator(".detail")
    page.locator('.bar[aria-valuenow="25"]').wait_for()
    assert detail.inner_text() == SCRIPT  # arrives as text...
    assert page.evaluate("window.__pwned") is None  # ...and never runs
    assert page.locator("dl.fields dd").first.inner_text() == "120"
    page.screenshot(path=str(OUTPUT / "job-running.png"))

    put(store, "import-9", progress=4, status="completed", step="done")
    page.locator('.state[data-state="completed"]').wait_for()
    assert page.locator(".percent").inner_text() == "100%"
    page.screenshot(path=str(OUTPUT / "job-finished.png"))
    assert errors == []


def test_a_script_in_the_dashboard_stays_text(server: tuple[str, SQLiteStore], page: Any) -> None:
    base, store = server
    put(store, SCRIPT, status="failed", exception={"class": "X", "message": SCRIPT})
    page.goto(base + "/")
    row = page.locator("#jobs tbody tr").first
    row.wait_for()
    assert row.locator(".job-id").inner_text() == SCRIPT
    assert SCRIPT in row.locator(".detail").inner_text()
    assert page.evaluate("window.__pwned") is None
    page.screenshot(path=str(OUTPUT / "dashboard-escaped.png"))


def test_a_working_job_gone_quiet_shows_as_stale(
    server: tuple[str, SQLiteStore], page: Any
) -> None:
    base, store = server
    put(store, "alive-1", status="working", progress=2, total=10)
    quiet_since = utc_now_iso(time.time() - 3600)  # no heartbeat for an hour: its worker died
    fields = {"status": "working", "progress": 4, "total": 10, "updated_at": quiet_since}
    store.write("orphan-2", Change(set=fields))
    page.goto(base + "/")

    orphan = page.locator('tr[data-job="orphan-2"]')
    orphan.locator(".stale-badge").wait_for()
    assert orphan.get_attribute("data-stale") == "true"
    assert orphan.locator(".state").inner_text() == "working"
    alive = page.locator('tr[data-job="alive-1"]')
    assert alive.locator(".stale-badge").count() == 0
    assert "1 stale" in page.locator("#summary").inner_text()
    page.screenshot(path=str(OUTPUT / "dashboard-stale.png"), full_page=True)

    page.goto(base + "/jobs/orphan-2/view")
    page.locator(".stale-badge").wait_for()
    assert page.locator(".state").inner_text() == "working"
    page.screenshot(path=str(OUTPUT / "job-stale.png"))


# An EventSource whose page never closes it, as a generic client's: it reconnects
# when the stream ends, Last-Event-ID set to the final event's id.
FOLLOW_TO_THE_END = """([url, give_up_ms]) => new Promise((resolve) => {
  const messages = [];
  const source = new EventSource(url);
  const settle = () => resolve({messages: messages, state: source.readyState});
  source.onmessage = (event) => messages.push(JSON.parse(event.data).status);
  source.onerror = () => { if (source.readyState === EventSource.CLOSED) settle(); };
  setTimeout(settle, give_up_ms);
})"""


def test_an_event_source_left_open_stops_after_the_final_event(
    server: tuple[str, SQLiteStore], page: Any
) -> None:
    base, store = server
    put(store, "finished-5", status="completed", progress=5, total=5)
    streams: list[str] = []
    page.on(
        "request",
        lambda request: (
            streams.append(request.url) if request.resource_type == "eventsource" else None
        ),
    )
    page.goto(base + "/static/jobstatus.css")  # any page of the app's origin
    seen = page.evaluate(FOLLOW_TO_THE_END, [base + "/jobs/finished-5/events", 12_000])
    # One final event, one reconnect answered 204, and the EventSource is closed for good.
    assert seen == {"messages": ["completed"], "state": 2}
    assert len(streams) == 2
