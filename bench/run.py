"""Run every benchmark (bench/bench_*.py) and append the results to BENCHMARKS.md.

Usage: python bench/run.py [NAME ...]   (NAME = ingest, analyze, ... ; default all)
"""

import datetime as dt
import importlib
import json
import os
import platform
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))


def machine() -> str:
    """One line describing this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = cpu
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {os.cpu_count()} cores, {mem:.0f} GiB, Python {platform.python_version()}"


def main(names: list[str]) -> None:
    """Run the chosen benchmarks and append one dated section to BENCHMARKS.md."""
    available = sorted(p.stem.removeprefix("bench_") for p in BENCH.glob("bench_*.py"))
    chosen = names or available
    unknown = set(chosen) - set(available)
    if unknown:
        sys.exit(f"unknown benchmark(s) {sorted(unknown)}; available: {available}")
    lines = [f"\n## {dt.date.today().isoformat()} — {machine()}\n"]
    for name in chosen:
        print(f"running {name} ...", file=sys.stderr)
        result = importlib.import_module(f"bench_{name}").run()
        print(json.dumps(result), file=sys.stderr)
        lines.append(f"### {result.get('name', name)}\n")
        lines.append("| figure | value |\n|---|---|")
        lines.extend(f"| {k} | {v} |" for k, v in result.items() if k != "name")
        lines.append("")
    out = ROOT / "BENCHMARKS.md"
    if not out.exists():
        out.write_text("# Benchmarks\n\nAppended by `python bench/run.py`; newest last.\n")
    with out.open("a") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"appended to {out}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
