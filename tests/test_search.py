"""Training plan search: exhaustive optima on small instances, objectives, bounds, infeasibility."""

from __future__ import annotations

import itertools

import pytest

import planner
from planner.cost.stage_costs import stage_costs
from planner.cost.training import TrainingPlan, estimate_training
from planner.search.candidates import enumerate_shapes
from planner.search.partition import solve_partition
from planner.search.training import (
    InfeasibleError,
    SearchSpace,
    flops_lower_bound,
    min_recompute_per_stage,
    search_training,
    state_lower_bound,
    time_lower_bound,
)
from planner.validate.training import gpt_model


@pytest.fixture(scope="module")
def h100():
    return planner.get_system("h100")


@pytest.fixture(scope="module")
def llama8b():
    return planner.get_model("llama-3.1-8b")


def _best_per_shape(model, system, space, shape):
    """Every recomputation choice of a shape, estimated (the brute force)."""
    out = []
    for mode in space.recompute:
        est = estimate_training(model, system, space.plan(shape, mode))
        if est.memory.peak_bytes <= space.capacity:
            out.append(est)
    if "full" in space.recompute:
        found = min_recompute_per_stage(model, system, space.plan(shape, "full"), space.capacity)
        if found is not None:
            out.append(found[1])
    return min(out, key=lambda e: e.step_time_s) if out else None


@pytest.mark.parametrize("fraction", [1.0, 0.2])
def test_search_equals_exhaustive_optimum(llama8b, h100, fraction):
    """Branch and bound returns the same best and top-5 step times as estimating every plan."""
    gpus, seq, gbs = 16, 4096, 64
    res = search_training(llama8b, h100, gpus, seq, gbs, top=5, refine=False, max_memory_fraction=fraction)
    space = SearchSpace(seq_len=seq, global_batch=gbs, capacity=h100.accelerator.memory_bytes * fraction)
    times = []
    for shape in enumerate_shapes(llama8b, h100, gpus, seq, gbs, space.dtypes, space.zero_stages):
        best = _best_per_shape(llama8b, h100, space, shape)
        if best is not None:
            times.append(best.step_time_s)
    times.sort()
    assert len(times) >= 5
    found = [res.best.step_time_s] + [e.step_time_s for e in res.alternatives]
    assert found == pytest.approx(times[:5], rel=1e-9)
    assert res.pruned.get("bound: cannot beat the k-th best", 0) > 0  # the bound did prune
    if fraction < 1:
        assert res.best.plan.recompute != "none"  # memory pressure forces recomputation


def test_lower_bounds_hold(llama8b, h100):
    space = SearchSpace(seq_len=4096, global_batch=64, capacity=h100.accelerator.memory_bytes)
    for shape in list(enumerate_shapes(llama8b, h100, 16, 4096, 64))[:60]:
        for mode in ("none", "selective", "full"):
            plan = space.plan(shape, mode)
            est = estimate_training(llama8b, h100, plan)
            lb = time_lower_bound(llama8b, h100, plan)
            assert flops_lower_bound(llama8b, h100, plan) <= est.step_time_s * (1 + 1e-9)
            assert lb <= est.step_time_s * (1 + 1e-9)
            # pruning on it is safe: some stage holds at least the average states
            assert state_lower_bound(llama8b, shape) <= est.memory.peak_bytes * (1 + 1e-9)


def _pipeline_s(est) -> float:
    return est.step_time_s - est.breakdown["dp_comm"] - est.breakdown["optimizer"]


def _compositions(total: int, parts: int):
    for cut in itertools.combinations(range(1, total), parts - 1):
        b = (0, *cut, total)
        yield tuple(b[i + 1] - b[i] for i in range(parts))


