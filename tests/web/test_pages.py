"""The operator's dashboard, the job page and the drop-in bar, in headless Chromium.

The app (``create_app`` under uvicorn, ``tests/web/_app_server.py``) runs in a
subprocess on a SQLite store this test process writes to. Pages of "another
site" are served by a small HTTP server in this process on ``localhost``, a
different site from the app's ``127.0.0.1``. Screenshots land in
``tests/output/web/``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import jobstatus
from jobstatus import Job
from jobstatus._record import utc_now_iso
from jobstatus.stores import SQLiteStore

from ._browser import OUTPUT, chromium, free_port, new_page, running
from ._support import put

pytestmark = [pytest.mark.web, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
WITH_REASONS = {"includes": {"status", "exception"}}
Start = Callable[..., str]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "web.db")
    yield opened
    opened.close()


@pytest.fixture
def app(store: SQLiteStore) -> Iterator[Start]:
    """``app("--public", "--cancel", ...)`` starts the app on the store; gives its base URL."""
    with contextlib.ExitStack() as stack:

        def start(*flags: str) -> str:
            port = free_port()
            command = [sys.executable, "-m", "tests.web._app_server", "--store"]
            command += [f"sqlite:///{store.path}", "--port", str(port), *flags]
            stack.enter_context(running(command, port, "the app", cwd=ROOT))
            return f"http://127.0.0.1:{port}"

        yield start


@pytest.fixture
def other_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static site of the user's own, on ``http://localhost:PORT``: its URL and folder."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "favicon.ico").write_bytes(b"")  # the site's own, so its 404 is not counted
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def watch_problems(page: Any) -> list[str]:
    """Every failed request (a favicon 404 too) and every console error of ``page``."""
    problems: list[str] = []
    page.on(
        "response",
        lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
    )
    page.on(
        "console",
        lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    return problems


def event_sources(page: Any) -> list[str]:
    """The URLs of the EventSource requests ``page`` makes."""
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url) if r.resource_type == "eventsource" else None)
    return urls


def favicon_answers(page: Any) -> list[int]:
    """The status of each favicon request ``page`` makes."""
    codes: list[int] = []
    page.on("response", lambda r: codes.append(r.status) if "favicon" in r.url else None)
    return codes


def failed_job(store: SQLiteStore, job_id: str, name: str, message: str, attempts: int = 1) -> None:
    job = Job(job_id, name=name, store=store, options=WITH_REASONS)
    job.enqueued()
    for _ in range(attempts - 1):
        job.started()
        job.retrying(ValueError(message))
    job.started()
    job.finished(ValueError(message))


def finished_job(store: SQLiteStore, job_id: str, name: str, parent: object = None) -> None:
    job = Job(job_id, name=name, store=store, parent=parent)
    job.enqueued()
    job.started()
    job.finished()


# -- the operator's question ----------------------------------------------------------


def shown_jobs(page: Any, count: int) -> set[str]:
    """The ids of the dashboard's rows, once there are ``count`` of them."""
    from playwright.sync_api import expect  # its waits need no eval, which the CSP forbids

    expect(page.locator("#jobs tbody tr")).to_have_count(count)
    rows = page.locator("#jobs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.job)")
    return set(rows)


