"""Why the schedule missed its target on the held-back replay, from what the replay measured.

Four causes are told apart, each from its own measurement:

- **beyond any replica**: requests that every policy missed and that miss the SLO even
  replayed alone on an idle replica (planner/scaling/replay.py `missed_alone`), so many that
  no fleet of these deployments reaches the target (prompts longer than any replica prefills
  within the TTFT limit, say);

- **length drift**: the held-back requests' token lengths are not those the plan was sized on
  (two-sample Kolmogorov-Smirnov on input and on output tokens, sized sample vs held-back
  requests; a shift counts when D >= DRIFT_D at p < DRIFT_P, a shift a plan can feel, not one
  that is merely significant on 10^5 requests) and the longer side is the held-back one;
- **burst above the forecast band**: intervals whose observed arrival rate ran above the
  forecast quantile the schedule was built for, where requests missed the SLO while those
  within the band held it, or missed at least BURST_MISS_RATIO times as often;
- **capacity**: within the band, on the length mix it was sized for, the fleet still fell
  short: the goodput measured at the peak did not carry over to the replay.

A cause is named only where its measurement shows it; a miss that only bursts explain is not
blamed on lengths, and capacity is named only when none of the others is, so a miss always
has at least one cause.
"""

from dataclasses import dataclass

import numpy as np

from planner.simulate import Workload

DRIFT_D = 0.1
DRIFT_P = 0.01
BURST_MISS_RATIO = 2.0
LENGTHS = ("input", "output")


@dataclass(frozen=True)
class Shift:
    """One token length (input or output) compared between the sized sample and the replay."""

    which: str
    ks_d: float
    p_value: float
    sized_p50: float
    replayed_p50: float
    sized_mean: float
    replayed_mean: float

    @property
    def drifted(self) -> bool:
        """A shift large enough to matter (D >= DRIFT_D) and not chance (p < DRIFT_P)."""
        return self.ks_d >= DRIFT_D and self.p_value < DRIFT_P

    @property
    def longer(self) -> bool:
        """The held-back requests are longer on average than the sized ones."""
        return self.replayed_mean > self.sized_mean

    def to_dict(self) -> dict:
        """The PLAN.json entry of this length."""
        return {
            "ks_d": round(self.ks_d, 4),
            "p_value": float(f"{self.p_value:.3g}"),
            "sized_p50": self.sized_p50,
            "replayed_p50": self.replayed_p50,
            "sized_mean": round(self.sized_mean, 1),
            "replayed_mean": round(self.replayed_mean, 1),
            "drifted": self.drifted,
        }

    def words(self) -> str:
        """'prompts longer (input p50 18,700 vs 12,100 tokens sized, KS D 0.31)'."""
        noun = "prompts" if self.which == "input" else "outputs"
        way = "longer" if self.longer else "shorter"
        return (
            f"{noun} {way} (p50 {self.replayed_p50:,.0f} vs {self.sized_p50:,.0f} tokens "
            f"sized, KS D {self.ks_d:.2f})"
        )


def length_shifts(sized: Workload, replayed: Workload) -> list[Shift]:
    """Input and output token lengths of the sized sample against the held-back requests."""
    from scipy.stats import ks_2samp  # deferred: keeps CLI start-up fast

    shifts = []
    for which in LENGTHS:
        a = getattr(sized, f"{which}_tokens")
        b = getattr(replayed, f"{which}_tokens")
        if not len(a) or not len(b):
            continue
        test = ks_2samp(a, b)
        shifts.append(
            Shift(
                which,
                float(test.statistic),
                float(test.pvalue),
                float(np.median(a)),
                float(np.median(b)),
                float(np.mean(a)),
                float(np.mean(b)),
            )
        )
    return shifts