@pytest.mark.parametrize("vpp", [1, 2])
def test_partition_milp_equals_brute_force(h100, vpp):
    """No recomputation: the MILP's partition is the estimator's fastest over every partition."""
    model = gpt_model(2048, 12, 16)
    plan = TrainingPlan(tp=2, pp=3, vpp=vpp, dp=1, micro_batch=1, global_batch=6, seq_len=2048, recompute="none")
    sol = solve_partition(stage_costs(model, h100, plan), allow_recompute=False, window=None)
    assert sol is not None and sol.status == "optimal"
    best = min(_pipeline_s(e) for e in (estimate_training(model, h100, plan.model_copy(update={"layers_per_chunk": c}))
                                        for c in _compositions(12, 3 * vpp)) if e.fits)
    got = _pipeline_s(estimate_training(model, h100, plan.model_copy(update={"layers_per_chunk": sol.layers_per_chunk})))
    assert got == pytest.approx(best, rel=1e-9)
    assert sol.objective_s == pytest.approx(got, rel=1e-6)  # CBC prints its solution to ~8 digits
    assert sol.bound_s <= sol.objective_s * (1 + 1e-9)


def test_partition_with_recomputation_under_memory_limit(h100):
    """With a memory limit that forces recomputation: the MILP's plan fits and is the fastest
    fitting (partition, per-stage recomputation) pair up to the room it keeps for one
    re-materialised layer."""
    model = gpt_model(2048, 12, 16)
    plan = TrainingPlan(tp=1, pp=3, dp=1, micro_batch=4, global_batch=24, seq_len=2048, recompute="full")
    costs = stage_costs(model, h100, plan)
    none = estimate_training(model, h100, plan.model_copy(update={"recompute": "none"}))
    full = estimate_training(model, h100, plan)
    cap = (none.memory.peak_bytes + full.memory.peak_bytes) / 2
    costs = type(costs)(**{**costs.__dict__, "capacity": cap})
    sol = solve_partition(costs, allow_recompute=True, window=None)
    assert sol is not None
    chosen = estimate_training(model, h100, plan.model_copy(update={"layers_per_chunk": sol.layers_per_chunk,
                                                                    "recompute_per_stage": sol.recompute_per_stage}))
    assert chosen.memory.peak_bytes <= cap
    best = None
    for c in _compositions(12, 3):
        for r in itertools.product(*(range(n + 1) for n in c)):
            e = estimate_training(model, h100, plan.model_copy(update={"layers_per_chunk": c, "recompute_per_stage": r}))
            if e.memory.peak_bytes <= cap - max(costs.a_none) and (best is None or _pipeline_s(e) < best):
                best = _pipeline_s(e)
    assert best is not None
    assert _pipeline_s(chosen) <= best * (1 + 1e-9)
    assert _pipeline_s(chosen) < _pipeline_s(full)  # recomputing only some layers beats recomputing all


def test_refined_plan_is_never_worse(h100):
    model = planner.get_model("llama-3.1-70b")
    plain = search_training(model, h100, 256, 8192, 256, refine=False, top=3)
    refined = search_training(model, h100, 256, 8192, 256, refine=True, top=3)
    assert refined.best.step_time_s <= plain.best.step_time_s * (1 + 1e-12)
    assert refined.best.fits
    if refined.partition is not None:
        assert refined.partition.gap >= 0 and refined.partition.status in ("optimal", "time limit (feasible)")


def test_search_beats_or_matches_a_hand_plan(llama8b, h100):
    hand = planner.estimate_train(llama8b, h100, gpus=64, tp=8, pp=1, micro_batch=1, global_batch=256, seq_len=8192)
    res = search_training(llama8b, h100, 64, 8192, 256)
    assert res.best.step_time_s <= hand.step_time_s
    assert all(e.memory.peak_bytes <= h100.accelerator.memory_bytes for e in [res.best, *res.alternatives])
    assert [e.step_time_s for e in res.alternatives] == sorted(e.step_time_s for e in res.alternatives)


