"""The README's Python API block runs as printed (issue 14: "each documented in the README with a runnable
example"), and its figures agree with the same calls made here."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _api_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API"):]
    m = re.search(r"```python\n(.*?)```", section, re.S)
    assert m, "the Python API section has no python block"
    return m.group(1)


def test_the_readme_python_block_runs(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="the block plots (planner[plot])")
    pytest.importorskip("pandas", reason="the block makes a DataFrame (planner[frame])")
    code = _api_block()
    for name in ("estimate_train", "search_train", "estimate_serve", "search_serve", "simulate", "place_experts",
                 "mix", "search_train_fleet", "run_sweep", "to_dict", "to_json", "to_frame", "plot",
                 "write_report"):
        assert f".{name}(" in code, f"the README block does not show {name}"
    monkeypatch.chdir(tmp_path)
    env: dict = {}
    exec(compile(code, "README.md", "exec"), env)  # noqa: S102 - our own README
    est, fleet, sim, summary = env["est"], env["fleet"], env["sim"], env["summary"]
    assert repr(est).startswith("<TrainingEstimate: llama-3.1-70b on 64 x h100-sxm")
    assert est.fits and 0 < est.mfu < 1
    assert env["best"].best.plan.dp * env["best"].best.plan.tp * env["best"].best.plan.pp \
        * env["best"].best.plan.cp == env["best"].best.num_gpus
    assert env["doc"]["schema"].startswith("planner.")  # a plan document
    assert fleet.cost_per_hour_usd <= fleet.best_single.cost_per_hour_usd + 1e-9  # never above one type
    assert sim.ttft_ms["p90"] >= sim.ttft_ms["p50"] > 0
    assert len(env["frame"]) >= 1
    assert (tmp_path / "sim.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
    assert "<table" in (tmp_path / "mix.html").read_text()
    assert summary.jobs == 4 and summary.ok + summary.infeasible == 4
    assert env["train_types"].cheapest is not None
