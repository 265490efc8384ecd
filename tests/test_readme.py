"""README.md runs top to bottom: every ```console block's commands, in order, in one folder.

What is a command: a line of a ```console block that starts with `$ `; a trailing backslash joins
the next line (the README indents it), and the `> ` lines right after a command are its
continuation (a here-document's body, as a shell shows it). A `#` comment after a command is
dropped. Every other line up to the next command is that command's shown output.

Where they run: all commands of all blocks run in order in one temporary folder `tmp/work`, next
to a symlink `tmp/shared` to the real shared folder, so `../shared/data/...` resolves exactly as
it does from the repository root; `./planner.duckdb` there is the one store they share
(`PLANNER_DB` is unset). `planner ...` commands run in-process through typer's CliRunner on
`cli.app` (what the `planner` entry point calls; a subprocess per command would add an interpreter
start and the imports to each of some 30 commands); any other command (`cat > f <<'EOF'`, `head`)
runs through `bash -c`. The whole test skips with a reason when the shared folder is absent.

What is checked, for each command:
- the exit code is 1 when its shown output starts with `error:`, else 0;
- every shown output line, except blank lines and `...`, appears in the actual output (stdout
  and stderr): whitespace runs collapsed, numbers masked to `#` on both sides; a shown line may
  be part of an actual line (the README wraps long lines; whole words at its ends) and `...` in
  it stands for anything, so its pieces must appear in order in one actual line. Masking
  numbers keeps the check independent of wall-clock times (`(44 s)`) and of the last digits of
  fitted values that a new numpy or scipy may move, while still catching a renamed column, a
  changed message or a missing row;
- the first shown output line also matches with its numbers (whitespace collapsed, `...` as
  above): row counts, spans, costs and messages must be what the command prints now.

Exempt (EXEMPT below): commands too slow for a test; each runs a stated smaller variant instead,
whose exit code and a few stated output fragments (numbers masked) are checked.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli

README = Path(__file__).resolve().parents[1] / "README.md"
SHARED = Path(__file__).resolve().parents[2] / "shared"


@dataclass
class Step:
    """One README command: as the shell gets it, its shown output and where it is."""

    command: str
    shown: list[str] = field(default_factory=list)
    line: int = 0


@dataclass
class Exempt:
    """A README command replaced by a smaller variant: why, what runs, what must show."""

    reason: str
    instead: list[str]
    expect: list[str]


# Commands (matched by their start) that run too long for a test, each with a smaller variant.
EXEMPT = {
    # The full fit replays every measured benchmark's closed loop: 6.5 min on 2 cores without
    # --report, 14 CPU-minutes with it. The variant fits the step profile only (3 s).
    "planner calibrate ": Exempt(
        "fits the engines by replaying the measured benchmarks: over 6 minutes",
        ["planner calibrate ../shared/data/profiles/h100_dense_steps.jsonl --out cal.json"],
        ["h100: 320 points; gemm", "of peak, host", "wrote cal.json"],
    ),
    # 917 rows, each a full serving simulation: about 60 s (85 CPU-s here). The variant validates
    # the first 40 rows of the same file (5 s; the header line and the `predicted` line checked).
    "planner validate ": Exempt(
        "simulates 917 measured benchmarks: about 60 s",
        [
            "head -n 41 ../shared/data/profiles/aiconfigurator/silicon_h100.csv > silicon-40.csv",
            "planner validate silicon-40.csv --out pred-40.csv",
        ],
        [
            "engine model mode rows predicted TTFT MAPE % TPOT MAPE %",
            "predicted 40 of 40 rows (100.0%)",
            "wrote pred-40.csv",
        ],
    ),
    # 109 series x 7 methods x 2 origins: about 100 s. The variant backtests the trace total (3 s).
    "planner backtest m-mid": Exempt(
        "backtests 7 methods on 109 series: about 100 s",
        ["planner backtest m-mid --total"],
        ["method series mase_median rel_mase_median", "selected (auto) 1"],
    ),
}

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def readme_steps(text: str) -> list[Step]:
    """Every command of every ```console block, in order, with its shown output."""
    steps: list[Step] = []
    in_block = False
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.startswith("```"):
            in_block = line.strip() == "```console" if not in_block else False
            continue
        if not in_block:
            continue
        if line.startswith("$ "):
            step = Step(line[2:], line=i)
            while step.command.endswith("\\") and i < len(lines):
                step.command = step.command[:-1].rstrip() + " " + lines[i].strip()
                i += 1
            while i < len(lines) and lines[i].startswith("> "):
                step.command += "\n" + lines[i][2:]
                i += 1
            steps.append(step)
        elif steps:
            steps[-1].shown.append(line)
    return steps