def test_cost_objective_is_never_dearer_than_the_fastest_plan(llama8b, h100):
    fast = search_training(llama8b, h100, 64, 8192, 256, objective="time")
    cheap = search_training(llama8b, h100, 64, 8192, 256, objective="cost", pareto=True)
    assert cheap.cost_per_million_tokens(cheap.best) <= fast.cost_per_million_tokens(fast.best) * (1 + 1e-9)
    assert cheap.best.num_gpus <= 64
    front = cheap.pareto
    assert front and all(a.tokens_per_s > b.tokens_per_s for a, b in zip(front, front[1:]))
    costs = [cheap.cost_per_million_tokens(e) for e in front]
    assert all(a > b for a, b in zip(costs, costs[1:]))  # faster costs more along the front


def test_deadline_objective_takes_the_fewest_gpus_that_make_it(llama8b, h100):
    tokens = 1e11
    full = search_training(llama8b, h100, 64, 8192, 256)
    deadline = tokens / full.best.tokens_per_s * 1.5  # reachable with 64 GPUs, maybe with fewer
    res = search_training(llama8b, h100, 64, 8192, 256, objective="deadline", tokens=tokens, deadline_s=deadline)
    assert tokens / res.best.tokens_per_s <= deadline
    assert res.best.num_gpus <= 64
    assert any("deadline" in b for b in res.binding)
    with pytest.raises(InfeasibleError, match="deadline"):
        search_training(llama8b, h100, 64, 8192, 256, objective="deadline", tokens=tokens, deadline_s=deadline / 10)


def test_budget_constraint_binds(llama8b, h100):
    res = search_training(llama8b, h100, 64, 8192, 256, tokens=1e11)
    cost = res.cost_per_million_tokens(res.best) * 1e11 / 1e6
    with pytest.raises(InfeasibleError, match="budget"):
        search_training(llama8b, h100, 64, 8192, 256, tokens=1e11, budget_usd=cost / 10)


def test_infeasible_model_says_how_much_memory_it_needs(h100):
    with pytest.raises(InfeasibleError, match=r"needs at least [0-9.]+ GB per GPU; .* has [0-9.]+ GB"):
        search_training(planner.get_model("llama-3.1-405b"), h100, 8, 8192, 64)


def test_infeasible_inputs(llama8b, h100):
    with pytest.raises(InfeasibleError, match="exceeds"):
        search_training(llama8b, h100, 16, 10**7, 16)
    with pytest.raises(planner.PlanError, match="needs --tokens"):
        search_training(llama8b, h100, 16, 4096, 16, objective="deadline")
    with pytest.raises(planner.PlanError, match="FP8"):
        search_training(llama8b, planner.get_system("a100-sxm-80gb"), 16, 4096, 16, dtypes=("fp8",))


def test_fp8_search_on_hopper_is_at_least_as_fast(llama8b, h100):
    bf16 = search_training(llama8b, h100, 64, 8192, 256, top=1, refine=False)
    both = search_training(llama8b, h100, 64, 8192, 256, top=1, refine=False, dtypes=("bf16", "fp8"))
    assert both.best.step_time_s <= bf16.best.step_time_s


def test_table1_search_never_slower_than_the_published_plans(reference_dir):
    """Every Megatron Table 1 job: the planner's best is at least as fast as the published (t, p)
    plan under one cost model (the published plan is in the search space). How close the
    published plans come to the best is reported by `planner validate training --search`."""
    from planner.validate import validate_training_search

    rows = validate_training_search(reference_dir)
    assert len(rows) == 10
    for r in rows:
        assert r.best_step_s <= r.published_step_s * (1 + 1e-9), r
        assert r.free_speedup_pct >= r.speedup_pct - 1e-9  # a free micro-batch can only help
    # at the published micro-batch the published (t, p) is in the top 5 for all but 18.4B and 39.1B
    assert sum(r.accepted for r in rows) >= 8, [(r.name, r.speedup_pct) for r in rows]
    assert all(r.accepted for r in rows if r.gpus >= 1024 or r.gpus <= 128)
    assert sum(r.free_accepted for r in rows) >= 6


