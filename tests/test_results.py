"""What every answer offers a notebook (issue 14, "Results have a short __repr__, a _repr_html_ table,
to_dict() / to_json() (the plan document), to_frame() and plot()"), held to the answers' own numbers."""

from __future__ import annotations

import json

import pytest

import planner
from planner.errors import PlannerError


@pytest.fixture(scope="module")
def answers() -> dict:
    m = planner.get_model("mixtral-8x7b")
    trace = planner.moe.synthetic_trace(m, tokens=256, seed=0)
    return {
        "estimate": planner.estimate_train("llama-3.1-8b", "h100", gpus=8, tp=2, pp=2, micro_batch=1,
                                           global_batch=64, seq_len=2048),
        "search": planner.search_train("llama-3.1-8b", "h100", 64, 2048, 64, objective="cost", pareto=True),
        "serving": planner.estimate_serve("qwen3-8b", "h100", 1024, 128, concurrency=8),
        "serve_search": planner.search_serve("qwen3-8b", "h100", 8, 1024, 128, 500, 50),
        "sim": planner.simulate("qwen3-8b", "h100", rate=4, requests=80, ttft_ms=500, tpot_ms=50),
        "placement": planner.place_experts(trace.stats(), planner.moe.ExpertCluster(4, 4, 8, 0), time_limit=0.3),
        "mix": planner.mix("llama-3.1-8b", ["a100", "h100"], 1000, 50, histogram=[(512, 128, 3), (4096, 256, 1)],
                           rate=4),
    }


NAMES = ["estimate", "search", "serving", "serve_search", "sim", "placement", "mix"]


@pytest.mark.parametrize("name", NAMES)
def test_repr_is_one_short_line_naming_the_type(answers, name):
    a = answers[name]
    r = repr(a)
    assert r.startswith(f"<{type(a).__name__}: ") and r.endswith(">") and "\n" not in r
    assert len(r) < 400
    assert str(a) == r


@pytest.mark.parametrize("name", NAMES)
def test_html_table_has_the_frame_rows(answers, name):
    pytest.importorskip("pandas", reason="to_frame needs planner[frame]")
    a = answers[name]
    frame = a.to_frame()
    page = a._repr_html_()
    assert page.startswith("<div>") and page.endswith("</div>")
    assert len(frame) >= 1
    assert page.count("<tr>") == min(len(frame), 50) + 1  # the header and each row (50 at most)
    for col in frame.columns:
        assert f"<th>{col}</th>" in page


@pytest.mark.parametrize("name", NAMES)
def test_to_json_is_strict_and_is_to_dict(answers, name):
    a = answers[name]
    text = a.to_json()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == json.loads(json.dumps(a.to_dict(), allow_nan=False))


def test_to_dict_is_the_plan_document_where_the_answer_has_one(answers):
    for name in ("search", "serve_search", "mix"):
        a = answers[name]
        assert a.to_dict() is a.plan_document
        planner.check(a.to_dict())  # the gate takes it back
    # an estimate at a concurrency (or of a training plan) makes its document on demand, through the gate
    for name, schema in (("estimate", "planner.training-plan"), ("serving", "planner.serving-plan")):
        doc = answers[name].to_dict()
        assert doc["schema"] == schema
        planner.check(doc)
    # an open-loop operating point, or a plan that does not fit, has none: the estimate itself
    assert "schema" not in planner.estimate_serve("qwen3-8b", "h100", 1024, 128, rate=2).to_dict()
    unfit = planner.estimate_train("llama-3.1-70b", "h100", gpus=8, global_batch=64, seq_len=2048, micro_batch=1)
    assert not unfit.fits and unfit.to_dict()["model"] == "llama-3.1-70b"
    doc = answers["placement"].to_dict()
    pl = answers["placement"].placement
    assert doc["solver"]["objective"] == answers["placement"].objective
    assert doc["placement"]["slots"] == pl.slots.tolist()