def exemption(command: str) -> Exempt | None:
    """The EXEMPT entry for a command, if any."""
    hits = [e for start, e in EXEMPT.items() if command.startswith(start)]
    assert len(hits) <= 1, command
    return hits[0] if hits else None


def norm(text: str) -> str:
    """Escape codes dropped, whitespace runs collapsed."""
    return " ".join(ANSI.sub("", text).split())


def mask(text: str) -> str:
    """Every number as `#`."""
    return NUMBER.sub("#", text)


def appears(shown: str, actual: list[str], masked: bool) -> bool:
    """Whether the shown line's pieces (split at `...`) appear in order in one actual line, whole
    words at the ends that no `...` opens up."""
    keep = mask if masked else (lambda s: s)
    text = norm(shown)
    pieces = [keep(p.strip()) for p in text.split("...") if p.strip()]
    if not pieces:
        return True
    if not text.startswith("..."):
        pieces[0] = " " + pieces[0]
    if not text.endswith("..."):
        pieces[-1] += " "
    for line in actual:
        line, pos = f" {keep(norm(line))} ", 0
        for piece in pieces:
            pos = line.find(piece, pos)
            if pos < 0:
                break
            pos += len(piece)
        else:
            return True
    return False


def run(command: str, work: Path) -> tuple[int, str]:
    """A command's exit code and output: `planner` in-process, anything else through bash."""
    if command.startswith("planner "):
        argv = shlex.split(command, comments=True)
        assert not {"|", ">", "<", "&&", ";"} & set(argv), f"shell syntax in {command!r}"
        result = CliRunner().invoke(cli.app, argv[1:])
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.output
    done = subprocess.run(
        ["bash", "-c", command], cwd=work, capture_output=True, text=True, timeout=300
    )
    return done.returncode, done.stdout + done.stderr


def test_readme_parses() -> None:
    """The parser finds the README's commands, and every exemption names one of them."""
    steps = readme_steps(README.read_text())
    commands = [s.command for s in steps]
    assert "planner demo" in commands and len(commands) > 20
    # Only the CLI and harmless file commands: the test runs every one of them.
    assert all(s.command.split()[0] in {"planner", "cat", "head"} for s in steps), commands
    for start in EXEMPT:
        assert sum(c.startswith(start) for c in commands) == 1, start
    example = readme_steps(
        "```console\n$ planner a \\\n    b  # note\nout 1\n$ cat > f <<'EOF'\n> x\n> EOF\n```\n"
        "```bash\n$ not a command\n```\n"
    )
    assert [(s.command, s.shown) for s in example] == [
        ("planner a b  # note", ["out 1"]),
        ("cat > f <<'EOF'\nx\nEOF", []),
    ]
    assert appears("a ... 2 s)", ["a b c (38 s)"], masked=True)
    assert not appears("a ... 2 s)", ["a b c (38 s)"], masked=False)
    assert not appears("x y", ["y x"], masked=True)
    assert not appears("azure-cod 1", ["azure-code 1"], masked=True)
    assert appears("peak, scaled by", ["at the forecast peak, scaled by the schedule"], masked=True)


def test_readme_runs_top_to_bottom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every README command, in order, in one folder: exit codes and shown output hold."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"shared data not available: {SHARED / 'data'} (the README's examples use it)")
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared").symlink_to(SHARED, target_is_directory=True)
    monkeypatch.chdir(work)
    monkeypatch.delenv("PLANNER_DB", raising=False)
    failures: list[str] = []
    for step in readme_steps(README.read_text()):
        where = f"README.md:{step.line}: $ {step.command}"
        exempt = exemption(step.command)
        if exempt is not None:
            where += f"\n  (exempt: {exempt.reason}; its smaller variant ran)"
            for command in exempt.instead:
                code, output = run(command, work)
                if code != 0:
                    failures.append(f"{where}\n  `{command}` exit {code}:\n{output}")
            actual = output.splitlines()
            failures += [
                f"{where}\n  missing (numbers masked): {line}\n  output:\n{output}"
                for line in exempt.expect
                if not appears(line, actual, masked=True)
            ]
            continue
        code, output = run(step.command, work)
        shown = [line for line in step.shown if line.strip() and line.strip() != "..."]
        expected = 1 if shown and shown[0].startswith("error:") else 0
        if code != expected:
            failures.append(f"{where}\n  exit {code}, expected {expected}:\n{output}")
            continue
        actual = output.splitlines()
        if shown and not appears(shown[0], actual, masked=False):
            failures.append(f"{where}\n  first line differs: {shown[0]}\n  output:\n{output}")
        failures += [
            f"{where}\n  missing (numbers masked): {line}\n  output:\n{output}"
            for line in shown
            if not appears(line, actual, masked=True)
        ]
    assert not failures, "\n".join(failures)