def test_partition_milp_with_two_layer_kinds_equals_brute_force(h100):
    """gpt-oss alternates sliding-window and full-attention layers: the MILP keeps chunks
    contiguous through its boundary binaries and still finds the estimator's best split."""
    model = planner.get_model("gpt-oss-20b")
    plan = TrainingPlan(tp=2, pp=3, ep=2, dp=1, micro_batch=1, global_batch=6, seq_len=8192, recompute="none")
    costs = stage_costs(model, h100, plan)
    assert len(set(costs.kind)) == 2
    sol = solve_partition(costs, allow_recompute=False, window=None)
    assert sol is not None and sol.status == "optimal"
    fitting = [e for e in (estimate_training(model, h100, plan.model_copy(update={"layers_per_chunk": c}))
                           for c in _compositions(model.num_layers, 3)) if e.fits]
    best = min(_pipeline_s(e) for e in fitting)
    chosen = estimate_training(model, h100, plan.model_copy(update={"layers_per_chunk": sol.layers_per_chunk}))
    assert chosen.fits
    assert _pipeline_s(chosen) == pytest.approx(best, rel=1e-6)
    assert len(fitting) < 253  # memory binds: some splits do not fit


def _layout_bound(model, system, gpus: int, seq: int) -> int:
    """The most shapes the rules allow at a GPU count: tp x cp choices x divisors of the GPU count up to the
    layer count (pp) x micro-batches x interleaving x ZeRO stages: it grows with the divisors, not the GPUs."""
    from planner.search.candidates import MICRO_BATCHES, VPP_CHOICES, _divisors, cp_choices, tp_choices

    pps = [d for d in _divisors(gpus) if d <= model.num_layers]
    return len(tp_choices(model, system)) * len(cp_choices(model, seq)) * len(pps) * len(MICRO_BATCHES) * len(
        VPP_CHOICES) * 2


@pytest.mark.parametrize("gpu,gpus,gbs", [("h100", 131072, 2048), ("gb200-nvl72", 131040, 2030)])
def test_search_at_131k_gpus_is_bounded_by_the_divisors(h100, gpu, gpus, gbs):
    """Llama-3.1-405B on 131,072 H100 (16M tokens) and 1,820 GB200 NVL72 racks: the best plan (gated by
    planner.search_train) uses every GPU, and the layouts searched and plans estimated are bounded by the
    divisor count, not the GPU count (a few hundred layouts for 131K GPUs; fewer than at 1,024)."""
    model, system = planner.get_model("llama-3.1-405b"), planner.get_system(gpu)
    res = planner.search_train(model, system, gpus, 8192, gbs)
    p = res.best.plan
    assert p.tp * p.cp * p.pp * p.dp == gpus == res.best.num_gpus
    assert p.global_batch % (p.dp * p.micro_batch) == 0
    assert res.plan_document is not None and res.gpu_counts == [gpus]
    assert 0 < res.shapes <= min(1000, _layout_bound(model, system, gpus, 8192))
    assert res.estimated <= 2 * res.shapes
    small = search_training(model, h100, 1024, 8192, 2048, refine=False)
    assert res.shapes < small.shapes  # fewer layouts at 128x the GPUs: the batch bounds dp


def test_a_batch_no_layout_divides_names_the_nearest_that_do():
    """131,040 = 2^5 x 4,095 GB200 GPUs and 2,048 sequences: the odd factor fits neither tp / cp (powers of
    two), nor pp <= 126 layers alone, nor a dp dividing 2^11. dp 35 (tp 8, cp 4, pp 117) divides 2,030 =
    35 x 58 and 2,065 = 35 x 59, and no dp of 131,040 GPUs has a multiple strictly between them and 2,048."""
    model, gb200 = planner.get_model("llama-3.1-405b"), planner.get_system("gb200-nvl72")
    with pytest.raises(InfeasibleError, match="nearest global batches that have one: 2030 sequences and 2065 sequences"):
        search_training(model, gb200, 131040, 8192, 2048)


@pytest.mark.parametrize("opts", [{"objective": "cost", "pareto": True}, {"objective": "cost", "deadline_s": 2000},
                                  {"objective": "deadline", "deadline_s": 5000},
                                  {"objective": "deadline", "deadline_s": 100}])
