"""Process-side instruments: what the lifecycle of the jobs a process runs records.

=================================  =========  ===============  ============================
Prometheus name                    kind       labels           OpenTelemetry name (unit)
=================================  =========  ===============  ============================
``jobstatus_transitions_total``    counter    name, status     ``jobstatus.transitions``
                                                               (``{transition}``)
``jobstatus_job_duration_seconds`` histogram  name, status     ``jobstatus.job.duration``
                                                               (``s``)
``jobstatus_job_wait_seconds``     histogram  name             ``jobstatus.job.wait`` (``s``)
=================================  =========  ===============  ============================

Each library records when it is installed (extras ``[prometheus]`` and
``[otel]``) and :func:`configure` has not turned it off. Nothing here imports
either: the first Job of the process looks them up (:func:`job_meter`), and
without both, nothing is imported and a Job's only cost is testing ``None``.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from typing import Final, Protocol

from .._errors import ConfigurationError
from .._record import parse_iso
from ._buckets import BUCKETS as BUCKETS

logger = logging.getLogger("jobstatus")

#: Distinct ``name`` labels one process records; later names count as OTHER_NAME.
#: Names are task names: an id in a name would otherwise grow a series per job.
MAX_NAMES: Final = 1000
OTHER_NAME: Final = "_other"
#: The label of a job that has no name.
NO_NAME: Final = ""
LIBRARIES: Final = {"prometheus": "prometheus_client", "otel": "opentelemetry.metrics"}


class Backend(Protocol):
    """One library's instruments (see ``_prometheus`` and ``_otel``)."""

    def transition(self, name: str, status: str) -> None:
        """Count one transition of a job named ``name`` to ``status``."""

    def duration(self, name: str, status: str, seconds: float) -> None:
        """Observe one attempt that ran ``seconds`` and left the job ``status``."""

    def wait(self, name: str, seconds: float) -> None:
        """Observe one job that waited ``seconds`` from queued to working."""


class Recorder:
    """The installed backends, fed the same observations, with the names bounded."""

    def __init__(self, backends: tuple[Backend, ...]) -> None:
        self.backends = backends
        self._names: set[str] = set()
        self._warned = False

    def label(self, name: str | None) -> str:
        """The ``name`` label for a job's name: past MAX_NAMES distinct ones, OTHER_NAME."""
        if name is None:
            return NO_NAME
        if name in self._names:
            return name
        if len(self._names) < MAX_NAMES:
            self._names.add(name)
            return name
        if not self._warned:
            self._warned = True
            logger.warning(
                "jobstatus metrics: more than %d task names in this process; the next ones "
                "(such as %r) are counted as name=%r. Names should be task names, not ids.",
                MAX_NAMES,
                name,
                OTHER_NAME,
            )
        return OTHER_NAME

    def transition(self, name: str, status: str) -> None:
        for backend in self.backends:
            backend.transition(name, status)

    def duration(self, name: str, status: str, seconds: float) -> None:
        for backend in self.backends:
            backend.duration(name, status, seconds)

    def wait(self, name: str, seconds: float) -> None:
        for backend in self.backends:
            backend.wait(name, seconds)


class JobMeter:
    """One Job's share of the instruments: its attempt's clock and the last status counted.

    ``began`` starts the clock (monotonic) when the job is recorded working;
    ``ended`` stops it and observes the duration with how the attempt ended:
    completed, failed, cancelled, or queued for a retry. A status recorded twice
    in a row (failed by hand, then raised) counts once.
    """

    __slots__ = ("recorder", "name", "last", "started")

    def __init__(self, recorder: Recorder, name: str) -> None:
        self.recorder = recorder
        self.name = name
        self.last: str | None = None
        self.started: float | None = None

    def moved(self, status: str) -> None:
        """The job moved to ``status``."""
        if status != self.last:
            self.last = status
            self.recorder.transition(self.name, status)

    def began(self, started_at: float, queued_at: str | None) -> None:
        """The attempt is recorded working at ``started_at`` (epoch seconds: the stamp
        it wrote, unparsed); it was queued since ``queued_at`` (the store's stamp)."""
        self.moved("working")
        self.started = time.monotonic()
        if queued_at is None:
            return
        queued = parse_iso(queued_at)
        if queued is not None:
            # Two machines' clocks: a publisher ahead of the worker is no negative wait.
            self.recorder.wait(self.name, max(started_at - queued, 0.0))

    def ended(self, status: str) -> None:
        """The attempt ended, leaving the job ``status``."""
        self.moved(status)
        if self.started is not None:
            self.recorder.duration(self.name, status, time.monotonic() - self.started)
            self.started = None


class _Choice:
    """What :func:`configure` asked for, and the recorder built from it (once)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wanted: dict[str, bool | None] = dict.fromkeys(LIBRARIES)
        self.resolved = False
        self.recorder: Recorder | None = None
        self.backends: dict[str, Backend] = {}  # built once: a registry refuses a name twice


_choice = _Choice()


def configure(*, prometheus: bool | None = None, otel: bool | None = None) -> None:
    """Choose which libraries record the process-side instruments.

    None (the default) records through each one that is installed; False
    turns it off; True requires it. Jobs made afterwards follow the choice.

    Raises:
        ConfigurationError: True for a library that is not installed, naming the extra.

    Example::

        jobstatus.metrics.configure(otel=False)  # Prometheus only
    """
    with _choice.lock:
        for extra, wanted in (("prometheus", prometheus), ("otel", otel)):
            if wanted and not _installed(LIBRARIES[extra]):
                raise ConfigurationError(
                    f"jobstatus metrics through {LIBRARIES[extra].split('.')[0]} need it "
                    f"installed: pip install 'jobstatus[{extra}]'"
                )
        _choice.wanted.update(prometheus=prometheus, otel=otel)
        _choice.resolved = False


def recorder() -> Recorder | None:
    """The process's recorder, or None when no library records (then nothing is imported)."""
    if not _choice.resolved:
        with _choice.lock:
            if not _choice.resolved:
                _choice.recorder = _build()
                _choice.resolved = True
    return _choice.recorder


def job_meter(name: str | None) -> JobMeter | None:
    """A new Job's meter, or None when no library records."""
    found = recorder()
    return None if found is None else JobMeter(found, found.label(name))


def _build() -> Recorder | None:
    backends = []
    for extra, module in LIBRARIES.items():
        wanted = _choice.wanted[extra]
        if wanted is False or (wanted is None and not _installed(module)):
            continue
        if extra not in _choice.backends:
            _choice.backends[extra] = _backend(extra)
        backends.append(_choice.backends[extra])
    return Recorder(tuple(backends)) if backends else None


def _backend(extra: str) -> Backend:
    # Imported here: importing them is what this module avoids until a library records.
    if extra == "prometheus":
        from . import _prometheus

        return _prometheus.Instruments.shared()
    from . import _otel

    return _otel.Instruments()


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module without spec
        return False
