"""Provisioning delay: how long a new replica takes from request to serving its first request.

Measured from a cold-start trace in the store when one is given (the median `model_load_s`,
else `total_s`, of its `cold_starts` rows, e.g. a gentd26-load trace of GPU model loads).
Otherwise a default for the plan's replicas, the slowest of them (a scale-up waits for it):

    delay = CONTAINER_START_S + weights_gb / (load_gbs x GPUs per instance) + warmup_s

Each GPU of an instance reads its shard of the weights at the accelerator's `load_gbs` (catalog
field; absent: 1 GB/s), the shards in parallel, and the engine then warms up for its
profile's `warmup_s` (``[runtime]``). The constants are engineering assumptions, stated so they
can be checked and overridden (a catalog file's `load_gbs`, an engine profile's `warmup_s`, or
a measured trace: `--cold-starts TRACE`):
- CONTAINER_START_S = 30 s: scheduling a pod on a GPU node whose image is already cached,
  starting the container and initialising CUDA.
- load_gbs = 1 GB/s per GPU unless the catalog says otherwise: reading the weights from a
  network volume through host memory with a streaming loader. Measured (NVIDIA Technical Blog,
  "Reducing Cold Start Latency for LLM Inference with NVIDIA Run:ai Model Streamer", 2025:
  Llama 3 8B, about 15 GB, on an AWS g5.12xlarge): the Run:ai Model Streamer loads it in 14.3 s
  from a GP3 volume (about 1.05 GB/s, the volume's throughput) and in 7.5 s from IO2 (about
  2 GB/s); vLLM's default safetensors loader takes 48 s from GP3 (about 0.3 GB/s). A local NVMe
  cache is faster, remote object stores can be slower.
- warmup_s = 20 s in the bundled engine profiles: KV-cache profiling, compilation and CUDA-graph
  capture.
For llama-3.1-8b in bf16 (16 GB) on one GPU this gives 66 s; on a TP2 replica 58 s. As a
cross-check, the gentd26 release's base-model load latencies on Alibaba's GPU serverless
platform (Stable Diffusion checkpoints of a few GB) have a median of 22.7 s and a p90 of 42 s
(basemodel_update_latency_anon.csv).

Elastic MoE scale-up (`--elastic-moe`, mixture-of-experts models only): ElasticMoE (Singh et
al., "ElasticMoE: An Efficient Auto Scaling Method for Mixture-of-Experts Models", arXiv
2510.02613, 2025; measured on Ascend NPUs) adds accelerators to a running deployment without a
restart: weights and KV caches are remapped in place, newly added devices are filled by
peer-to-peer transfers from devices already serving, and serving goes on meanwhile (up to about
9x lower scale-up latency than its baselines). Planned as

    delay = weights_gb / (scale_out_gbs x GPUs per instance) + warmup_s

each GPU of the new instance copying its shard from a serving replica at the accelerator's
scale-out bandwidth (catalog `scale_out_gbs`, the per-GPU network link), no container start (the
joining devices' runtime is assumed started while the deployment serves), and the engine's
warm-up for the new layout. Every plan keeps at least one replica of each accelerator it serves
on (the schedule's floor), so every scale-up the replay sees has a peer to copy from. For
deepseek-v3 (671 GB in FP8) on TP8 H200: 671 / (50 x 8) + 20 = 22 s, against 134 s cold.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb

from planner.costmodel import Accelerator
from planner.errors import PlannerError
from planner.store import get_trace

CONTAINER_START_S = 30.0


@dataclass(frozen=True)
class ProvisioningDelay:
    """Seconds from requesting a replica to its serving, and where the figure comes from."""

    seconds: float
    source: str


@dataclass(frozen=True)
class Instance:
    """What one serving instance of a plan starts on: its accelerator and GPU count."""

    accelerator: Accelerator
    gpus: int


def _slowest(instances: Sequence[Instance], gbs: Callable[[Accelerator], float]) -> Instance:
    """The instance whose shards take longest to arrive at `gbs` GB/s per GPU."""
    return min(instances, key=lambda i: gbs(i.accelerator) * i.gpus)


def default_delay(
    model: str, weights_gb: float, instances: Sequence[Instance], warmup_s: float
) -> ProvisioningDelay:
    """The documented default for a model whose weights take `weights_gb` GB in total, for the
    slowest-starting of `instances` (shards loading in parallel) and the engine's warm-up."""
    slowest = _slowest(instances, lambda a: a.load_gbs)
    rate = slowest.accelerator.load_gbs * slowest.gpus
    seconds = CONTAINER_START_S + weights_gb / rate + warmup_s
    origin = slowest.accelerator.load_source or "default"
    return ProvisioningDelay(
        seconds=round(seconds, 1),
        source=(
            f"default for {model} ({weights_gb:.0f} GB of weights) on {slowest.gpus} x "
            f"{slowest.accelerator.id}: {CONTAINER_START_S:.0f} s container start + weights "
            f"at {slowest.accelerator.load_gbs:g} GB/s per GPU ({origin}) + {warmup_s:.0f} s "
            "engine warm-up (planner/scaling/delay.py)"
        ),
    )


def elastic_delay(
    model: str, weights_gb: float, instances: Sequence[Instance], warmup_s: float
) -> ProvisioningDelay:
    """An ElasticMoE scale-up: shards copied from a serving replica over each GPU's scale-out
    link, no container start, then the engine's warm-up (see the module docstring)."""
    slowest = _slowest(instances, lambda a: a.scale_out_gbs)
    rate = slowest.accelerator.scale_out_gbs * slowest.gpus
    return ProvisioningDelay(
        seconds=round(weights_gb / rate + warmup_s, 1),
        source=(
            f"elastic MoE scale-up for {model} ({weights_gb:.0f} GB of weights) on "
            f"{slowest.gpus} x {slowest.accelerator.id}: shards copied from a serving replica at "
            f"{slowest.accelerator.scale_out_gbs:g} GB/s per GPU (scale-out link) + "
            f"{warmup_s:.0f} s engine warm-up, no container start (ElasticMoE, arXiv "
            "2510.02613; planner/scaling/delay.py)"
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
    con: duckdb.DuckDBPyConnection,
    model: str,
    weights_gb: float,
    cold_starts: str | None,
    instances: Sequence[Instance],
    warmup_s: float,
    elastic: bool = False,
) -> ProvisioningDelay:
    """Measured from `cold_starts` when given, else the elastic MoE scale-up when asked, else
    the default for the plan's instances."""
    if cold_starts and elastic:
        raise PlannerError(
            "--cold-starts measures cold starts and --elastic-moe plans scale-ups into a running "
            "deployment; give one of them"
        )
    if cold_starts:
        return measured_delay(con, cold_starts)
    if elastic:
        return elastic_delay(model, weights_gb, instances, warmup_s)
    return default_delay(model, weights_gb, instances, warmup_s)
