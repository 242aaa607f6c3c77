"""Plots (issue 14): each one drawn from a real answer, saved as PNG and SVG, and its data read back from the Axes
and compared with numbers computed here from the answer (not from the plot code): times to train and costs
from :meth:`TrainingEstimate.time_to_train_s` / :meth:`cost_to_train_usd`, per-GPU expert loads summed slot by
slot, simulated percentiles recomputed from the per-request samples, GPUs per pool role summed over the pools.
"""

from __future__ import annotations

import builtins
import math
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the plots need matplotlib (pip install 'planner[plot]')")

import planner
from planner import plots
from planner.cost.serving import ServingPlan
from planner.cost.training import estimate_training, stage_memory
from planner.moe import ExpertCluster, evaluate, round_robin, synthetic_trace
from planner.plots import PlotError
from planner.plots._style import label
from planner.search.fleet_workload import Bucket
from planner.simulation import poisson_requests, simulate
from planner.simulate_fleet import DeploymentPool, simulate_deployment

TOKENS = 1e11


# ---------------------------------------------------------------------------
# answers (small: the whole file runs in a few seconds)
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def train():
    return planner.search_train("qwen3-8b", "h100", 128, 4096, 128, pareto=True, refine=False, objective="cost",
                                tokens=TOKENS)


@pytest.fixture(scope="module")
def train_fleet():
    return planner.search_train_fleet("llama-3.1-8b", ["a100", "h100"], 64, 4096, 256, tokens=TOKENS, refine=False)


@pytest.fixture(scope="module")
def serve():
    return planner.search_serve("llama-3.1-8b", "h100", 8, 1024, 128, 1000, 50)


@pytest.fixture(scope="module")
def sim():
    m, s = planner.get_model("llama-3.1-8b"), planner.get_system("h100")
    return simulate(m, s, ServingPlan(tp=1), poisson_requests(8, 300, 1024, 128, 0), 1000, 50, per_request=True)


@pytest.fixture(scope="module")
def deployment():
    m, h, a = planner.get_model("llama-3.1-8b"), planner.get_system("h100"), planner.get_system("a100")
    pools = [DeploymentPool("fast", h, ServingPlan(tp=1), 2), DeploymentPool("slow", a, ServingPlan(tp=1), 1)]
    return simulate_deployment(m, pools, poisson_requests(10, 300, 1024, 128, 0), router="round-robin",
                               ttft_slo_ms=1000, tpot_slo_ms=50)


BUCKETS = [Bucket(isl=200, osl=100, rate=30.0, share=0.75, longest=400, isl_range=(64, 255), osl_range=(64, 255)),
           Bucket(isl=3000, osl=300, rate=10.0, share=0.25, longest=4400, isl_range=(1024, 4095),
                  osl_range=(256, 1023))]


@pytest.fixture(scope="module")
def mix():
    return planner.mix("llama-3.1-8b", ["l4", "l40s", "h100"], 1000, 50, buckets=BUCKETS, disagg="on")


@pytest.fixture(scope="module")
def experts():
    stats = synthetic_trace(planner.get_model("mixtral-8x7b"), tokens=128, seed=1).stats()
    cluster = ExpertCluster(4, 2, 8, 2)
    return stats, cluster, planner.place_experts(stats, cluster, time_limit=0.5)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def saved(draw, tmp_path: Path, name: str, size_in: tuple[float, float]):
    """Draw into ``name``.png and .svg; both non-empty, the PNG ``size_in`` inches at 100 dpi; the Figure."""
    fig = draw(tmp_path / f"{name}.png")
    png = tmp_path / f"{name}.png"
    assert png.stat().st_size > 5000
    assert png_size(png) == (round(size_in[0] * 100), round(size_in[1] * 100))
    draw(tmp_path / f"{name}.svg")
    svg = (tmp_path / f"{name}.svg").read_text()
    assert svg.startswith("<?xml") and "<svg" in svg and f'width="{size_in[0] * 72:g}pt"' in svg
    return fig


def line(ax, name: str):
    found = [ln for ln in ax.get_lines() if ln.get_label() == name]
    assert len(found) == 1, (name, [ln.get_label() for ln in ax.get_lines()])
    return found[0]


def line_starting(ax, prefix: str):
    found = [ln for ln in ax.get_lines() if ln.get_label().startswith(prefix)]
    assert len(found) == 1, (prefix, [ln.get_label() for ln in ax.get_lines()])
    return found[0]


