"""Many layouts of one job (shared/reference/training/megatron_a100_layouts.csv): does the model rank them?"""

from __future__ import annotations

import math

import pytest

from planner.validate.training import LAYOUTS_CSV, layouts_plan, layouts_system, spearman, validate_layouts


def test_spearman_closed_forms():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # one swapped pair of 4: 1 - 6 * sum d^2 / (n (n^2 - 1)) = 1 - 6 * 2 / 60
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # ties share their mean rank
    assert spearman([1, 1, 2], [1, 1, 2]) == pytest.approx(1.0)
    assert math.isnan(spearman([1.0], [1.0]))


def test_layouts_system_and_plan_are_the_measured_cluster():
    sysm = layouts_system()
    assert sysm.node.nic_bandwidth_bytes_per_s == pytest.approx(100e9 / 8)  # 800 Gb/s per 8-GPU node
    assert sysm.node.accelerators_per_node == 8 and sysm.accelerator.memory_bytes == 81920 * 2**20
    p = layouts_plan(tp=8, pp=2, dp=32, mbs=2, gbs=1536)
    assert (p.recompute, p.vpp, p.dtype, p.attention, p.sp, p.zero, p.overlap_grad_reduce) == (
        "full", 1, "fp16", "unfused", False, 0, False)
    assert p.num_microbatches == 24


def test_layouts_section(reference_dir):
    if not (reference_dir / "training" / LAYOUTS_CSV).is_file():
        pytest.skip("no layouts CSV")
    jobs = {j.name: j for j in validate_layouts(reference_dir)}
    small, big = jobs["gpt-3.6b"], jobs["gpt-39.1b"]
    assert (len(small.rows), small.gpus, small.global_batch) == (26, 64, 512)
    assert (len(big.rows), big.gpus, big.global_batch) == (47, 512, 1536)
    for j in (small, big):
        assert all(r.tp * r.dp * r.pp == j.gpus for r in j.rows)
        assert j.mape_pct == pytest.approx(sum(abs(r.error_pct) for r in j.rows) / len(j.rows))
        best = min(j.rows, key=lambda r: r.measured_ms)
        assert j.measured_best == f"t{best.tp} d{best.dp} p{best.pp} b{best.micro_batch}"
        assert j.regret_pct >= 0.0
    # measured: t1 d64 b8 3,566 ms and t4 d32 p4 b2 13,876 ms are the fastest layouts
    assert small.measured_best == "t1 d64 p1 b8" and big.measured_best == "t4 d32 p4 b2"
    # it ran, and fits phase-aware (fp32 main grads only in the optimizer step, after the backward): ~68 GiB
    fastest = next(r for r in small.rows if (r.tp, r.dp, r.pp, r.micro_batch) == (1, 64, 1, 8))
    assert fastest.fits
    # today's model (issue 11 acceptance: MAPE <= 6 %, Spearman >= 0.9, regret <= 2 % - not met yet
    # for the 39.1B job): guard against regressions
    assert small.spearman >= 0.95 and small.regret_pct <= 2.0 and small.mape_pct <= 11.0
    assert big.spearman >= 0.5 and big.regret_pct <= 2.0 and big.mape_pct <= 11.0


def test_validate_training_cli_prints_layouts(reference_dir):
    import json

    from tests.test_cli import run

    if not (reference_dir / "training" / LAYOUTS_CSV).is_file():
        pytest.skip("no layouts CSV")
    r = run("validate", "training", "--reference", str(reference_dir), "--json")
    assert r.returncode == 0, r.stderr
    jobs = json.loads(r.stdout)["layouts"]
    assert [j["name"] for j in jobs] == ["gpt-3.6b", "gpt-39.1b"]
    assert {"mape_pct", "spearman", "pick", "measured_best", "regret_pct", "rows"} <= set(jobs[0])
    r = run("validate", "training", "--reference", str(reference_dir))
    assert r.returncode == 0, r.stderr
    assert "Layouts of gpt-39.1b on 512 A100" in r.stdout and "Spearman" in r.stdout
