"""A replica's parallel layout: tensor, pipeline, attention data and expert parallelism."""

from dataclasses import dataclass

from planner.costmodel.cards import ModelCard
from planner.errors import PlannerError


@dataclass(frozen=True)
class Parallel:
    """How one serving instance is split over its GPUs (the engines' launch flags).

    tp: tensor parallel within an attention group; pp: pipeline stages; dp: attention
    data-parallel ranks (vLLM ``--data-parallel-size``, SGLang / TRT-LLM attention DP), each
    with its own share of the batch; ep: expert-parallel degree of the routed experts, which
    are spread over all tp x dp GPUs of a stage and split ``moe_tp = tp * dp / ep`` ways in
    width. GPUs = tp x pp x dp. An ep larger than the expert count, or one that does not
    divide it, places replicas of popular experts on the spare ranks (redundant experts, as
    DeepSeek's EPLB and CloudMatrix-Infer's EP320 do); each rank then holds E / ep experts on
    average.
    """

    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int = 1

    @property
    def gpus(self) -> int:
        """GPUs of one instance."""
        return self.tp * self.pp * self.dp

    @property
    def moe_tp(self) -> int:
        """Width split of each routed expert."""
        return self.tp * self.dp // self.ep

    @property
    def stage_gpus(self) -> int:
        """GPUs of one pipeline stage (the experts' all-to-all group)."""
        return self.tp * self.dp

    def label(self) -> str:
        """'tp4', 'tp2-pp2', 'tp4-dp4-ep16' (only the degrees above 1 after tp)."""
        more = (("pp", self.pp), ("dp", self.dp), ("ep", self.ep))
        return "-".join([f"tp{self.tp}", *(f"{name}{v}" for name, v in more if v > 1)])

    def check(self, card: ModelCard) -> None:
        """Reject layouts the model's shapes cannot be split into, with the reason."""
        for name, value in (("tp", self.tp), ("pp", self.pp), ("dp", self.dp), ("ep", self.ep)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise PlannerError(f"{name} must be a positive integer, not {value!r}")
        if card.heads % self.tp:
            raise PlannerError(
                f"tp={self.tp} does not divide the {card.heads} attention heads of {card.id}"
            )
        if self.pp > card.layers:
            raise PlannerError(f"pp={self.pp} exceeds the {card.layers} layers of {card.id}")
        if self.ep > 1 and not card.is_moe:
            raise PlannerError(f"ep={self.ep} needs an MoE model; {card.id} is dense")
        if self.stage_gpus % self.ep:
            raise PlannerError(
                f"ep={self.ep} must divide the tp x dp = {self.stage_gpus} GPUs it spans"
            )
