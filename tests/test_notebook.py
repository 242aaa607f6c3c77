"""The example notebook (examples/planner_tour.ipynb) runs end to end, and its numbers are the API's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import planner

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "planner_tour.ipynb"

nbformat = pytest.importorskip("nbformat", reason="the notebook extra: pip install 'planner[notebook]'")
nbclient = pytest.importorskip("nbclient", reason="the notebook extra: pip install 'planner[notebook]'")
pytest.importorskip("ipykernel", reason="the notebook extra: pip install 'planner[notebook]'")
pytest.importorskip("matplotlib", reason="the plot extra: pip install 'planner[plot]'")
pytest.importorskip("pandas", reason="the frame extra: pip install 'planner[frame]'")


@pytest.fixture(scope="module")
def summary() -> dict:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    for cell in nb.cells:  # no cell raised, and the HTML tables render
        assert all(o.get("output_type") != "error" for o in cell.get("outputs", []))
    html = [o for c in nb.cells for o in c.get("outputs", []) if "text/html" in o.get("data", {})]
    assert html and "<table>" in html[0]["data"]["text/html"]
    text = nb.cells[-1].outputs[0]["text"]
    return json.loads(text)


def test_the_notebook_runs_and_its_numbers_are_the_apis(summary):
    t = summary["train"]
    train = planner.search_train("llama-3.1-70b", "h100", 256, 8192, 512, objective="cost", tokens=1e12,
                                 pareto=True, refine=False, top=3)
    assert (t["gpus"], t["tp"], t["pp"]) == (train.best.num_gpus, train.best.plan.tp, train.best.plan.pp)
    assert t["step_time_s"] == pytest.approx(train.best.step_time_s, rel=1e-12)
    assert t["usd_per_million_tokens"] == pytest.approx(train.cost_per_million_tokens_usd, rel=1e-12)
    assert 0.3 < t["mfu"] < 0.7
    est = planner.estimate_train("llama-3.1-70b", "h100", gpus=64, tp=8, pp=2, micro_batch=1, global_batch=512,
                                 seq_len=8192)
    assert summary["estimate"]["step_time_s"] == pytest.approx(est.step_time_s, rel=1e-12)
    s = summary["serve"]
    assert s["ttft_ms"] <= 500 and s["tpot_ms"] <= 30 and s["concurrency"] >= 1
    sim = summary["simulate"]
    assert 0 <= sim["attainment"] <= 1 and sim["ttft_p90_ms"] > 0
    m = summary["mix"]
    assert m["cost_per_hour_usd"] <= m["best_single_cost"] + 1e-9  # a mix never costs more than one type
    e = summary["experts"]
    assert e["placed_imbalance"] < e["round_robin_imbalance"]  # on the held-out half
    sw = summary["sweep"]
    assert sw["jobs"] == sw["ok"] == 8
    one = planner.search_train("qwen3-32b", "a100", 32, 4096, 128, refine=False, top=1)
    assert sw["mfu"]["qwen3-32b a100 32"] == pytest.approx(one.best.mfu, rel=1e-12)
