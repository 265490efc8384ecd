"""A router in front of N instances: round-robin, least-loaded (fewest unfinished requests) or
prefix-affinity (the instance holding most of the prompt's leading blocks in its prefix cache,
the least loaded among equals, then the next in turn: llm-d's and Dynamo's KV-aware routing in
its simplest form)."""

from math import inf

import numpy as np

from planner.errors import PlannerError
from planner.simulate.replica import Replica

ROUTERS = ("round-robin", "least-loaded", "prefix-affinity")


def check_router(policy: str) -> None:
    """Reject an unknown routing policy."""
    if policy not in ROUTERS:
        raise PlannerError(f"unknown router {policy!r}; routers: {', '.join(ROUTERS)}")


def route(instances: list[Replica], rids: np.ndarray, times: np.ndarray, policy: str) -> np.ndarray:
    """Send requests `rids` arriving at `times` (sorted) to instances; run all to the end.

    Round-robin fixes the assignment up front, so each instance is simulated in one pass.
    Least-loaded and prefix-affinity need every instance's state at each arrival: all are
    advanced in lock step to the arrival time before the best one takes it.
    """
    count = len(instances)
    if count == 1 or policy == "round-robin":
        chosen = np.arange(len(rids)) % count
        for i, instance in enumerate(instances):
            for rid, t in zip(rids[chosen == i].tolist(), times[chosen == i].tolist(), strict=True):
                instance.push(rid, t)
    else:
        chosen = np.empty(len(rids), dtype=np.int64)
        for j, (rid, t) in enumerate(zip(rids.tolist(), times.tolist(), strict=True)):
            best, best_score = 0, (inf,)
            for i, instance in enumerate(instances):
                if instance.t < t and instance.busy:
                    instance.run(t)
                score = (instance.load,)
                if policy == "prefix-affinity":
                    score = (-instance.matched(rid), instance.load, (i - j) % count)
                if score < best_score:
                    best, best_score = i, score
            instances[best].push(rid, t)
            chosen[j] = best
    for instance in instances:
        instance.run()
    return chosen