def test_an_operator_finds_which_jobs_failed_and_why(
    browser: Any, app: Start, store: SQLiteStore
) -> None:
    for n in range(60):
        failed_job(store, f"export-{n:03d}", "reports.export", f"row {n} has no date")
    failed_job(store, "mail-1", "mail.send", "SMTP refused", attempts=3)
    failed_job(store, "mail-2", "mail.send", "SMTP refused")
    for n in range(5):
        finished_job(store, f"thumb-{n}", "images.thumbnail")
    put(store, "render-1", status="working", name="video.render", progress=5, total=20)
    base = app("--public", "--operator")
    page = new_page(browser, viewport={"width": 1280, "height": 900})
    problems = watch_problems(page)
    page.goto(base + "/")

    page.locator('tr[data-job="render-1"]').wait_for()
    assert page.locator('[data-count="total"]').inner_text().strip() == "68"
    assert page.locator('[data-count="failed"]').inner_text().strip() == "62"
    page.locator('#filters button[data-status="failed"]').click()
    page.locator('#range:text("1–50 of 62 failed")').wait_for()
    mail = page.locator('tr[data-job="mail-1"]')
    assert mail.locator(".name").inner_text() == "mail.send"
    assert mail.locator(".detail").inner_text() == "ValueError: SMTP refused"
    assert mail.locator(".attempts").inner_text() == "3"
    assert mail.locator(".started time").inner_text() and mail.locator(".duration").inner_text()
    assert "62 failed" in page.locator("#summary").inner_text()
    page.screenshot(path=str(OUTPUT / "dashboard-failed.png"), full_page=True)

    seen = set(page.locator("#jobs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.job)"))
    page.locator("#older").click()
    page.locator('#range:text("51–62 of 62 failed")').wait_for()
    rows = page.locator("#jobs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.job)")
    assert len(rows) == 12 and not seen & set(rows)
    assert seen | set(rows) == {f"export-{n:03d}" for n in range(60)} | {"mail-1", "mail-2"}
    assert page.locator("#older").is_hidden()

    page.fill("#search-text", "mail.send")
    page.select_option("#search-by", "name")
    page.click('#search button[type="submit"]')
    # The failed view's 12 rows stay until the search's answer replaces them: wait for
    # the answer's own count, not for a row the old view has too.
    assert shown_jobs(page, 2) == {"mail-1", "mail-2"}
    page.fill("#search-text", "export-00")
    page.select_option("#search-by", "prefix")
    page.click('#search button[type="submit"]')
    assert shown_jobs(page, 10) == {f"export-00{n}" for n in range(10)}
    page.screenshot(path=str(OUTPUT / "dashboard-search.png"), full_page=True)

    page.fill("#search-text", "")
    page.click('#search button[type="submit"]')
    page.locator('#filters button[data-status=""]').click()
    running = page.locator('tr[data-job="render-1"]')
    running.wait_for()
    put(store, "render-1", status="failed", exception={"class": "OSError", "message": "disk full"})
    running.locator('.detail:text("OSError: disk full")').wait_for()  # live, with its reason
    assert problems == []


def test_reasons_stay_hidden_from_readers_who_are_not_operators(
    browser: Any, app: Start, store: SQLiteStore
) -> None:
    failed_job(store, "secret-1", "billing.charge", "card 4242 declined")
    base = app("--public")
    page = new_page(browser)
    page.goto(base + "/")
    row = page.locator('tr[data-job="secret-1"]')
    row.wait_for()
    assert row.locator(".detail").inner_text() == "failed"
    page.goto(base + "/jobs/secret-1/view")
    page.locator('.state[data-state="failed"]').wait_for()
    assert "4242" not in page.content()


# -- groups and the job page ----------------------------------------------------------


def test_a_group_expands_on_the_dashboard_and_lists_its_children_on_its_page(
    browser: Any, app: Start, store: SQLiteStore
) -> None:
    group = jobstatus.group(name="import", group_id="import-7", store=store)
    for n in range(25):
        if n < 10:
            finished_job(store, f"file-{n:02d}", "import.file", parent=group)
        else:
            Job(f"file-{n:02d}", name="import.file", store=store, parent=group).enqueued()
    base = app("--public")
    page = new_page(browser, viewport={"width": 1280, "height": 900})
    problems = watch_problems(page)
    page.goto(base + "/")
    group_row = page.locator('tr[data-job="import-7"]')
    group_row.wait_for()
    assert group_row.locator(".percent").inner_text() == "40%"
    assert "10/25 done" in group_row.locator(".bar-col").inner_text()
    group_row.locator("button.expand").click()
    page.locator("tr.child >> nth=19").wait_for()
    assert page.locator("tr.child:not(.more)").count() == 20
    page.locator("tr.more button").click()
    page.locator('tr.child[data-job="file-24"]').wait_for()
    assert page.locator("tr.more").count() == 0
    page.screenshot(path=str(OUTPUT / "dashboard-group.png"), full_page=True)

    page.goto(base + "/jobs/import-7/view")
    page.locator("#children tbody tr >> nth=19").wait_for()
    assert page.locator(".title").inner_text() == "import"
    assert page.locator("section.children .count").inner_text() == "25"
    page.locator("button.more").click()
    page.locator('#children tr[data-job="file-24"]').wait_for()
    assert page.locator('#children tr[data-job="file-03"] .bar').get_attribute("aria-valuenow") == (
        "100"
    )
    page.screenshot(path=str(OUTPUT / "job-group.png"), full_page=True)

    page.goto(base + "/jobs/file-03/view")
    page.locator("ol.timeline li >> nth=2").wait_for()
    steps = page.locator("ol.timeline li").evaluate_all("items => items.map(i => i.dataset.state)")
    assert steps == ["queued", "working", "completed"]
    assert page.locator("dl.facts").inner_text().count("import-7") == 1  # its group, linked
    assert page.locator("nav.back a").get_attribute("href") == "/"
    page.screenshot(path=str(OUTPUT / "job-history.png"), full_page=True)
    assert problems == []


