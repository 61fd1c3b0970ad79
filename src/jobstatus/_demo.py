"""The jobs ``jobstatus demo`` runs: importable, so process pools can run them."""

from __future__ import annotations

import random
import time

import jobstatus


@jobstatus.track(name="resize images")
def resize_images(count: int) -> int:
    status = jobstatus.current()
    status.progress.total = count
    for n in range(count):
        status["step"] = f"image_{n:03}.png"
        time.sleep(0.08)
        status.progress.increment()
    return count


@jobstatus.track(name="export report", throttle_interval=0.25)
def export_report(rows: int) -> str:
    """Many tiny steps with throttled progress: few writes, nothing lost."""
    status = jobstatus.current()
    status.progress.total = rows
    for _ in range(rows):
        time.sleep(0.0004)
        status.progress.increment()
    status.update({"path": "report.csv"}, force=True)
    return "report.csv"


@jobstatus.track(name="send emails", includes={"status", "exception"})
def send_emails(count: int) -> None:
    """Fails on purpose part-way through."""
    status = jobstatus.current()
    status.progress.total = count
    for n in range(count):
        if n == count * 2 // 3:
            raise ConnectionError("SMTP server refused the connection (on purpose)")
        time.sleep(0.1)
        status.progress.increment()


@jobstatus.track(name="sync inventory")
def sync_inventory(pages: int) -> None:
    """Discovers its total only after a while."""
    status = jobstatus.current()
    status["step"] = "counting pages"
    time.sleep(1.0)
    status.progress.total = pages
    for _ in range(pages):
        time.sleep(random.uniform(0.05, 0.15))
        status.progress.increment()
