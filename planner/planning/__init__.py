"""make_plan: the whole `planner plan` pipeline, from a stored trace to the plan file model.

1. Candidates (accelerator x tp x pp x ep x mode x P:D x max batch) that fit in memory
   (planner/optimize/candidates.py).
2. Demand: the trace's request rate per interval; forecast quantiles for the horizon after
   the trace, for a held-back tail of the trace (the last horizon, at most half of it) and
   for up to three windows as long before that tail (where the hybrid's settings are chosen);
   the drift of the token mix from the history before the tail to the horizon's end, where a
   trend beats the recent mix on a backtest (planner/forecast/tokens.py).
3. Search: simulated per-replica goodput of the candidates that can matter
   (planner/optimize/search.py).
4. Mix: the least-cost replica counts serving the forecast peak (MILP), within availability
   and budget, each group's goodput measured at its own size (planner/optimize/refine.py);
   otherwise an explanation of the binding constraint (planner/optimize/infeasible.py).
5. Schedule: replicas per interval for the forecast quantile, started a provisioning delay
   ahead, with scale-down hysteresis; for the peak mix and for the best single-accelerator
   mix alike, and the one that costs less on its schedule is recommended (so the two monthly
   figures the sentence and the report compare are on the same basis,
   planner/scaling/fleet.py, priced by planner/optimize/costing.py).
6. Replay: the held-back tail through the simulator under the schedule (forecast from the
   history before it), static provisioning at its forecast peak, reactive autoscalers, and the
   hybrid of a forecast schedule as a floor with the HPA above it (planner/scaling/holdout.py),
   its settings chosen by replaying the windows before the tail (planner/scaling/tuning.py).
7. PLAN.json: the figures above, with the one-sentence recommendation quoting the replayed
   attainment beside the target, and the warnings (replay more than a point off the target,
   requests over the context) (planner/report/narrative.py), as the plan file model of
   planner/optimize/planfile.py.

Here: `setting.py` resolves the options and forecasts the demand (step 2), `sizing.py` samples
the request mix, searches, mixes and schedules it, one length-pool split at a time with
--buckets (steps 3-5), and replays the tail (step 6); `assemble.py` builds the plan file model
(step 7). `plan_to_artefacts` is `planner plan` and `planner demo` alike: plan, then write
PLAN.json, its tables and the report (planner/report/artefacts.py).
"""

import time
from collections.abc import Callable

import duckdb

from planner.optimize.candidates import enumerate_candidates
from planner.optimize.infeasible import check_model_fits
from planner.optimize.planfile import PlanFile
from planner.planning.assemble import plan_file
from planner.planning.setting import PlanOptions, forecast_horizon, resolve, say
from planner.planning.sizing import plan_pools, replay_tail
from planner.report.artefacts import Artefacts, Written
from planner.store import open_store

WRITING = "writing the plan and the report"

__all__ = ["WRITING", "PlanOptions", "make_plan", "plan_to_artefacts"]


def make_plan(
    con: duckdb.DuckDBPyConnection,
    opts: PlanOptions,
    progress: Callable[[str], None] | None = None,
) -> PlanFile:
    """The cheapest plan holding the SLO for `opts.trace`, its schedule and replay (PLAN.json).

    Every replica is simulated as `opts.engine` serves (its batching, memory share and host
    costs).
    """
    started = time.perf_counter()
    s = resolve(con, opts)
    say(progress, "enumerating candidate plans")
    enum = enumerate_candidates(s.card.id, s.accelerators, s.catalog, s.profile)
    check_model_fits(s.card.id, enum.candidates, enum.unfit, s.accelerators)
    say(progress, "forecasting demand")
    h = forecast_horizon(con, opts)
    say(progress, "sampling the request mix")
    r, c, pools = plan_pools(con, opts, s, h, enum, progress)
    say(progress, "replaying the held-back trace")
    replayed = replay_tail(con, opts, s, h, r, c)
    return plan_file(opts, s, h, r, c, replayed, pools, started)


def plan_to_artefacts(
    opts: PlanOptions, artefacts: Artefacts, progress: Callable[[str], None] | None = None
) -> tuple[PlanFile, Written]:
    """`planner plan` and `planner demo`: plan on the store `opts.db`, then write the outputs.

    The outputs are checked before the search (a path that cannot be written fails in a second,
    not after minutes of simulation), and written once the store is closed again (the report
    reads it).
    """
    artefacts.check()
    con = open_store(opts.db or None, read_only=True)
    try:
        planned = make_plan(con, opts, progress)
    finally:
        con.close()
    say(progress, WRITING)
    return planned, artefacts.write(planned)