def bars(ax, name: str) -> list[float]:
    found = [c for c in ax.containers if c.get_label() == name]
    assert len(found) == 1, (name, [c.get_label() for c in ax.containers])
    return [p.get_height() for p in found[0].patches]


def unit(axis_label: str) -> float:
    """The divisor an axis label's unit stands for."""
    for text, div in (("(days)", 86400.0), ("(h)", 3600.0), ("(s)", 1.0), ("($ million)", 1e6),
                      ("($ thousand)", 1e3), ("($)", 1.0)):
        if axis_label.endswith(text):
            return div
    raise AssertionError(axis_label)


# ---------------------------------------------------------------------------
# each plot: files and data
# ---------------------------------------------------------------------------

def test_train_pareto_plots_the_front_in_time_and_cost_to_train(train, tmp_path):
    fig = saved(lambda p: plots.plot_train_pareto(train, p), tmp_path, "front", (8, 4.5))
    ax = fig.axes[0]
    price = train.price_per_gpu_hour
    front = sorted(train.pareto, key=lambda e: -e.tokens_per_s)
    assert len(front) >= 2  # 64 and 128 GPUs: a front, not a point
    tx, cy = unit(ax.get_xlabel()), unit(ax.get_ylabel())
    ln = line(ax, "Pareto front over GPU counts")
    assert np.allclose(ln.get_xdata(), [e.time_to_train_s(TOKENS) / tx for e in front], rtol=1e-12)
    assert np.allclose(ln.get_ydata(), [e.cost_to_train_usd(TOKENS, price) / cy for e in front], rtol=1e-12)
    # along a front, faster costs more
    assert list(ln.get_xdata()) == sorted(ln.get_xdata()) and list(ln.get_ydata()) == sorted(ln.get_ydata())[::-1]
    best = line_starting(ax, "best (cost)")
    assert best.get_xdata()[0] * tx == pytest.approx(train.best.time_to_train_s(TOKENS))
    assert best.get_ydata()[0] * cy == pytest.approx(train.best.cost_to_train_usd(TOKENS, price))
    assert min(ln.get_ydata()) == pytest.approx(best.get_ydata()[0])  # objective cost: the cheapest point


def test_train_pareto_without_tokens_is_step_time_and_dollars_per_million_tokens(tmp_path):
    res = planner.search_train("qwen3-8b", "h100", 128, 4096, 128, pareto=True, refine=False, objective="cost")
    ax = plots.plot_train_pareto(res).axes[0]
    assert ax.get_xlabel() == "step time (s)" and ax.get_ylabel() == "$ per million tokens"
    ln = line(ax, "Pareto front over GPU counts")
    front = sorted(res.pareto, key=lambda e: e.step_time_s)
    assert np.allclose(ln.get_xdata(), [e.step_time_s for e in front])
    assert np.allclose(ln.get_ydata(), [res.cost_per_million_tokens(e) for e in front])


def test_train_fleet_front_has_one_point_per_gpu_type(train_fleet, tmp_path):
    fig = saved(lambda p: plots.plot_train_pareto(train_fleet, p), tmp_path, "fleet", (8, 4.5))
    ax = fig.axes[0]
    tx, cy = unit(ax.get_xlabel()), unit(ax.get_ylabel())
    pts = {(round(t.time_to_train_s, 3), round(t.cost_to_train_usd, 3)) for t in train_fleet.frontier}
    drawn = set()
    for ln in ax.get_lines():
        if ln.get_label() == "Pareto types":
            drawn |= {(round(x * tx, 3), round(y * cy, 3)) for x, y in zip(ln.get_xdata(), ln.get_ydata())}
    for coll in ax.collections:
        drawn |= {(round(x * tx, 3), round(y * cy, 3)) for x, y in coll.get_offsets()}
    assert drawn == pts and len(pts) == 2
    c = train_fleet.cheapest
    star = line_starting(ax, "cheapest:")
    assert star.get_ydata()[0] * cy == pytest.approx(c.cost_to_train_usd)
    assert c.cost_to_train_usd == min(t.cost_to_train_usd for t in train_fleet.frontier)


