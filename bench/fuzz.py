"""Fuzz every trace reader: `python bench/fuzz.py [--per-reader 10000] [--seed N]`.

Runs mutated real samples (tests/fuzz_inputs.py: truncation, byte flips, bad archives, wrong
types, NaN / inf / negative numbers, wrong or duplicated columns, encodings, deep JSON, PMFs
that do not sum to 1, ...) through `planner.ingest.ingest_path`, the API `planner ingest`
calls, and prints one row per reader family: inputs, accepted with valid rows, refused with a
one-line error naming the file, uncaught exceptions, store changes, semantically invalid
accepted inputs, and refusals whose message is not one line naming the file. Families whose
real data is not on this machine are listed as skipped. Cases run in chunks (`--chunk`), every
family's in turn, on `--jobs` worker processes; `--minutes` stops at a deadline with the counts
reached (equal for every family, give or take a chunk). A failure is printed with its key
(family:seed:index), which `--replay KEY` runs again alone with the outcome in full.
"""

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzz_inputs import FAMILIES, OUTCOMES, Fuzzer, Tally, Unavailable  # noqa: E402

COLUMNS = ("inputs", *OUTCOMES, "worker-s")
HEADINGS = {
    "accepted": "accepted-valid",
    "refused": "refused-1-line",
    "uncaught": "uncaught",
    "store-changed": "store-changes",
    "invalid": "invalid-accepted",
    "bad-message": "bad-message",
}


def _chunk(args: tuple[str, int, int, int, float | None]) -> tuple[str, Tally | str]:
    """Run cases [start, start + count) of one family, stopping at `deadline` (time.time())."""
    family_id, seed, start, count, deadline = args
    tally = Tally(family_id)
    if deadline is not None and time.time() > deadline:
        return family_id, tally
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{family_id}-") as tmp:
        try:
            fuzzer = Fuzzer(FAMILIES[family_id], Path(tmp))
        except Unavailable as exc:
            return family_id, str(exc)
        began = time.perf_counter()
        try:
            for index in range(start, start + count):
                if deadline is not None and time.time() > deadline:
                    break
                tally.add(fuzzer.run(fuzzer.case(seed, index)))
        finally:
            fuzzer.close()
        tally.seconds = time.perf_counter() - began
    return family_id, tally


def _merge(into: Tally, part: Tally) -> None:
    for kind, n in part.counts.items():
        into.counts[kind] += n
    for kind, examples in part.examples.items():
        kept = into.examples.setdefault(kind, [])
        kept += examples[: max(0, 5 - len(kept))]
    into.seconds += part.seconds


def table(tallies: dict[str, Tally], skipped: dict[str, str]) -> str:
    """A Markdown table: one row per family and a total."""
    head = ["family", *(HEADINGS.get(c, c) for c in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    total = Tally("all")
    for family_id, tally in tallies.items():
        for k, v in tally.counts.items():
            total.counts[k] += v
        total.seconds += tally.seconds
        lines.append(_row(family_id, tally))
    lines.append(_row("**all**", total))
    for family_id, reason in skipped.items():
        lines.append(f"| {family_id} | skipped: {reason} |" + " |" * (len(head) - 2))
    return "\n".join(lines)


def _row(name: str, tally: Tally) -> str:
    cells = [f"{tally.inputs:,}", *(f"{tally.counts[k]:,}" for k in OUTCOMES)]
    return f"| {name} | " + " | ".join([*cells, f"{tally.seconds:,.0f}"]) + " |"


def replay(key: str) -> None:
    """Run one case again and print everything about it."""
    family_id, seed, index = key.rsplit(":", 2)
    with tempfile.TemporaryDirectory() as tmp:
        fuzzer = Fuzzer(FAMILIES[family_id], Path(tmp))
        case = fuzzer.case(int(seed), int(index))
        print(f"case {case.key}: {' '.join(case.mutations)}")
        print(f"  path {case.path} format {case.fmt} name {case.name} replace {case.replace}")
        print(f"  expected rows {case.expected_rows}")
        outcome = fuzzer.run(case)
        print(f"  {outcome.kind}: {outcome.detail}")
        fuzzer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-reader", type=int, default=10_000, help="inputs per family")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--families", help="comma-separated family ids (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--chunk", type=int, default=500, help="cases per worker task")
    parser.add_argument(
        "--minutes", type=float, help="stop after this long (every family gets as many inputs)"
    )
    parser.add_argument("--replay", help="run one case family:seed:index and show it")
    args = parser.parse_args()
    if args.replay:
        replay(args.replay)
        return
    ids = args.families.split(",") if args.families else list(FAMILIES)
    unknown = [f for f in ids if f not in FAMILIES]
    if unknown:
        parser.error(f"unknown family {unknown[0]!r}; families: {', '.join(FAMILIES)}")
    start = time.time()
    deadline = start + args.minutes * 60 if args.minutes else None
    # chunks of every family in turn, so that a deadline leaves the families with equal counts
    tasks = [
        (f, args.seed, first, min(args.chunk, args.per_reader - first), deadline)
        for first in range(0, args.per_reader, args.chunk)
        for f in ids
    ]
    tallies: dict[str, Tally] = {f: Tally(f) for f in ids}
    skipped: dict[str, str] = {}
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for family_id, result in pool.imap_unordered(_chunk, tasks):
            if isinstance(result, str):
                if family_id not in skipped:
                    print(f"{family_id}: skipped ({result})", flush=True)
                skipped[family_id] = result
                continue
            _merge(tallies[family_id], result)
            if result.inputs:
                done = sum(t.inputs for t in tallies.values())
                print(
                    f"{family_id}: +{result.inputs:,} ({tallies[family_id].inputs:,}), "
                    f"{result.failures} failure(s); {done:,} inputs, "
                    f"{time.time() - start:,.0f} s",
                    flush=True,
                )
    for family_id, tally in tallies.items():
        for kind, examples in tally.examples.items():
            for example in examples:
                print(f"  {family_id} {kind}: {example}", flush=True)
    tallies = {f: t for f, t in tallies.items() if f not in skipped}
    ordered = {f: tallies[f] for f in ids if f in tallies}
    print()
    print(f"seed {args.seed}, {time.time() - start:,.0f} s wall, {args.jobs} worker process(es)")
    print(table(ordered, skipped))
    if any(t.failures for t in ordered.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
