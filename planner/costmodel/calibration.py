"""Calibration files: fitted efficiency parameters per accelerator and what data they saw."""

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from planner.costmodel.catalog import Accelerator
from planner.costmodel.engine import EngineProfile, HostCosts
from planner.costmodel.params import SERVING_FITTED, EfficiencyParams
from planner.errors import PlannerError
from planner.resources import resource_dir

DEFAULT_FILE = "calibration.json"


@dataclass(frozen=True)
class Coverage:
    """The range of the profile points an entry was fitted on (for the `extrapolated` flag)."""

    params_min_b: float
    params_max_b: float
    batch_max: float
    tokens_max: float
    context_max: float
    step_tokens_max: float
    tp_max: int
    dtypes: tuple[str, ...] = ("bf16",)
    moe: bool = False
    mla: bool = False


@dataclass(frozen=True)
class CalibrationEntry:
    """Parameters fitted on one profile source for one accelerator; `serving` names the
    accelerator whose measured serving benchmarks fitted its MoE, low-precision and collective
    values."""

    accelerator: str
    source: str
    params: EfficiencyParams
    coverage: Coverage
    points: int = 0
    serving: str | None = None


@dataclass(frozen=True)
class Resolved:
    """The parameters a StepModel uses, and where they came from."""

    params: EfficiencyParams
    coverage: Coverage | None
    key: str
    borrowed_from: str | None
    vendor_defaults: bool = False


