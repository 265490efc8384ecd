"""Provisioning delay: how long a new replica takes from request to serving its first request.

Measured from a cold-start trace in the store when one is given (the median `model_load_s`,
else `total_s`, of its `cold_starts` rows, e.g. a gentd26-load trace of GPU model loads).
Otherwise a default scaled by model size:

    delay = CONTAINER_START_S + weights_gb / LOAD_GB_PER_S + ENGINE_WARMUP_S

The constants are engineering assumptions, stated so they can be checked and overridden with a
measured trace (`--cold-starts TRACE`):
- CONTAINER_START_S = 30 s: scheduling a pod on a GPU node whose image is already cached,
  starting the container and initialising CUDA.
- LOAD_GB_PER_S = 1.0 GB/s: reading the weights from a network volume or object store through
  host memory to the GPUs (a local NVMe cache reaches 2-5 GB/s; remote object stores can be
  slower).
- ENGINE_WARMUP_S = 20 s: the serving engine's warm-up (KV-cache allocation, CUDA-graph capture).
For llama-3.1-8b in bf16 (15 GB) this gives 65 s. As a cross-check, the gentd26 release's
base-model load latencies on Alibaba's GPU serverless platform (Stable Diffusion checkpoints of
a few GB) have a median of 22.7 s and a p90 of 42 s (basemodel_update_latency_anon.csv).
"""

from dataclasses import dataclass

import duckdb

from planner.errors import PlannerError
from planner.store import get_trace

CONTAINER_START_S = 30.0
LOAD_GB_PER_S = 1.0
ENGINE_WARMUP_S = 20.0


@dataclass(frozen=True)
class ProvisioningDelay:
    """Seconds from requesting a replica to its serving, and where the figure comes from."""

    seconds: float
    source: str


def default_delay(model: str, weights_gb: float) -> ProvisioningDelay:
    """The documented default for a model whose weights take `weights_gb` GB in total."""
    seconds = CONTAINER_START_S + weights_gb / LOAD_GB_PER_S + ENGINE_WARMUP_S
    return ProvisioningDelay(
        seconds=round(seconds, 1),
        source=(
            f"default for {model} ({weights_gb:.0f} GB of weights): {CONTAINER_START_S:.0f} s "
            f"container start + weights at {LOAD_GB_PER_S:g} GB/s + {ENGINE_WARMUP_S:.0f} s "
            "warm-up (planner/scaling/delay.py)"
        ),
    )


def measured_delay(con: duckdb.DuckDBPyConnection, trace: str) -> ProvisioningDelay:
    """The median model-load (else total) cold-start time of a cold-start trace in the store."""
    info = get_trace(con, trace)
    row = con.execute(
        "SELECT count(*), median(model_load_s), median(total_s) FROM cold_starts "
        "WHERE trace_id = ?",
        [info.id],
    ).fetchall()[0]
    count, load, total = row
    if not count:
        raise PlannerError(
            f"trace {trace!r} has no cold starts (it is a {info.kind} trace); give a cold-start "
            "trace such as a gentd26-load or huawei-coldstart one"
        )
    which, seconds = ("model load", load) if load is not None else ("total", total)
    return ProvisioningDelay(
        seconds=round(float(seconds), 1),
        source=f"median {which} time of {count:,} cold starts in trace {trace!r}",
    )


def provisioning_delay(
    con: duckdb.DuckDBPyConnection, model: str, weights_gb: float, cold_starts: str | None
) -> ProvisioningDelay:
    """Measured from `cold_starts` when given, else the default for the model's size."""
    if cold_starts:
        return measured_delay(con, cold_starts)
    return default_delay(model, weights_gb)