def test_cross_count_bounds_change_no_answer(llama8b, h100, opts):
    """The bounds across GPU counts (the k-th cheapest plan found, the deadline) only skip plans that
    could not be in the answer: the same best, alternatives and Pareto front as searching every count
    in full. Deadlines are for 1e9 tokens here (seconds; the fastest plan on 64 GPUs needs about 1,400 s)."""
    from planner.search.training import _ACROSS, _gpu_counts, _search_counts

    space = SearchSpace(seq_len=8192, global_batch=256, capacity=0.95 * h100.accelerator.memory_bytes)
    counts = _gpu_counts(h100, 64, "cost")
    deadline, tokens = opts.get("deadline_s"), 1e9 if "deadline_s" in opts else None
    full_top = None
    for across in (False, True):
        ok = (lambda e: deadline is None or tokens / e.tokens_per_s <= deadline)
        _, per_count, pruned, _ = _search_counts(llama8b, h100, 64, counts, space, opts["objective"], 5,
                                                 opts.get("pareto", False), tokens, deadline, ok, None, across)
        if opts["objective"] == "cost":
            key = lambda e: (e.num_gpus * e.step_time_s, e.step_time_s)
        else:
            key = lambda e: (e.num_gpus, e.num_gpus * e.step_time_s, e.step_time_s)
        pool = sorted((e for r in per_count.values() for e in r.top if ok(e)), key=key)[:5]
        got = ([(e.num_gpus, e.step_time_s) for e in pool],
               [(n, r.top[0].step_time_s) for n, r in sorted(per_count.items()) if r.top] if opts.get("pareto")
               else None)
        if full_top is None:
            full_top = got
        else:
            assert got == full_top
            assert pruned[_ACROSS] > 0  # the bounds did skip work
    if not pool:
        with pytest.raises(InfeasibleError, match="the fastest plan .64 GPUs. needs 0.0 days"):
            search_training(llama8b, h100, 64, 8192, 256, tokens=tokens, refine=False, **opts)
        return
    res = search_training(llama8b, h100, 64, 8192, 256, tokens=tokens, refine=False, **opts)
    assert (res.best.num_gpus, res.best.step_time_s) == full_top[0][0]
    assert [(e.num_gpus, e.step_time_s) for e in res.alternatives] == full_top[0][1:]


@pytest.mark.parametrize("grad_fp32", [False, True])
def test_stage_costs_phases_equal_the_estimators_stage_peaks(grad_fp32):
    """The partition MILP's two memory rows (backward, optimizer step with the fp16 optimizer's fp32 main
    grads) give each stage's estimator peak as max(backward, step); 39.1B t4 d32 p4 b2 as in the layouts CSV."""
    from planner.cost.training import _key, _stages_cached
    from planner.validate.training import gpt_model, layouts_plan, layouts_system

    model, system = gpt_model(8192, 48, 64, name="gpt-39.1b"), layouts_system()
    plan = layouts_plan(tp=4, pp=4, dp=32, mbs=2, gbs=1536).model_copy(update={"grad_reduce_in_fp32": grad_fp32})
    est = estimate_training(model, system, plan, 512, per_stage_memory=True)
    c = stage_costs(model, system, plan)
    assert any(c.main_grad) is not grad_fp32
    _, stages, _ = _stages_cached(_key(model), plan.pp, plan.vpp, None)
    for s, layers in enumerate(stages):  # every layer fully recomputed
        bwd = sum(c.state[c.kind[i]] + c.inflight[s] * c.a_full[c.kind[i]] for i in layers) + max(c.a_none)
        step = sum(c.state[c.kind[i]] + c.main_grad[c.kind[i]] for i in layers) + c.extra_step[s]
        assert est.stage_peak_bytes[s] == pytest.approx(max(bwd + c.extra_mem[s], step), rel=1e-12)
        assert (step > bwd + c.extra_mem[s]) is not grad_fp32  # 16-bit grads: the step binds here