@dataclass
class Calibration:
    """Entries keyed "accelerator" (the default for predictions) or "accelerator@source",
    and the host costs fitted per serving engine on end-to-end benchmarks."""

    entries: dict[str, CalibrationEntry] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    engines: dict[str, HostCosts] = field(default_factory=dict)

    def steps_only(self) -> "Calibration":
        """This calibration as the step profiles alone fitted it: every default entry as its
        reference source fitted it, no engine host costs (the start of a measured fit)."""
        references = self.meta.get("reference_sources") or [self.meta.get("reference_source")]
        entries = dict(self.entries)
        for key in [k for k in self.entries if "@" not in k]:
            for source in references:
                entries[key] = self.entries.get(f"{key}@{source}", entries[key])
        return Calibration(entries, dict(self.meta))

    def fitted_engine(self, engine: EngineProfile) -> EngineProfile:
        """The profile with this calibration's fitted host costs, where it has them."""
        host = self.engines.get(engine.id)
        return engine.with_host(host) if host is not None else engine

    def add(self, entry: CalibrationEntry, default: bool) -> None:
        """Store an entry under accelerator@source, and as the accelerator's default if asked.

        Only the reference source (a step profile of the serving runtime we predict for) sets
        defaults: other sources measure other runtimes, whose host overheads would leak into
        every prediction; they stay available by name (StepModel.build(..., source=...)).
        """
        if default:
            self.entries.setdefault(entry.accelerator, entry)
        self.entries[f"{entry.accelerator}@{entry.source}"] = entry

    def resolve(
        self, acc: Accelerator, catalog: dict[str, Accelerator], source: str | None = None
    ) -> Resolved:
        """Parameters for `acc`: its own, else the most similar calibrated device's by spec.

        A donor of another vendor lends its step-level efficiencies but not the values fitted
        on its vendor's serving kernels (MoE grouped GEMMs, low-precision GEMMs, all-reduce):
        those take the spec-sheet defaults.
        """
        key = f"{acc.id}@{source}" if source else acc.id
        if key in self.entries:
            entry = self.entries[key]
            params = entry.params if source else self._serving(entry, acc, catalog)
            return Resolved(params, entry.coverage, key, None)
        if source:
            known = ", ".join(k for k in self.entries if "@" in k)
            raise PlannerError(f"no calibration for {key}; calibrated sources: {known}")
        donor = self._most_similar(acc, catalog)
        if donor is None:
            return Resolved(EfficiencyParams(), None, "defaults", "defaults")
        entry = self.entries[donor]
        if acc.vendor and acc.vendor == catalog[donor].vendor:
            return Resolved(self._serving(entry, acc, catalog), entry.coverage, donor, donor)
        defaults = EfficiencyParams()
        params = replace(entry.params, **{k: getattr(defaults, k) for k in SERVING_FITTED})
        return Resolved(params, entry.coverage, donor, donor, vendor_defaults=True)

    def _serving(
        self, entry: CalibrationEntry, acc: Accelerator, catalog: dict[str, Accelerator]
    ) -> EfficiencyParams:
        """An entry's parameters; where no serving benchmark of its own fitted the MoE,
        low-precision and collective values, those of the most similar device of its vendor
        that has them (an H200 step profile keeps the H100's serving-fitted grouped-GEMM
        efficiency and all-reduce latency)."""
        if entry.serving is not None:
            return entry.params
        donor = self._most_similar(
            acc, catalog, lambda e, o: e.serving is not None and o.vendor == acc.vendor
        )
        if donor is None:
            return entry.params
        fitted = self.entries[donor].params
        return replace(entry.params, **{k: getattr(fitted, k) for k in SERVING_FITTED})

    def _most_similar(
        self,
        acc: Accelerator,
        catalog: dict[str, Accelerator],
        eligible: Callable[[CalibrationEntry, Accelerator], bool] = lambda _e, _o: True,
    ) -> str | None:
        """The calibrated accelerator closest in log compute and log bandwidth."""
        best, best_d = None, math.inf
        for key, entry in self.entries.items():
            other = catalog.get(key)
            if "@" in key or other is None or not eligible(entry, other):
                continue
            d = abs(math.log(acc.bf16_tflops / other.bf16_tflops))
            d += abs(math.log(acc.hbm_tbs / other.hbm_tbs))
            if d < best_d:
                best, best_d = key, d
        return best

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (entries by key, plus metadata)."""
        return {
            "meta": self.meta,
            "engines": {key: host.model_dump() for key, host in self.engines.items()},
            "entries": {
                key: {
                    "accelerator": e.accelerator,
                    "source": e.source,
                    "points": e.points,
                    "serving": e.serving,
                    "params": e.params.to_dict(),
                    "coverage": asdict(e.coverage),
                }
                for key, e in self.entries.items()
            },
        }

    def save(self, path: Path | str) -> None:
        """Write the calibration as JSON."""
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "calibration") -> "Calibration":
        """Parse a calibration dict, naming the bad entry in any error."""
        cal = cls(meta=data.get("meta", {}))
        try:
            for key, e in data["entries"].items():
                cov = dict(e["coverage"])
                cov["dtypes"] = tuple(cov.get("dtypes", ("bf16",)))
                cal.entries[key] = CalibrationEntry(
                    accelerator=e["accelerator"],
                    source=e["source"],
                    params=EfficiencyParams.from_dict(e["params"]),
                    coverage=Coverage(**cov),
                    points=int(e.get("points", 0)),
                    serving=e.get("serving"),
                )
            for key, host in data.get("engines", {}).items():
                cal.engines[key] = HostCosts(**host)
        except (KeyError, TypeError, ValueError) as exc:
            raise PlannerError(f"{where}: not a planner calibration file ({exc!r})") from None
        return cal

    @classmethod
    def load(cls, path: Path | str) -> "Calibration":
        """Read a calibration JSON written by `planner calibrate --out`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise PlannerError(f"{path}: cannot read calibration ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise PlannerError(f"{path}: calibration is not valid JSON ({exc})") from None
        return cls.from_json(data, str(path))


@cache
def load_default_calibration() -> Calibration:
    """The calibration shipped in datasets/ (fitted from the shared profiles)."""
    path = resource_dir("datasets") / DEFAULT_FILE
    if not path.exists():
        return Calibration(meta={"note": "no bundled calibration; spec-sheet defaults"})
    return Calibration.load(path)