def test_frames_hold_the_answers_numbers(answers):
    pytest.importorskip("pandas", reason="to_frame needs planner[frame]")
    s = answers["serve_search"]
    f = s.to_frame()
    assert len(f) == len(s.pareto) and list(f["ttft_ms"]) == [e.ttft_ms for e in s.pareto]
    mx = answers["mix"]
    f = mx.to_frame()
    assert f["cost_per_hour_usd"].sum() == pytest.approx(mx.cost_per_hour_usd)
    assert f["traffic_share"].sum() == pytest.approx(1.0)
    sim = answers["sim"]
    f = sim.to_frame().set_index("metric")
    assert f.loc["TTFT ms", "p90"] == sim.ttft_ms["p90"]
    pl = answers["placement"]
    f = pl.to_frame()
    assert len(f) == 4 and (f["experts_per_layer"] == 2).all()  # 8 experts, no replicas, 4 GPUs
    # tokens per GPU and layer sum to the routed tokens of each layer: the means over layers do too
    assert f["tokens_mean"].sum() == pytest.approx(pl.stats.load.sum(axis=1).mean())
    assert f["round_robin_tokens_mean"].sum() == pytest.approx(f["tokens_mean"].sum())


@pytest.mark.parametrize("name", NAMES)
def test_plot_returns_a_figure_and_saves(answers, name, tmp_path):
    pytest.importorskip("matplotlib", reason="plots need planner[plot]")
    if name == "serving":
        with pytest.raises(PlannerError, match="no plot"):
            answers[name].plot()
        return
    path = tmp_path / "f.svg"
    fig = answers[name].plot(str(path))
    assert fig.axes and path.read_text().lstrip().startswith(("<?xml", "<svg"))
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_a_histogram_in_memory_is_the_csv_histogram(answers, tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("isl,osl,weight\n512,128,3\n4096,256,1\n")
    from_file = planner.mix("llama-3.1-8b", ["a100", "h100"], 1000, 50, histogram=str(p), rate=4)
    assert from_file.cost_per_hour_usd == answers["mix"].cost_per_hour_usd
    assert from_file.gpus == answers["mix"].gpus


@pytest.mark.parametrize("rows, message", [
    ([(512, 128)], r"give \(isl, osl, weight\) rows"),
    ([(512.5, 128, 1)], "whole numbers"),
    ([(0, 128, 1)], "within 1.."),
    ([(512, 128, float("nan"))], "finite number"),
    ([(512, 128, -1)], "finite number"),
    ([(512, 128, 0)], "empty"),
    ([], "empty"),
])
def test_bad_histogram_rows_are_one_line(rows, message):
    with pytest.raises(PlannerError, match=message):
        planner.mix("llama-3.1-8b", ["a100"], 1000, 50, histogram=rows, rate=4)


def test_buckets_must_be_buckets():
    with pytest.raises(PlannerError, match="histogram="):
        planner.mix("llama-3.1-8b", ["a100"], 1000, 50, buckets=[(512, 128, 1)], rate=4)


def test_run_sweep_takes_a_dict_and_refuses_a_bad_grid(tmp_path):
    s = planner.run_sweep({"models": ["llama-3.1-8b"], "gpus": ["h100"], "counts": [8], "seq_lens": [2048],
                           "global_batch": 64}, str(tmp_path / "rows.csv"), workers=1)
    assert (s.jobs, s.ok) == (1, 1)
    rows = planner.sweep.read_rows(tmp_path / "rows.csv")
    best = planner.search_train("llama-3.1-8b", "h100", 8, 2048, 64, top=1)
    assert rows[0]["step_time_s"] == pytest.approx(best.best.step_time_s, rel=1e-12)
    with pytest.raises(PlannerError, match="models"):
        planner.run_sweep({"models": [], "gpus": ["h100"], "counts": [8], "seq_lens": [2048], "global_batch": 64},
                          str(tmp_path / "bad.csv"))
    with pytest.raises(PlannerError):
        planner.run_sweep(["not", "a", "grid"], str(tmp_path / "bad.csv"))
