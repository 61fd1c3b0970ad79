"""A tiny harness: time both sides of a comparison in alternating rounds, report medians.

Shared machines are noisy, so each comparison runs its sides in turn
(A, B, A, B, ...) several times and keeps the median of each, then reports the
ratio. Results print as a markdown table and are saved as JSON.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


@dataclass
class Row:
    """One comparison: ours against a reference, in the same unit."""

    what: str
    ours: float
    reference_name: str
    reference: float
    unit: str  # "ns/op", "us/op", "ms", ...
    target: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """How many times the reference's speed we reach (>1 is faster than the reference)."""
        return self.reference / self.ours if self.ours else float("inf")


def per_op(fn: Callable[[int], None], n: int) -> float:
    """Seconds per operation of ``fn(n)``, which performs ``n`` operations."""
    start = time.perf_counter()
    fn(n)
    return (time.perf_counter() - start) / n


def alternate(sides: dict[str, Callable[[int], None]], n: int, rounds: int = 5) -> dict[str, float]:
    """Median seconds per op of each side, run in turn ``rounds`` times (after a warm-up)."""
    samples = alternate_samples(sides, n, rounds)
    return {name: statistics.median(values) for name, values in samples.items()}


def alternate_samples(
    sides: dict[str, Callable[[int], None]], n: int, rounds: int = 5
) -> dict[str, list[float]]:
    """Seconds per op of each side in each round, the sides run in turn (after a warm-up).

    Round ``i`` of every side ran back to back, so a per-round difference between two
    sides cancels the machine's slow drifts (see :func:`paired`).
    """
    for run in sides.values():
        run(max(1, n // 10))
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, run in sides.items():
            samples[name].append(per_op(run, n))
    return samples


def paired(ours: list[float], reference: list[float]) -> tuple[float, float, float]:
    """The median of the per-round differences ``ours - reference`` and its quartiles."""
    differences = [a - b for a, b in zip(ours, reference, strict=True)]
    return percentile(differences, 50), percentile(differences, 25), percentile(differences, 75)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def machine() -> str:
    import os

    system = f"{platform.system()} {platform.machine()}"
    return f"{system}, {os.cpu_count()} cores, Python {platform.python_version()}"


def report(title: str, rows: list[Row], name: str) -> str:
    """Print a markdown table of ``rows`` and save them as JSON under bench/results/."""
    lines = [
        f"### {title}",
        "",
        f"Machine: {machine()}",
        "",
        "| what | jobstatus | reference | ratio (ref time / ours) | target |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.what} | {row.ours:,.2f} {row.unit} | {row.reference_name}: "
            f"{row.reference:,.2f} {row.unit} | {row.ratio:.2f}x | {row.target} |"
        )
    table = "\n".join(lines)
    print(table + "\n", flush=True)
    RESULTS.mkdir(exist_ok=True)
    payload = {"machine": machine(), "rows": [asdict(row) | {"ratio": row.ratio} for row in rows]}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2))
    (RESULTS / f"{name}.md").write_text(table + "\n")
    return table