# -- cancel and delete ----------------------------------------------------------------


def test_cancel_and_delete_from_the_dashboard_and_the_job_page(
    browser: Any, app: Start, store: SQLiteStore
) -> None:
    for job_id in ("render-1", "render-2"):
        put(store, job_id, status="working", name="video.render", progress=2, total=10)
    put(store, "render-3", status="completed", name="video.render")
    base = app("--public", "--cancel", "--delete")
    page = new_page(browser, viewport={"width": 1280, "height": 700})
    problems = watch_problems(page)
    page.goto(base + "/")
    row = page.locator('tr[data-job="render-1"]')
    row.locator("button.cancel").click()
    row.locator(".badge.cancelling").wait_for()
    assert jobstatus.get("render-1", store=store).cancel_requested
    assert page.locator('tr[data-job="render-3"] button.cancel').count() == 0  # finished
    page.screenshot(path=str(OUTPUT / "dashboard-cancelling.png"), full_page=True)

    page.goto(base + "/jobs/render-2/view")
    page.locator("button.cancel").click()
    page.locator('.action-result:text("Cancel requested")').wait_for()
    assert jobstatus.get("render-2", store=store).cancel_requested
    assert page.locator("button.cancel").is_hidden()
    page.screenshot(path=str(OUTPUT / "job-cancel-requested.png"))
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("button.delete").click()
    page.locator('.action-result:text("Deleted.")').wait_for()
    assert not jobstatus.get("render-2", store=store).exists
    assert problems == []


def test_without_the_hooks_the_pages_offer_no_buttons(
    browser: Any, app: Start, store: SQLiteStore
) -> None:
    put(store, "render-1", status="working", progress=2, total=10)
    base = app("--public")
    page = new_page(browser)
    page.goto(base + "/")
    page.locator('tr[data-job="render-1"]').wait_for()
    assert page.locator("td.actions button").count() == 0
    page.goto(base + "/jobs/render-1/view")
    page.locator('.state[data-state="working"]').wait_for()
    assert page.locator("button.cancel").is_hidden() and page.locator("button.delete").is_hidden()


CROSS_SITE_PAGE = """<!doctype html>
<meta charset="utf-8">
<form id="json-trick" method="post" enctype="text/plain" action="APP/jobs/victim/cancel">
  <input name='{"reason": "' value='pwned"}'>
</form>
<form id="form-delete" method="post" action="APP/jobs/victim/delete">
  <input name="confirm" value="yes">
</form>
<script>
window.attempts = {};
async function attempt(name, init, url) {
  try {
    const response = await fetch(url || "APP/jobs/victim/cancel", init);
    window.attempts[name] = response.type === "opaque" ? "opaque" : response.status;
  } catch (error) {
    window.attempts[name] = "blocked";
  }
}
</script>
"""


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"], ids=["cross-site", "same-site"])
def test_a_page_of_another_origin_never_cancels_or_deletes(
    browser: Any, app: Start, store: SQLiteStore, other_site: tuple[str, Path], host: str
) -> None:
    put(store, "victim", status="working", progress=1, total=10)
    site, folder = other_site
    site = site.replace("localhost", host)
    # Listed in cors_origins on purpose: an origin that may read may still not change.
    base = app("--public", "--cancel", "--delete", "--cors", site)
    (folder / "attack.html").write_text(CROSS_SITE_PAGE.replace("APP", base))
    page = new_page(browser)
    page.goto(site + "/attack.html")
    fetches = {
        "json": {"method": "POST", "headers": {"Content-Type": "application/json"}, "body": "{}"},
        "json with cookies": {
            "method": "POST",
            "credentials": "include",
            "headers": {"Content-Type": "application/json"},
            "body": "{}",
        },
        "no-cors text": {"method": "POST", "mode": "no-cors", "body": '{"reason": "x"}'},
        "text": {"method": "POST", "body": "{}"},
    }
    for name, init in fetches.items():
        page.evaluate("([name, init]) => attempt(name, init)", [name, init])
    attempts = page.evaluate("window.attempts")
    assert attempts["json"] == "blocked" and attempts["json with cookies"] == "blocked"  # preflight
    assert attempts["no-cors text"] == "opaque"
    assert attempts["text"] in (403, "blocked")
    with page.expect_navigation():
        page.evaluate("document.getElementById('json-trick').submit()")
    assert "cross-site requests cannot change jobs" in page.content()
    page.goto(site + "/attack.html")
    with page.expect_navigation():
        page.evaluate("document.getElementById('form-delete').submit()")
    status = jobstatus.get("victim", store=store)
    assert status.exists and status.status == "working" and not status.cancel_requested


