"""Latency cost model: catalogs, roofline with fitted efficiencies, memory plans (SPEC 7)."""

from planner.costmodel.calibration import Calibration, load_default_calibration
from planner.costmodel.cards import ModelCard, list_cards, load_card
from planner.costmodel.catalog import Accelerator, get_accelerator, load_catalog
from planner.costmodel.memory import MemoryPlan
from planner.costmodel.params import EfficiencyParams
from planner.costmodel.predict import Speculative, StepModel

__all__ = [
    "Accelerator",
    "Calibration",
    "EfficiencyParams",
    "MemoryPlan",
    "ModelCard",
    "Speculative",
    "StepModel",
    "get_accelerator",
    "list_cards",
    "load_card",
    "load_catalog",
    "load_default_calibration",
]