def test_memory_per_stage_stacks_the_estimators_parts(tmp_path):
    m, s = planner.get_model("llama-3.1-70b"), planner.get_system("h100")
    est = planner.estimate_train(m, s, gpus=64, tp=8, pp=4, micro_batch=1, global_batch=64, seq_len=8192)
    stages = stage_memory(m, s, est.plan)
    per_stage = estimate_training(m, s, est.plan, per_stage_memory=True).stage_peak_bytes
    # the per-stage breakdowns are the estimator's own: their peaks are its per-stage peaks, the largest its memory
    assert [x.peak_bytes for x in stages] == pytest.approx(per_stage, rel=1e-12)
    assert max(x.peak_bytes for x in stages) == pytest.approx(est.memory.peak_bytes, rel=1e-12)
    assert stages[0].weights_bytes > stages[1].weights_bytes  # the embedding sits on stage 0
    fig = saved(lambda p: plots.plot_memory(est, p, stages=stages), tmp_path, "memory", (5, 4.5))
    ax = fig.axes[0]
    for part, attr in (("weights", "weights_bytes"), ("gradients", "gradients_bytes"),
                       ("optimizer", "optimizer_bytes"), ("activations", "activations_bytes"),
                       ("other", "other_bytes")):
        assert bars(ax, part) == pytest.approx([getattr(x, attr) / 1e9 for x in stages], rel=1e-12)
    assert list(line(ax, "peak").get_ydata()) == pytest.approx([b / 1e9 for b in per_stage], rel=1e-12)
    cap = line_starting(ax, "capacity")
    assert cap.get_ydata()[0] == pytest.approx(s.accelerator.memory_bytes / 1e9)
    assert line_starting(ax, "usable by a search").get_ydata()[0] == pytest.approx(0.95 * s.accelerator.memory_bytes / 1e9)


def test_memory_of_an_estimate_alone_is_its_most_loaded_stage(train):
    ax = plots.plot_memory(train.best, usable_fraction=None).axes[0]
    mem = train.best.memory
    assert bars(ax, "activations") == pytest.approx([mem.activations_bytes / 1e9])
    assert line(ax, "peak").get_ydata()[0] == pytest.approx(mem.peak_bytes / 1e9)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["most loaded stage"]
    assert not [ln for ln in ax.get_lines() if ln.get_label().startswith("usable")]
    with pytest.raises(PlotError, match="pipeline stages"):
        plots.plot_memory(train.best, stages=[mem, mem, mem] if train.best.plan.pp != 3 else [mem])


def test_serving_front_one_series_per_layout(serve, tmp_path):
    from planner.plots.serving import layout_label

    fig = saved(lambda p: plots.plot_serving_front(serve, p), tmp_path, "serve", (8, 4.5))
    ax = fig.axes[0]
    layouts = {layout_label(e.plan) for e in serve.pareto}
    assert len(layouts) >= 2
    drawn = 0
    for name in layouts:
        pts = sorted((e for e in serve.pareto if layout_label(e.plan) == name), key=lambda e: e.tokens_per_s_per_user)
        ln = line(ax, name)
        assert list(ln.get_xdata()) == [e.tokens_per_s_per_user for e in pts]
        assert list(ln.get_ydata()) == [e.tokens_per_s_per_gpu for e in pts]
        drawn += len(pts)
    assert drawn == len(serve.pareto)
    agg = line_starting(ax, "aggregated answer")
    assert agg.get_ydata()[0] == serve.aggregated.estimate.tokens_per_s_per_gpu
    # the answer is the front's highest throughput per GPU (the search scores by it without a rate)
    assert agg.get_ydata()[0] == pytest.approx(max(e.tokens_per_s_per_gpu for e in serve.pareto))


def test_simulation_cdf_is_the_per_request_samples(sim, tmp_path):
    # per_request=True: the samples the percentiles come from (and nothing new in the JSON)
    assert len(sim.ttft_ms_per_request) == len(sim.tpot_ms_per_request) == sim.requests == 300
    for metric in ("ttft", "tpot"):
        x = np.array(getattr(sim, f"{metric}_ms_per_request"))
        for k, q in (("p50", 50), ("p90", 90), ("p99", 99)):
            assert np.percentile(x, q) == pytest.approx(getattr(sim, f"{metric}_ms")[k], rel=1e-12)
    assert "ttft_ms_per_request" not in sim.model_dump(mode="json")
    fig = saved(lambda p: plots.plot_simulation(sim, p, ttft_slo_ms=1000, tpot_slo_ms=50), tmp_path, "sim", (10, 4.2))
    for ax, metric in zip(fig.axes, ("ttft", "tpot")):
        ln = line(ax, "300 requests")
        assert list(ln.get_xdata()) == sorted(getattr(sim, f"{metric}_ms_per_request"))
        assert list(ln.get_ydata()) == pytest.approx([(i + 1) / 300 for i in range(300)])
        pts = line(ax, "p50 / p90 / p99")
        assert list(pts.get_xdata()) == [getattr(sim, f"{metric}_ms")[k] for k in ("p50", "p90", "p99")]
        assert line_starting(ax, f"{metric.upper()} SLO").get_xdata()[0] == (1000 if metric == "ttft" else 50)


