"""The command line's own options and help: --version, -h, defaults and flags shown in help."""

import importlib.metadata

from conftest import invoke


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout == f"planner {importlib.metadata.version('planner')}\n"


def test_short_help_shows_defaults_and_flags() -> None:
    result = invoke("plan", "-h")
    assert result.exit_code == 0
    assert result.stdout == invoke("plan", "--help").stdout
    assert "[default:" in result.stdout and "0.99" in result.stdout
    assert "./planner.duckdb" in result.stdout  # written into --db's help text
    json_line = next(line for line in result.stdout.splitlines() if "--json" in line)
    assert "<bool>" not in json_line  # a flag, not an option taking a value
    assert invoke("-h").exit_code == 0 and "--version" in invoke("-h").stdout


def test_progress_messages_that_count_move_the_bar() -> None:
    """A message ending in k/n sets the bar to k of n (so it shows an ETA); others only label."""
    from cli import progress, reporter

    with progress(False) as bar:
        task = bar.add_task("planning", total=None)
        say = reporter(bar, task)
        say("choosing the accelerator mix")
        assert bar.tasks[0].total is None and bar.tasks[0].description.startswith("choosing")
        say("simulating h100-tp1-agg-b128, plan 3/56")
        assert (bar.tasks[0].completed, bar.tasks[0].total) == (3, 56)
        say("leave out Qwen/Qwen3-32B")
        assert (bar.tasks[0].completed, bar.tasks[0].total) == (3, 56)
