"""Heartbeats and stale jobs: a worker that dies without a word is noticed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import jobstatus
from jobstatus import ConfigurationError, Job
from jobstatus._heartbeat import heartbeat


def test_an_idle_running_job_beats_and_flushes_what_it_holds() -> None:
    jobstatus.configure(store="memory://", throttle_interval=3600, heartbeat_interval=0.2)
    job = Job("idle")
    job.started()
    first = jobstatus.get("idle")["updated_at"]
    job.status.progress.increment(7)  # held by the throttle
    time.sleep(0.3)  # past the interval: the heartbeat thread beats, or this call does
    heartbeat.beat_due()  # (it counts 0 when the thread has just beaten)
    deadline = time.monotonic() + 10
    while (s := jobstatus.get("idle")).progress.current != 7:  # the thread's write landing
        assert time.monotonic() < deadline, "the held progress was never flushed"
        time.sleep(0.02)
    assert s["updated_at"] > first
    assert not s.is_stale
    job.finished()
    time.sleep(0.3)
    assert heartbeat.beat_due() == 0  # finished jobs no longer beat


def test_heartbeats_can_be_turned_off() -> None:
    jobstatus.configure(store="memory://", heartbeat_interval=0)
    job = Job("quiet")
    job.started()
    assert heartbeat.beat_due() == 0
    job.finished()


def test_a_killed_worker_reads_as_stale(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hb.db'}"
    jobstatus.configure(store=url, heartbeat_interval=0.3, stale_after=1.5)
    code = textwrap.dedent(f"""
        import time, jobstatus
        from jobstatus import Job
        jobstatus.configure(store={url!r}, heartbeat_interval=0.3)
        job = Job("victim")
        job.started()
        print("started", flush=True)
        time.sleep(60)
    """)
    worker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "started"
        time.sleep(2.0)  # longer than stale_after: only heartbeats keep it fresh
        alive = jobstatus.get("victim")
        assert alive.is_working and not alive.is_stale
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        time.sleep(2.0)
        dead = jobstatus.get("victim")
        assert dead.is_working and dead.is_stale  # the record never said it ended
        batch = jobstatus.Batch(["victim"])
        assert batch.stale == 1 and batch.counts["working"] == 1
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
        assert worker.stdout is not None
        worker.stdout.close()


def test_stale_after_is_validated() -> None:
    with pytest.raises(ConfigurationError, match="stale_after"):
        jobstatus.configure(stale_after=0)
    with pytest.raises(ConfigurationError, match="heartbeat_interval"):
        jobstatus.configure(heartbeat_interval=-1)