@dataclass(frozen=True)
class BandSplit:
    """Replayed attainment of requests in intervals within and above the forecast band."""

    intervals: int
    above_intervals: int
    requests: int
    above_requests: int
    within_attainment: float
    above_attainment: float | None

    def bursts_missed(self, attainment: float) -> bool:
        """Requests above the band fell short of `attainment` while those within it held it,
        or missed at least BURST_MISS_RATIO times as often as those within it."""
        if self.above_attainment is None or self.above_attainment >= attainment:
            return False
        within_miss = 1.0 - self.within_attainment
        return self.within_attainment >= attainment or (
            1.0 - self.above_attainment >= BURST_MISS_RATIO * within_miss
        )

    def to_dict(self) -> dict:
        """The PLAN.json entry."""
        return {
            "intervals": self.intervals,
            "above_intervals": self.above_intervals,
            "requests": self.requests,
            "above_requests": self.above_requests,
            "within_attainment": round(self.within_attainment, 5),
            "above_attainment": (
                None if self.above_attainment is None else round(self.above_attainment, 5)
            ),
        }


def band_split(
    arrivals: np.ndarray,
    meets: np.ndarray,
    edges: np.ndarray,
    observed: np.ndarray,
    band: np.ndarray,
) -> BandSplit:
    """Split the replayed requests by whether the observed rate of their interval (between
    `edges`) ran above the forecast `band` for it (both requests/s)."""
    above = np.asarray(observed) > np.asarray(band) + 1e-9
    k = np.clip(np.searchsorted(edges, arrivals, side="right") - 1, 0, len(above) - 1)
    hit = above[k]
    return BandSplit(
        intervals=len(above),
        above_intervals=int(above.sum()),
        requests=len(arrivals),
        above_requests=int(hit.sum()),
        within_attainment=float(meets[~hit].mean()) if (~hit).any() else 1.0,
        above_attainment=float(meets[hit].mean()) if hit.any() else None,
    )


def beyond_words(sized: Workload, replayed: Workload, lost: np.ndarray) -> str:
    """'beyond any replica: 734 of the 37,694 requests replayed (1.95%) miss ...'."""
    prompts = replayed.input_tokens[lost]
    longest = int(sized.input_tokens.max()) if sized.requests else 0
    return (
        f"beyond any replica: {int(lost.sum()):,} of the {len(lost):,} requests replayed "
        f"({float(lost.mean()):.2%}) miss the SLO even alone on an idle replica (prompts p50 "
        f"{float(np.median(prompts)):,.0f}, up to {int(prompts.max()):,} tokens; the longest "
        f"sized {longest:,}), so no policy holds more than {1.0 - float(lost.mean()):.2%} with "
        "these deployments"
    )


def diagnose(
    sized: Workload,
    replayed: Workload,
    meets: np.ndarray,
    edges: np.ndarray,
    observed: np.ndarray,
    band: np.ndarray,
    attainment: float,
    quantile: str,
    lost: np.ndarray | None = None,
) -> dict:
    """PLAN.json's `replay.diagnosis`: the causes of the schedule's miss and the measurements
    behind them (`meets`: the schedule's per-request SLO result; `observed` and `band`: the
    arrival rate and its forecast `quantile` per interval between `edges`; `lost`: the
    requests that miss the SLO even alone on an idle replica)."""
    shifts = length_shifts(sized, replayed)
    split = band_split(replayed.arrival_s, meets, edges, observed, band)
    missed = split.requests > 0 and float(meets.mean()) < attainment
    drift = [s for s in shifts if s.drifted]
    causes, words = [], []
    beyond = lost is not None and len(lost) > 0 and 1.0 - float(lost.mean()) < attainment
    if missed and beyond:
        causes.append("beyond any replica")
        words.append(beyond_words(sized, replayed, lost))
    if missed and split.bursts_missed(attainment):
        causes.append("burst above the forecast band")
        words.append(
            f"burst above the forecast band: {split.above_intervals} of {split.intervals} "
            f"intervals ran above the {quantile} forecast, their requests held "
            f"{split.above_attainment:.1%} and those within it {split.within_attainment:.1%}"
        )
    short_within = split.within_attainment < attainment
    if missed and short_within and any(s.longer for s in drift):
        causes.append("length drift")
        words.append("length drift: held-back " + ", ".join(s.words() for s in drift))
    if missed and short_within and not causes:
        causes.append("capacity")
        words.append(
            "capacity: within the forecast band, on the length mix it was sized for, the "
            f"schedule held {split.within_attainment:.1%}"
        )
    return {
        "causes": causes,
        "sentence": "; ".join(words),
        "lengths": {s.which: s.to_dict() for s in shifts},
        "band": split.to_dict(),
    }