def test_simulation_defaults_unchanged_and_percentile_points_without_samples(sim):
    m, s = planner.get_model("llama-3.1-8b"), planner.get_system("h100")
    plain = simulate(m, s, ServingPlan(tp=1), poisson_requests(8, 300, 1024, 128, 0), 1000, 50)
    assert plain.ttft_ms_per_request is None
    assert plain.model_dump_json() == sim.model_dump_json()  # the same run, the same JSON with or without samples
    ax = plots.plot_simulation(plain).axes[0]
    ln = line(ax, "all 300 requests (p50 / p90 / p99)")
    assert list(ln.get_xdata()) == [plain.ttft_ms[k] for k in ("p50", "p90", "p99")]
    assert list(ln.get_ydata()) == [0.5, 0.9, 0.99]


def test_deployment_simulation_one_series_per_pool(deployment, tmp_path):
    fig = saved(lambda p: plots.plot_simulation(deployment, p), tmp_path, "deploy", (10, 4.2))
    ax = fig.axes[1]
    assert sum(p.requests for p in deployment.pools) == deployment.requests == 300
    for pool in deployment.pools:
        ln = line(ax, f"{pool.name} ({pool.role}, {pool.requests:,} requests)")
        assert list(ln.get_xdata()) == [pool.tpot_ms[k] for k in ("p50", "p90", "p99")]
    # the slower GPU's pool is slower per token
    fast, slow = (next(p for p in deployment.pools if p.name == n) for n in ("fast", "slow"))
    assert slow.tpot_ms["p50"] > fast.tpot_ms["p50"]


def test_expert_load_bars_are_tokens_per_gpu(experts, tmp_path):
    stats, cluster, res = experts
    fig = saved(lambda p: plots.plot_expert_load(res, p, stats=stats, cluster=cluster), tmp_path, "experts",
                (11, 4.2))
    ax, ax2 = fig.axes
    rr = round_robin(stats, cluster)

    def by_hand(pl, layer: int) -> list[float]:  # slot by slot: the expert's tokens times the slot's share
        out = [0.0] * pl.gpus
        for g in range(pl.gpus):
            for e, share in zip(pl.slots[layer, g], pl.share[layer, g]):
                if e >= 0:
                    out[g] += stats.load[layer, e] * share
        return out

    layer = int(ax.get_title().split(":")[0].split()[-1])
    before, after = bars(ax, "round robin"), bars(ax, "placed")
    assert before == pytest.approx(by_hand(rr, layer)) and after == pytest.approx(by_hand(res.placement, layer))
    assert sum(after) == pytest.approx(stats.load[layer].sum())  # every routed token lands on one GPU
    ev_b, ev_a = evaluate(stats, rr, cluster), evaluate(stats, res.placement, cluster)
    assert list(ax2.get_lines()[0].get_ydata()) == pytest.approx(ev_b.per_layer["imbalance"])
    assert list(ax2.get_lines()[1].get_ydata()) == pytest.approx(ev_a.per_layer["imbalance"])
    assert layer == int(np.argmax(ev_b.per_layer["imbalance"]))  # the baseline's worst layer by default
    assert ev_a.load_imbalance < ev_b.load_imbalance
    with pytest.raises(PlotError, match="stats="):
        plots.plot_expert_load(res)
    with pytest.raises(PlotError, match="layer must be"):
        plots.plot_expert_load(res, stats=stats, cluster=cluster, layer=stats.num_layers)


def test_mix_gpus_per_role_and_dollars_per_hour(mix, tmp_path):
    fig = saved(lambda p: plots.plot_mix(mix, p), tmp_path, "mix", (11, 4.2))
    ax, ax2 = fig.axes
    types = [t.get_text() for t in ax.get_xticklabels()]
    assert types == mix.gpus_offered
    total = [0] * len(types)
    for role in ("aggregated", "prefill", "decode"):
        want = [sum(p.gpus for p in mix.pools if p.gpu == g and p.role == role) for g in types]
        if any(want):
            assert bars(ax, role) == want
            total = [a + b for a, b in zip(total, want)]
    assert {g: n for g, n in zip(types, total) if n} == mix.gpus
    assert {p.role for p in mix.pools} == {"prefill", "decode"}
    widths = [p.get_width() for p in ax2.containers[0].patches]
    assert widths[0] == mix.cost_per_hour_usd
    assert widths[1:] == [s.cost_per_hour_usd or 0.0 for s in mix.singles]
    assert mix.cost_per_hour_usd < min(s.cost_per_hour_usd for s in mix.singles if s.cost_per_hour_usd)


