"""Run every benchmark in one go: ``python -m bench`` (or ``python -m bench core redis``).

Each ``bench/bench_*.py`` runs in its own process, one after the other, so
they do not disturb each other; their markdown tables are printed and collected
in ``bench/results/summary.md``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def main(only: list[str]) -> int:
    modules = sorted(path.stem for path in HERE.glob("bench_*.py"))
    if only:
        modules = [name for name in modules if name.removeprefix("bench_") in only]
    sections, failed = [], []
    for module in modules:
        print(f"== {module}", flush=True)
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", f"bench.{module}"],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
        )
        print(result.stdout, flush=True)
        if result.returncode != 0:
            failed.append(module)
            print(result.stderr[-3000:], file=sys.stderr)
        sections.append(result.stdout.strip())
        print(f"   ({time.monotonic() - started:.0f} s)\n", flush=True)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "summary.md").write_text("\n\n".join(sections) + "\n")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
