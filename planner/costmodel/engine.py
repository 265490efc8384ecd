"""Serving-engine profiles: how vLLM, SGLang and TensorRT-LLM batch steps, and what they cost.

A profile is a TOML file (``datasets/engines/*.toml``; copy one and edit it, then pass its
path as ``--engine``). It holds the engine's documented defaults, each with its source:

- ``[scheduler]``: the token budget of one step, the most sequences in flight, whether long
  prompts are chunked, whether prefill and decode tokens share a step (vLLM, TensorRT-LLM)
  or prefill steps run alone and pause decoding (SGLang), and whether admission reserves KV
  for the prompt only (recompute on preemption) or for the whole output (no eviction), and
  how many decode steps pass between polls for new requests (SGLang's
  --scheduler-recv-interval; 1: every step);
- ``[memory]``: the share of device memory the engine manages (of the total, or of what the
  weights leave free), after any fixed reserve it keeps for its runtime;
- ``[runtime]``: the largest decode batch replayed as a CUDA graph, and whether the CPU
  schedules the next step while the GPU runs this one (overlap scheduler);
- ``[host]``: CPU time per step, per sequence and per eagerly launched layer, the
  client-to-engine latency of a request, and the GPU time the engine's attention kernels add per
  sequence and layer. These are fitted on measured serving benchmarks by ``planner
  calibrate``; the profile's values are the fallback;
- ``[[overrides]]``: defaults that differ by release (``before = "0.13"``) or by device memory
  (``min_device_gb``, ``max_device_gb``), each a partial profile applied in order.
"""

import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from planner.errors import PlannerError
from planner.resources import resource_dir

DEFAULT_ENGINE = "vllm"
FLAG_SECTIONS = {
    "token_budget": "scheduler",
    "max_seqs": "scheduler",
    "prefix_caching": "scheduler",
    "recv_interval": "scheduler",
    "cuda_graph_max_batch": "runtime",
}


class SchedulerPolicy(BaseModel):
    """How one engine step is composed from the running and waiting requests."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token_budget: int = Field(gt=0)
    max_seqs: int = Field(gt=0)
    chunked_prefill: bool
    mixed_batches: bool
    kv_admission: Literal["prompt", "prompt+output"] = "prompt"
    prefix_caching: bool = True
    recv_interval: int = Field(default=1, ge=1)


class MemoryPolicy(BaseModel):
    """The device memory the engine takes for weights, activations and its KV cache."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fraction: float = Field(default=1.0, gt=0, le=1)
    of: Literal["total", "free"] = "total"
    reserve_gb: float = Field(default=0.0, ge=0)


class RuntimePolicy(BaseModel):
    """CUDA-graph coverage and CPU/GPU overlap of the engine loop, and the seconds a fresh
    engine spends warming up (KV-cache profiling, compilation, CUDA-graph capture) before it
    serves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cuda_graph_max_batch: int = Field(ge=0)
    cuda_graph_sizes: tuple[int, ...] = ()
    overlap_scheduler: bool
    warmup_s: float = Field(default=20.0, ge=0)

    def graphed(self, batch: int) -> bool:
        """Whether a decode step of `batch` sequences replays a captured CUDA graph.

        Engines that pad a batch up to the next captured size graph every batch up to the
        largest; with an explicit list of sizes and no padding only those sizes are graphed.
        """
        if self.cuda_graph_sizes:
            return batch in self.cuda_graph_sizes
        return batch <= self.cuda_graph_max_batch


class HostCosts(BaseModel):
    """Costs (ms) the step profiles' kernels do not show; fitted per engine by calibration.

    CPU side: per step, per sequence in it, per eagerly launched layer, and the front end's
    per-request latency. GPU side, `seq_layer_ms`: what the engine's own attention kernels
    spend per sequence in every layer beyond the profiled kernel's FLOPs and bytes (paged-KV
    block tables, per-request work, thread blocks that do not fill a wave at small contexts).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    step_ms: float = Field(default=1.0, ge=0)
    seq_ms: float = Field(default=0.01, ge=0)
    seq_layer_ms: float = Field(default=0.0, ge=0)
    layer_ms: float = Field(default=0.05, ge=0)
    frontend_ms: float = Field(default=2.0, ge=0)