def test_dispatcher_picks_the_plot_of_each_answer(train, serve, mix, sim):
    for res, fn in ((train, "plot_train_pareto"), (serve, "plot_serving_front"), (mix, "plot_mix"),
                    (sim, "plot_simulation"), (train.best, "plot_memory")):
        ax = plots.plot(res).axes[0]
        direct = getattr(plots, fn)(res).axes[0]
        assert [ln.get_label() for ln in ax.get_lines()] == [ln.get_label() for ln in direct.get_lines()]
    with pytest.raises(PlotError, match="no plot for a dict"):
        plots.plot({})


# ---------------------------------------------------------------------------
# refusals, labels, reproducibility, lazy import
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["plot.pdf", "plot", "plot.png.txt", "plot.jpeg"])
def test_a_bad_file_name_is_one_line_before_any_work(name, tmp_path):
    with pytest.raises(PlotError) as exc:
        plots.plot_train_pareto(None, tmp_path / name)  # the path is checked first: no result needed to refuse it
    msg = str(exc.value)
    assert "\n" not in msg and ".png or .svg" in msg and name in msg


def test_a_folder_or_an_unwritable_place_is_one_line(train, tmp_path):
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(PlotError, match="is a folder"):
        plots.plot_train_pareto(train, tmp_path / "dir.png")
    with pytest.raises(PlotError, match="cannot write the plot"):
        plots.plot_train_pareto(train, tmp_path / "missing" / "x.png")


def test_wrong_answer_kinds_are_refused(train, serve):
    with pytest.raises(PlotError, match="serving search"):
        plots.plot_serving_front(train)
    with pytest.raises(PlotError, match="training search"):
        plots.plot_train_pareto(serve)
    with pytest.raises(PlotError, match="GPU mix"):
        plots.plot_mix(train)


def test_missing_matplotlib_is_one_line_naming_the_extra(train, monkeypatch, tmp_path):
    real = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    for call in (lambda: plots.plot_train_pareto(train), lambda: plots.plot_memory(train.best, tmp_path / "m.png")):
        with pytest.raises(PlotError) as exc:
            call()
        assert str(exc.value) == "plots need matplotlib: pip install 'planner[plot]'"
    assert isinstance(exc.value, planner.PlannerError)


def test_hostile_names_are_drawn_as_text(train, tmp_path):
    # '$' would start matplotlib's mathematics (an unbalanced one is an error); newlines split a title
    name = "evil $x^2$ $ <script>alert(1)</script>\n_\u202e" + "y" * 100
    assert label(name).count("\n") == 0 and len(label(name)) <= 70 and r"\$" in label(name)
    assert label("_hidden").startswith(" ")  # a legend would hide a label starting with "_"
    best = train.best.model_copy(update={"model": name, "gpu": name})
    hostile = train.model_copy(update={"best": best})
    fig = plots.plot_train_pareto(hostile, tmp_path / "hostile.png")
    assert "\n" not in fig.axes[0].get_title()
    plots.plot_memory(best, tmp_path / "hostile.svg")


def test_the_same_answer_gives_the_same_bytes(train, tmp_path):
    for ext in ("png", "svg"):
        plots.plot_train_pareto(train, tmp_path / f"a.{ext}")
        plots.plot_train_pareto(train, tmp_path / f"b.{ext}")
        assert (tmp_path / f"a.{ext}").read_bytes() == (tmp_path / f"b.{ext}").read_bytes()
    assert b"Date" not in (tmp_path / "a.svg").read_bytes()


def test_importing_the_planner_or_its_plots_does_not_import_matplotlib():
    code = ("import sys, planner, planner.plots, planner.report\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_cdf_points_are_bounded_and_exact():
    from planner.plots.simulate import MAX_CDF_POINTS, cdf_points

    x, f = cdf_points([3.0, 1.0, 2.0, math.nan])
    assert x == [1.0, 2.0, 3.0] and f == pytest.approx([1 / 3, 2 / 3, 1.0])
    big = list(np.random.default_rng(0).exponential(1.0, 3 * MAX_CDF_POINTS + 7))
    x, f = cdf_points(big)
    assert len(x) == MAX_CDF_POINTS and f[-1] == 1.0 and x[-1] == max(big)
    s = sorted(big)
    assert all(s[round(q * len(big)) - 1] == v for q, v in zip(f, x))  # each point is a sample at its rank