# -- phones, dark mode, favicon -------------------------------------------------------


def test_the_pages_fit_a_phone_have_a_dark_mode_and_a_favicon(
    browser: Any, app: Start, store: SQLiteStore
) -> None:
    failed_job(store, "a-rather-long-job-id-0123456789abcdef", "reports.export", "no date")
    put(store, "render-1", status="working", name="video.render", progress=7, total=10)
    put(store, "render-1", started_at=utc_now_iso(), site="https://example.com/videos/1")
    base = app("--public", "--operator", "--cancel")
    for scheme in ("light", "dark"):
        page = new_page(
            browser, viewport={"width": 390, "height": 844}, color_scheme=scheme, is_mobile=True
        )
        problems = watch_problems(page)
        icons = favicon_answers(page)
        page.goto(base + "/")
        page.locator('tr[data-job="render-1"]').wait_for()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == ("rgb(18, 22, 31)" if scheme == "dark" else "rgb(255, 255, 255)")
        page.screenshot(path=str(OUTPUT / f"dashboard-phone-{scheme}.png"), full_page=True)
        page.goto(base + "/jobs/render-1/view")
        page.locator('.bar[aria-valuenow="70"]').wait_for()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        link = page.locator('dl.fields a[href="https://example.com/videos/1"]')
        assert link.get_attribute("rel") == "noopener noreferrer nofollow"  # a URL is a link
        page.screenshot(path=str(OUTPUT / f"job-phone-{scheme}.png"), full_page=True)
        assert problems == [] and icons and all(code == 200 for code in icons)
        page.context.close()


# -- the drop-in bar --------------------------------------------------------------------


def _docs_example() -> str:
    text = (ROOT / "docs" / "your-own-bar.md").read_text()
    (block,) = re.findall(r"```html\n(.*?)```", text, flags=re.S)
    assert len(block.strip().splitlines()) <= 15  # "in 15 lines"
    return block


def test_the_drop_in_bar_of_the_docs_runs_on_another_origin(
    browser: Any, app: Start, store: SQLiteStore, other_site: tuple[str, Path]
) -> None:
    site, folder = other_site
    base = app("--cors", site, "--mount", "/status")  # not public: reading by id only
    page_html = _docs_example().replace("http://127.0.0.1:8000", base)
    (folder / "shop.html").write_text("<!doctype html><meta charset=utf-8>\n" + page_html)
    put(store, "export-42", status="working", name="shop.export", progress=0, total=10)
    put(store, "export-42", started_at=utc_now_iso())
    page = new_page(browser)
    problems = watch_problems(page)
    streams = event_sources(page)
    page.goto(site + "/shop.html")

    bar = page.locator("#export-bar .jobstatus-bar")
    bar.wait_for()
    status = jobstatus.get("export-42", store=store)
    status.update(progress=5)
    page.locator('#export-bar .jobstatus-bar[aria-valuenow="50"]').wait_for()
    page.wait_for_function("document.title === '50% exported'")
    fill = page.locator("#export-bar .jobstatus-bar-fill")
    assert fill.evaluate("node => getComputedStyle(node).backgroundColor") == "rgb(102, 51, 153)"
    assert bar.evaluate("node => getComputedStyle(node).height") == "16px"  # --jobstatus-height
    assert "working · 50%" in page.locator("#export-bar .jobstatus-bar-label").inner_text()
    page.screenshot(path=str(OUTPUT / "bar-working.png"))
    status.update(progress=10, status="completed")
    page.locator("#export-done").wait_for()
    assert bar.get_attribute("data-state") == "completed"
    assert streams and all(url.startswith(base) for url in streams)
    page.screenshot(path=str(OUTPUT / "bar-completed.png"))
    assert problems == []