class Override(BaseModel):
    """Profile fields that differ for older releases or for devices of some memory size."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    before: str | None = None
    min_device_gb: float | None = None
    max_device_gb: float | None = None
    note: str = ""
    set: dict[str, dict[str, Any]]

    def applies(self, version: str | None, device_gb: float | None) -> bool:
        """Whether this override holds for an engine release on a device of `device_gb`."""
        if self.before is not None and (
            version is None or _release(version) >= _release(self.before)
        ):
            return False
        if device_gb is None:
            return self.min_device_gb is None and self.max_device_gb is None
        low_ok = self.min_device_gb is None or device_gb >= self.min_device_gb
        return low_ok and (self.max_device_gb is None or device_gb < self.max_device_gb)


def _release(version: str) -> tuple[int, ...]:
    """Numeric release parts of a version string ('0.5.8.post1' -> (0, 5, 8, 1))."""
    return tuple(int(part) for part in re.findall(r"\d+", version))


class EngineProfile(BaseModel):
    """One serving engine's batching policy, memory share, runtime and host costs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    version: str
    release: str | None = None
    sources: tuple[str, ...] = ()
    scheduler: SchedulerPolicy
    memory: MemoryPolicy
    runtime: RuntimePolicy
    host: HostCosts = HostCosts()
    overrides: tuple[Override, ...] = ()
    flags: dict[str, int] = {}

    def with_host(self, host: HostCosts) -> "EngineProfile":
        """The same profile with fitted host costs."""
        return self.model_copy(update={"host": host})

    def with_flags(self, **flags: int) -> "EngineProfile":
        """The profile as launched with these flags: token_budget (max-num-batched-tokens),
        max_seqs (max-num-seqs), prefix_caching (0: --no-enable-prefix-caching),
        recv_interval (SGLang's --scheduler-recv-interval), cuda_graph_max_batch (graphs for
        every decode batch up to it).
        They hold over the release and device defaults."""
        unknown = set(flags) - set(FLAG_SECTIONS)
        if unknown:
            raise PlannerError(f"unknown engine flag(s) {', '.join(sorted(unknown))}")
        return self.model_copy(update={"flags": {**self.flags, **flags}})

    def resolve(self, device_gb: float | None = None) -> "EngineProfile":
        """The profile as its `release` (default: the newest) runs on a `device_gb` device."""
        data = self.model_dump()
        for override in self.overrides:
            if override.applies(self.release, device_gb):
                for section, fields in override.set.items():
                    data[section] = {**data[section], **fields}
        for flag, value in self.flags.items():
            data[FLAG_SECTIONS[flag]][flag] = value
            if flag == "cuda_graph_max_batch":
                data["runtime"]["cuda_graph_sizes"] = ()
        data["overrides"], data["flags"] = (), {}
        return EngineProfile(**data)

    @property
    def label(self) -> str:
        """'vllm' or 'vllm@0.12.0': the engine and release assumed."""
        return f"{self.id}@{self.release}" if self.release else self.id


def _engines_dir() -> Path:
    """The bundled datasets/engines/ folder."""
    return resource_dir("datasets") / "engines"


def read_engine_file(path: Path) -> EngineProfile:
    """Parse one engine profile file, naming the file and field in any error."""
    try:
        return EngineProfile(**tomllib.loads(path.read_text()))
    except OSError as exc:
        raise PlannerError(f"{path}: cannot read engine profile ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise PlannerError(f"{path}: engine profile is not valid TOML ({exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "profile"
        raise PlannerError(f"{path}: bad engine profile field {where}: {first['msg']}") from None


@cache
def bundled_engines() -> dict[str, EngineProfile]:
    """The shipped profiles by id."""
    return {p.stem: read_engine_file(p) for p in sorted(_engines_dir().glob("*.toml"))}


def load_engine(engine: str | Path | EngineProfile | None = None) -> EngineProfile:
    """A shipped profile by id (default vLLM) or a profile file, optionally `@release`.

    'vllm', 'sglang@0.5.1', 'my-vllm.toml@0.12.0'; a PlannerError names the known engines.
    """
    if isinstance(engine, EngineProfile):
        return engine
    text = str(engine if engine is not None else DEFAULT_ENGINE).strip()
    name, _, release = text.partition("@")
    if name.lower().endswith(".toml"):
        profile = read_engine_file(Path(name))
    else:
        profile = bundled_engines().get(name.lower())
    if profile is None:
        known = ", ".join(bundled_engines())
        raise PlannerError(f"unknown engine {name!r}; engines: {known} (or a profile .toml)")
    if release and not _release(release):
        raise PlannerError(f"engine release {release!r} has no version number, e.g. vllm@0.12.0")
    return profile.model_copy(update={"release": release or None})
