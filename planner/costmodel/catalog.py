"""Accelerator catalog: bundled datasheet figures and prices, plus the user's overrides."""

import json
import tomllib
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from planner.errors import PlannerError
from planner.resources import resource_dir


@dataclass(frozen=True)
class Accelerator:
    """One device type: peak compute, memory, scale-up fabric, power and default price.

    Low-precision peaks of 0 mean the device has no tensor cores for that format: the math
    then runs at the next wider format it has (weight-only kernels dequantise to BF16).
    """

    id: str
    name: str
    bf16_tflops: float
    fp8_tflops: float
    hbm_gb: float
    hbm_tbs: float
    interconnect_gbs: float
    scale_up_domain: int
    tdp_w: float
    price_per_hour: float
    int8_tops: float = 0.0
    fp4_tflops: float = 0.0
    scale_out_gbs: float = 50.0
    load_gbs: float = 1.0
    aliases: tuple[str, ...] = ()
    vendor: str = ""
    spec_source: str = ""
    spec_date: str = ""
    scale_out_source: str = ""
    price_source: str = ""
    price_date: str = ""
    load_source: str = ""

    def peak_flops(self, dtype: str) -> float:
        """Dense peak FLOP/s of math in `dtype` (BF16 where the device lacks the format or runs
        it slower: Blackwell Ultra's INT8 peak is under its BF16 one, so engines dequantise)."""
        peaks = {
            "fp8": self.fp8_tflops,
            "int8": self.int8_tops,
            "fp4": self.fp4_tflops,
            "mxfp4": self.fp4_tflops,
        }
        peak = peaks.get(dtype.lower(), 0.0)
        return max(peak, self.bf16_tflops) * 1e12

    def link_gbs(self, span: int) -> float:
        """Per-GPU bandwidth of a collective over `span` GPUs (scale-out past the domain)."""
        return self.interconnect_gbs if span <= self.scale_up_domain else self.scale_out_gbs

    @property
    def hbm_bytes(self) -> float:
        """Device memory in bytes (vendor GB figures of HBM are binary: GiB)."""
        return self.hbm_gb * 2**30


class AcceleratorEntry(BaseModel):
    """One table of a user's accelerator file: a new device (all figures) or an override."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    aliases: list[str] = Field(default_factory=list)
    vendor: str | None = None
    bf16_tflops: float | None = Field(default=None, gt=0)
    fp8_tflops: float | None = Field(default=None, ge=0)
    int8_tops: float | None = Field(default=None, ge=0)
    fp4_tflops: float | None = Field(default=None, ge=0)
    scale_out_gbs: float | None = Field(default=None, gt=0)
    load_gbs: float | None = Field(default=None, gt=0)
    hbm_gb: float | None = Field(default=None, gt=0)
    hbm_tbs: float | None = Field(default=None, gt=0)
    interconnect_gbs: float | None = Field(default=None, gt=0)
    scale_up_domain: int | None = Field(default=None, ge=1)
    tdp_w: float | None = Field(default=None, gt=0)
    price_per_hour: float | None = Field(default=None, ge=0)
    spec_source: str | None = None
    spec_date: str | None = None
    scale_out_source: str | None = None
    price_source: str | None = None
    price_date: str | None = None
    load_source: str | None = None


class AcceleratorFile(BaseModel):
    """A whole user accelerator file: device id -> entry."""

    model_config = ConfigDict(extra="forbid")

    accelerators: dict[str, AcceleratorEntry]


_REQUIRED_NEW = ("bf16_tflops", "hbm_gb", "hbm_tbs", "interconnect_gbs", "price_per_hour")


def _read_mapping(path: Path) -> dict[str, Any]:
    """Parse a TOML, JSON or YAML file into a mapping, with the file named in errors."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise PlannerError(f"{path}: cannot read ({exc.strerror})") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix == ".json":
            return json.loads(text)
        if suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise PlannerError(f"{path}: YAML needs PyYAML installed; use TOML") from None
            return yaml.safe_load(text) or {}
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise PlannerError(f"{path}: not valid {suffix[1:].upper()} ({exc})") from None
    raise PlannerError(f"{path}: accelerator file must be .toml, .json or .yaml")


def _build(acc_id: str, fields: dict[str, Any]) -> Accelerator:
    """An Accelerator from a validated table, filling optional figures sensibly."""
    fields = {k: v for k, v in fields.items() if v is not None}
    fields.setdefault("name", acc_id)
    fields.setdefault("fp8_tflops", 0.0)
    fields.setdefault("scale_up_domain", 8)
    fields.setdefault("tdp_w", 0.0)
    fields["aliases"] = tuple(a.lower() for a in fields.get("aliases", ()))
    return Accelerator(id=acc_id, **fields)


@cache
def _bundled() -> dict[str, Accelerator]:
    """The bundled catalog (datasets/accelerators.toml), parsed once per process."""
    path = resource_dir("datasets") / "accelerators.toml"
    return _merge({}, _read_mapping(path), path)


def _merge(
    base: dict[str, Accelerator], data: dict[str, Any], path: Path
) -> dict[str, Accelerator]:
    """Apply one file's tables over `base`: overrides change fields, new ids need all figures."""
    tables = data.get("accelerators", data)
    try:
        parsed = AcceleratorFile(accelerators=tables)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:])
        raise PlannerError(f"{path}: bad accelerator entry {where}: {first['msg']}") from None
    out = dict(base)
    index = _alias_index(base)
    for raw_id, entry in parsed.accelerators.items():
        given = entry.model_dump(exclude_unset=True)
        acc_id = index.get(raw_id.lower(), raw_id.lower())
        if acc_id in out:
            aliases = tuple(a.lower() for a in given.pop("aliases", ())) + out[acc_id].aliases
            out[acc_id] = replace(out[acc_id], aliases=aliases, **given)
            continue
        missing = [k for k in _REQUIRED_NEW if given.get(k) is None]
        if missing:
            raise PlannerError(f"{path}: new accelerator {raw_id!r} needs {', '.join(missing)}")
        out[acc_id] = _build(acc_id, given)
    return out


def _alias_index(catalog: dict[str, Accelerator]) -> dict[str, str]:
    """Map every id and alias (lower case) to its canonical id."""
    index = {acc_id: acc_id for acc_id in catalog}
    for acc in catalog.values():
        index.update({alias: acc.id for alias in acc.aliases})
    return index


@cache
def _load_user(path: str) -> dict[str, Accelerator]:
    """The bundled catalog with one user file applied (cached by path)."""
    file = Path(path)
    return _merge(_bundled(), _read_mapping(file), file)


def load_catalog(path: Path | str | None = None) -> dict[str, Accelerator]:
    """Accelerators by id: the bundled catalog, with a user TOML/JSON/YAML file applied."""
    if path is None:
        return dict(_bundled())
    return dict(_load_user(str(Path(path).resolve())))


def get_accelerator(
    accelerator: str | Accelerator, catalog: dict[str, Accelerator] | None = None
) -> Accelerator:
    """The accelerator `accelerator` (id or alias), or a PlannerError listing the known ids."""
    if isinstance(accelerator, Accelerator):
        return accelerator
    catalog = catalog if catalog is not None else _bundled()
    acc_id = _alias_index(catalog).get(accelerator.strip().lower())
    if acc_id is None:
        known = ", ".join(catalog)
        raise PlannerError(f"unknown accelerator {accelerator!r}; known accelerators: {known}")
    return catalog[acc_id]