def test_the_drop_in_bar_polls_without_event_source_and_calls_back_on_failure(
    browser: Any, app: Start, store: SQLiteStore, other_site: tuple[str, Path]
) -> None:
    site, folder = other_site
    base = app("--cors", site, "--mount", "/status")
    no_streams = "<script>window.EventSource = undefined;</script>\n"
    page_html = no_streams + _docs_example().replace("http://127.0.0.1:8000", base)
    (folder / "shop.html").write_text("<!doctype html><meta charset=utf-8>\n" + page_html)
    put(store, "export-42", status="working", progress=2, total=10)
    page = new_page(browser)
    streams = event_sources(page)
    page.goto(site + "/shop.html")
    page.locator('#export-bar .jobstatus-bar[aria-valuenow="20"]').wait_for()
    failed = jobstatus.get("export-42", store=store)
    failed.update(status="failed", exception={"class": "IOError", "message": "disk full"})
    page.locator("#export-failed").wait_for()
    assert page.locator("#export-bar .jobstatus-bar").get_attribute("data-state") == "failed"
    assert "disk full" not in page.content()  # the reason is private: not served
    assert streams == []
    page.screenshot(path=str(OUTPUT / "bar-failed.png"))


def test_the_drop_in_bar_calls_back_on_cancel(
    browser: Any, app: Start, store: SQLiteStore, other_site: tuple[str, Path]
) -> None:
    site, folder = other_site
    base = app("--cors", site, "--mount", "/status")
    page_html = _docs_example().replace("http://127.0.0.1:8000", base)
    (folder / "shop.html").write_text("<!doctype html><meta charset=utf-8>\n" + page_html)
    job = Job("export-42", name="shop.export", store=store)
    job.enqueued()
    job.started()
    jobstatus.get("export-42", store=store).update(progress=3, total=10)
    page = new_page(browser)
    problems = watch_problems(page)
    page.goto(site + "/shop.html")
    page.locator('#export-bar .jobstatus-bar[aria-valuenow="30"]').wait_for()
    assert jobstatus.cancel("export-42", reason="the user clicked cancel", store=store)
    job.finished(jobstatus.Cancelled("export-42", "the user clicked cancel"))  # as the job would
    assert jobstatus.get("export-42", store=store).is_cancelled
    page.wait_for_function("document.title === 'Export cancelled'")
    bar = page.locator("#export-bar .jobstatus-bar")
    assert bar.get_attribute("data-state") == "cancelled"
    # exactly one of the three final callbacks
    assert page.locator("#export-done").is_hidden() and page.locator("#export-failed").is_hidden()
    page.screenshot(path=str(OUTPUT / "bar-cancelled.png"))
    assert problems == []


def test_the_drop_in_bar_says_when_a_job_is_unknown(
    browser: Any, app: Start, store: SQLiteStore, other_site: tuple[str, Path]
) -> None:
    site, folder = other_site
    base = app("--cors", site, "--mount", "/status")
    page_html = _docs_example().replace("http://127.0.0.1:8000", base)
    (folder / "shop.html").write_text("<!doctype html><meta charset=utf-8>\n" + page_html)
    page = new_page(browser)
    warnings: list[str] = []
    page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
    page.goto(site + "/shop.html")
    page.locator('#export-bar .jobstatus-bar[data-state="error"]').wait_for()
    assert page.locator("#export-bar .jobstatus-bar-label").inner_text() == "no such job"
    page.wait_for_function("1")  # let the callback's console message arrive
    assert any("no status for this export: no such job" in text for text in warnings)
