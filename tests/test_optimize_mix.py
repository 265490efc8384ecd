"""The accelerator-mix MILP against brute force, its limits, heterogeneity and infeasibility."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mix_oracle import brute_force_day_mix, brute_force_mix, day_cost

from planner.costmodel import load_catalog
from planner.errors import PlannerError
from planner.optimize.frontier import pareto_mask
from planner.optimize.infeasible import check_mix
from planner.optimize.limits import parse_available, parse_budget
from planner.optimize.mix import (
    MIN_DEMAND,
    Mix,
    MixOption,
    best_single_accelerator,
    day_levels,
    max_servable_scale,
    solve_day_mix,
    solve_mix,
    undominated,
)
from planner.optimize.refine import capped_solver, served_share, top_up

H100 = MixOption("h100-tp1", "h100", 1, 12.29, (10.0,))
L4 = MixOption("l4-tp2", "l4", 2, 1.6, (1.0,))


def _cost(mix):
    return None if mix is None else round(mix.cost_per_hour, 6)


def test_mixed_plan_strictly_cheaper_than_any_single_accelerator():
    """10.5 req/s: 1 H100 + 1 L4 pair beats 2 H100 and 11 L4 pairs."""
    mix = solve_mix([H100, L4], [10.5])
    assert {o.accelerator: c for o, _, c in mix.groups()} == {"h100": 1, "l4": 1}
    single = best_single_accelerator([H100, L4], [10.5])
    assert single.cost_per_hour == pytest.approx(11 * 1.6)
    assert mix.cost_per_hour == pytest.approx(12.29 + 1.6)
    assert mix.cost_per_hour < single.cost_per_hour


def test_single_accelerator_is_optimal_and_the_mix_says_so():
    """20 req/s: 2 H100 is the cheapest plan at all, so mixing cannot help."""
    h100 = MixOption("h100-tp1", "h100", 1, 10.0, (10.0,))
    l4 = MixOption("l4-tp2", "l4", 2, 1.5, (1.0,))
    mix = solve_mix([h100, l4], [20.0])
    single = best_single_accelerator([h100, l4], [20.0])
    assert mix.cost_per_hour == pytest.approx(single.cost_per_hour) == pytest.approx(20.0)
    assert {o.accelerator for o, _, _ in mix.groups()} == {"h100"}


def test_equal_cost_mixes_take_the_most_capacity():
    """Of mixes at the same least $/h the one serving the most: four 6-GPU replicas (17.7 req/s)
    over two 12-GPU ones (15.0), and two TP2 replicas (6.3) over two TP1 + one TP2 (5.4)."""
    small = MixOption("l4-tp2-pd2:1", "l4", 6, 4.8, (4.43,))
    large = MixOption("l4-tp4-pd2:1", "l4", 12, 9.6, (7.48,))
    tp1 = MixOption("h100-tp1", "h100", 1, 12.29, (1.129,))
    tp2 = MixOption("h100-tp2", "h100", 2, 24.58, (3.166,))
    for options, demand, expected in (
        ([small, large], 13.5, [("l4-tp2-pd2:1", 4)]),
        ([tp1, tp2], 5.0, [("h100-tp2", 2)]),
    ):
        for order in (options, options[::-1]):
            mix = solve_mix(order, [demand])
            assert [(o.key, n) for o, _, n in mix.groups()] == expected
    cheaper = MixOption("l4-tp4-pd2:1", "l4", 12, 9.5, (7.48,))
    assert solve_mix([small, cheaper], [13.5]).cost_per_hour == pytest.approx(19.0)


def test_length_buckets_send_short_requests_to_small_accelerators():
    """L4 cannot serve the long bucket; it serves the short one cheaper than H100."""
    h100 = MixOption("h100", "h100", 1, 12.29, (20.0, 4.0))
    l4 = MixOption("l4", "l4", 1, 0.8, (2.0, 0.0))
    mix = solve_mix([h100, l4], [8.0, 3.0])
    assert mix.counts.tolist() == [[0, 1], [4, 0]]
    brute = brute_force_mix([h100, l4], [8.0, 3.0])
    assert brute.counts == ((0, 1), (4, 0)) and brute.cost_per_hour == pytest.approx(12.29 + 3.2)
    assert mix.cost_per_hour == pytest.approx(brute.cost_per_hour)


def test_availability_limit_is_respected_and_changes_the_answer():
    """With only 2 L4 GPUs (one pair) the rest must come from H100."""
    cheap = MixOption("l4", "l4", 2, 1.0, (2.0,))
    mix = solve_mix([H100, cheap], [5.0], available={"l4": 2})
    assert mix.gpus_by_accelerator().get("l4", 0) <= 2
    assert mix.capacity()[0] >= 5.0
    assert solve_mix([H100, cheap], [25.0], available={"h100": 2, "l4": 2}) is None


def test_budget_limit():
    """A budget below the cheapest plan makes the mix infeasible."""
    assert solve_mix([H100, L4], [10.5], budget_per_hour=13.0) is None
    assert solve_mix([H100, L4], [10.5], budget_per_hour=14.0) is not None


option = st.builds(
    lambda acc, gpus, price, g1, g2: (acc, gpus, price, (g1, g2)),
    st.sampled_from(["h100", "a100", "l4"]),
    st.sampled_from([1, 2, 4]),
    st.floats(0.5, 20.0),
    st.floats(0.5, 8.0),
    st.one_of(st.just(0.0), st.floats(0.5, 8.0)),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(option, min_size=1, max_size=3),
    st.floats(0.0, 12.0),
    st.floats(0.0, 6.0),
    st.one_of(
        st.none(), st.dictionaries(st.sampled_from(["h100", "a100", "l4"]), st.integers(0, 8))
    ),
    st.one_of(st.none(), st.floats(1.0, 80.0)),
)
def test_milp_matches_brute_force(options, d1, d2, available, budget):
    """Same optimal cost (or both infeasible) on random small instances with limits."""
    opts = [MixOption(f"o{i}", a, g, p, gp) for i, (a, g, p, gp) in enumerate(options)]
    demand = [d1, d2]
    milp_mix = solve_mix(opts, demand, available, budget)
    brute = brute_force_mix(opts, demand, available, budget)
    assert _cost(milp_mix) == pytest.approx(_cost(brute), rel=1e-6) if brute else milp_mix is None
    if milp_mix is not None:
        assert (milp_mix.capacity() >= np.array(demand) - MIN_DEMAND).all()
        for acc, used in milp_mix.gpus_by_accelerator().items():
            assert used <= (available or {}).get(acc, used)
        assert budget is None or milp_mix.cost_per_hour <= budget + 1e-6


BIG = MixOption("big", "h100", 8, 10.0, (10.0,))
SMALL = MixOption("small", "l4", 1, 1.2, (1.0,))


def test_day_mix_keeps_small_replicas_for_the_quiet_hours():
    """Demand 2 req/s for 90 % of the day, 10 at the peak: the least-cost mix at the peak is one
    big replica ($10/h all day: it cannot shrink); the least mean-cost mix is the big one plus
    two small ones (the small ones alone in the quiet hours, the big one alone at the peak):
    0.9 x $2.40 + 0.1 x $10 = $3.16/h, below ten small ones (0.9 x 2.40 + 0.1 x 12 = $3.36),
    the best mix of one plan. An L4 limit of one GPU leaves the big one alone."""
    levels, weights = np.array([2.0, 2.0, 10.0]), np.array([0.45, 0.45, 0.1])
    assert solve_mix([BIG, SMALL], [10.0]).counts.ravel().tolist() == [1, 0]
    day = solve_day_mix([BIG, SMALL], levels, weights)
    assert day.counts.ravel().tolist() == [1, 2] and day.cost_per_hour == pytest.approx(12.4)
    assert day_cost([BIG, SMALL], [1, 2], levels, weights) == pytest.approx(3.16)
    one = solve_day_mix([BIG, SMALL], levels, weights, plans=1)
    assert one.counts.ravel().tolist() == [0, 10]
    assert solve_day_mix([BIG, SMALL], levels, weights, {"l4": 1}).counts.ravel().tolist() == [
        1,
        0,
    ]
    assert solve_day_mix([BIG, SMALL], levels, weights, {"h100": 0, "l4": 5}) is None


def test_a_dominated_option_is_left_out_of_the_day_mix():
    """An option another beats on the same accelerator (cheaper, no more GPUs or power, at
    least the goodput) is dropped, the first of two equal ones kept; one on another accelerator
    or with fewer GPUs stays (it may be what a GPU limit leaves)."""
    worse = MixOption("worse", "l4", 2, 1.5, (0.9,))
    twin = MixOption("twin", "l4", 1, 1.2, (1.0,))
    lean = MixOption("lean", "l4", 1, 2.0, (0.5,))
    other = MixOption("other", "a100", 1, 5.0, (0.5,))
    assert undominated([SMALL, worse, twin, lean, other, BIG]) == [0, 4, 5]
    assert undominated([worse, MixOption("fewer", "l4", 1, 1.6, (0.9,))]) == [0, 1]
    mix = solve_day_mix([worse, SMALL, BIG], np.array([2.0, 10.0]), np.array([0.9, 0.1]))
    assert mix.counts.ravel().tolist() == [0, 2, 1] and len(mix.options) == 3


def test_day_levels_cut_the_sorted_demand_into_groups_at_their_highest():
    """Ten intervals (one missing: no demand) in eight groups; each level its group's highest
    demand, weights their share of the intervals; the last level is the peak. A flat forecast
    is two levels, not eight copies of one."""
    levels, weights = day_levels(np.array([1, 5, 3, np.nan, 9, 2, 8, 7, 6, 4.0]), 8)
    assert levels.tolist() == [1, 3, 4, 5, 6, 7, 8, 9]
    assert weights.tolist() == pytest.approx([0.2, 0.2] + [0.1] * 6) and weights.sum() == 1.0
    flat, shares = day_levels(np.array([4.0] * 7 + [5.0]), 8)
    assert flat.tolist() == [4.0, 5.0] and shares.tolist() == pytest.approx([0.875, 0.125])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["h100", "l4"]), st.floats(0.5, 15.0), st.floats(0.5, 6.0)),
        min_size=1,
        max_size=3,
    ),
    st.lists(st.floats(0.0, 9.0), min_size=1, max_size=3),
    st.lists(st.floats(0.1, 1.0), min_size=3, max_size=3),
    st.one_of(st.none(), st.dictionaries(st.sampled_from(["h100", "l4"]), st.integers(0, 6))),
    st.integers(1, 3),
)
def test_day_mix_matches_brute_force(options, levels, shares, available, plans):
    """The least day cost and, at it, the least mix cost (or both infeasible), on random small
    instances with at most 1-3 plans in the mix, against enumeration of every mix and every
    scaled-down fleet of it."""
    opts = [MixOption(f"o{i}", a, 1, p, (g,)) for i, (a, p, g) in enumerate(options)]
    weights = np.array(shares[: len(levels)]) / sum(shares[: len(levels)])
    mix = solve_day_mix(opts, np.array(levels), weights, available, plans=plans)
    brute = brute_force_day_mix(opts, levels, weights, available, plans)
    assert (mix is None) == (brute is None)
    if mix is not None:
        counts = mix.counts.ravel().tolist()
        assert day_cost(opts, counts, levels, weights) == pytest.approx(brute[0], rel=1e-6)
        assert mix.cost_per_hour == pytest.approx(brute[1], rel=1e-6)


def test_max_servable_scale():
    """Two H100 GPUs serve at most 20 of 40 req/s: scale 0.5."""
    assert max_servable_scale([H100], [40.0], {"h100": 2}) == pytest.approx(0.5)


def test_availability_too_low_explains():
    """The message names the limit, the servable rate and what the unlimited plan needs."""
    with pytest.raises(
        PlannerError, match=r"availability too low for the peak: h100=2 .* 20 of the 40"
    ):
        check_mix([H100], np.array([40.0]), {"h100": 2}, None)


def test_budget_too_low_names_cheapest_feasible_budget():
    """$5,000/month cannot buy 2 H100 ($17,943/month): that is the cheapest budget."""
    with pytest.raises(PlannerError, match=r"budget too low: \$5,000/month .* \$17,943/month"):
        check_mix([H100], np.array([15.0]), None, 5000 / 730)


def test_parse_limits():
    """Budgets per hour/day/month and availability with aliases."""
    assert parse_budget("20000/month") == pytest.approx(20000 / 730)
    assert parse_budget("$24/day") == pytest.approx(1.0)
    assert parse_budget("3/hour") == 3.0
    assert parse_available("h100-sxm=16,l4=4", load_catalog()) == {"h100": 16, "l4": 4}
    with pytest.raises(PlannerError, match="--budget"):
        parse_budget("lots")
    with pytest.raises(PlannerError, match="--available"):
        parse_available("h100:16", load_catalog())


def test_pareto_mask():
    """Dominated points drop; NaN never counts."""
    cost = np.array([1.0, 2.0, 1.5, 3.0, np.nan])
    lat = np.array([5.0, 1.0, 6.0, 0.5, 0.1])
    assert pareto_mask(cost, lat).tolist() == [True, True, False, True, False]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(option, min_size=1, max_size=3),
    st.floats(0.5, 12.0),
    st.dictionaries(st.sampled_from(["h100", "a100", "l4"]), st.integers(1, 4), min_size=3),
)
def test_capped_solver_serves_the_most_the_limits_allow_at_least_cost(options, need, available):
    """Scarce inventory, one bucket, against enumeration of every fleet within the limits: the
    largest share of the demand any fleet serves, and the cheapest fleet serving it."""
    opts = [MixOption(f"o{i}", a, g, p, gp[:1]) for i, (a, g, p, gp) in enumerate(options)]
    ranges = [range(available[o.accelerator] // o.gpus + 1) for o in opts]
    fleets = []
    for counts in itertools.product(*ranges):
        used: dict[str, int] = {}
        for n, o in zip(counts, opts, strict=True):
            used[o.accelerator] = used.get(o.accelerator, 0) + n * o.gpus
        if all(v <= available[k] for k, v in used.items()):
            capacity = sum(n * o.goodput[0] for n, o in zip(counts, opts, strict=True))
            cost = sum(n * o.cost_per_hour for n, o in zip(counts, opts, strict=True))
            fleets.append((min(capacity / need, 1.0), cost))
    best_share = max(share for share, _ in fleets)
    mix = capped_solver(np.array([need]), available, None)(opts)
    if best_share <= 0:
        assert mix is None
        return
    assert served_share(mix, np.array([need])) == pytest.approx(best_share, rel=1e-5)
    cheapest = min(cost for share, cost in fleets if share >= best_share * (1 - 1e-5))
    assert mix.cost_per_hour == pytest.approx(cheapest, rel=1e-6)
    for acc, used in mix.gpus_by_accelerator().items():
        assert used <= available[acc]


def test_a_replica_spanning_two_accelerators_counts_against_both_limits():
    """A mixed-hardware replica (one H100 prefill and two A100 decode GPUs) uses each type's
    inventory: against a brute force over replica counts with both limits, the MILP finds the
    same least cost at every limit tried; the single-accelerator alternative never uses it."""
    mixed = MixOption(
        "h100-tp1-pd1:2-a100-tp1", "h100+a100", 3, 12.29 + 2 * 5.12, (4.0,), 0.0,
        (("h100", 1), ("a100", 2)),
    )  # fmt: skip
    h100 = MixOption("h100-tp1", "h100", 1, 12.29, (1.5,))
    a100 = MixOption("a100-tp1", "a100", 1, 5.12, (0.5,))
    options = [mixed, h100, a100]
    assert mixed.gpus_on() == {"h100": 1, "a100": 2} and h100.gpus_on() == {"h100": 1}
    for available in ({}, {"h100": 3}, {"a100": 4}, {"h100": 4, "a100": 2}, {"h100": 2}):
        best = None
        for counts in itertools.product(range(4), range(9), range(25)):
            served = sum(n * o.goodput[0] for n, o in zip(counts, options, strict=True))
            used = {"h100": counts[0] + counts[1], "a100": 2 * counts[0] + counts[2]}
            if served < 12.0 or any(used[k] > v for k, v in available.items()):
                continue
            cost = sum(n * o.cost_per_hour for n, o in zip(counts, options, strict=True))
            best = cost if best is None else min(best, cost)
        mix = solve_mix(options, [12.0], available)
        assert _cost(mix) == (None if best is None else round(best, 6)), available
        if mix is not None:
            used = mix.gpus_by_accelerator()
            assert all(used.get(k, 0) <= v for k, v in available.items())
    single = best_single_accelerator(options, [12.0])
    assert all(o.key != mixed.key for o, _, _ in single.groups())


class _Measured:
    """Per-replica goodput by (plan, fleet size), as the goodput evaluator would measure it."""

    def __init__(self, rates: dict[str, float]) -> None:
        """Goodput per plan, the same at every size."""
        self.rates = rates

    def evaluate(self, cand, bucket, replicas, guess):
        """The plan's goodput at this size (the evaluator's interface)."""

        class Evaluation:
            goodput_rps = self.rates[cand]

        return Evaluation()


def test_top_up_drops_a_group_that_serves_nothing_at_its_size():
    """A group whose goodput re-measured at its own size is zero (the SLO fails there) is
    dropped, not billed: the demand is covered by the groups that serve it (2 x L4 here,
    $3.20/h, not $15.49/h with an idle H100 in it), and no deployment of goodput 0 reaches the
    schedule."""
    mix = Mix((H100, L4), np.array([[1], [1]]), H100.cost_per_hour + L4.cost_per_hour)
    cands = {H100.key: H100.key, L4.key: L4.key}
    topped = top_up(mix, cands, _Measured({H100.key: 0.0, L4.key: 1.0}), np.array([2.0]))
    assert [(o.key, n) for o, _, n in topped.groups()] == [(L4.key, 2)]
    assert topped.cost_per_hour == pytest.approx(2 * L4.cost_per_hour)
    assert all(o.goodput[0] > 0 for o, _, _ in topped.groups())


def test_top_up_refuses_when_no_group_serves_at_its_size():
    """Every group measuring zero at its size: the mix cannot settle, a one-line error."""
    mix = Mix((H100,), np.array([[1]]), H100.cost_per_hour)
    with pytest.raises(PlannerError, match="does not settle"):
        top_up(mix, {H100.key: H100.key}, _Measured({H100.key: 0.0}), np.array([2.0]))
