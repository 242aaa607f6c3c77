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
    assert small.spearman >= 0.95 and small.regret_pct <= 2.0 and small.mape_pct <= 10.5
    assert big.spearman >= 0.65 and big.regret_pct <= 2.0 and big.mape_pct <= 8.5


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


# ---- scripts/layouts_ceiling.py: what no model of the 1F1B shape can reproduce ---------------------------

def _ceiling_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "scripts" / "layouts_ceiling.py"
    spec = importlib.util.spec_from_file_location("layouts_ceiling", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ceiling_bounds_closed_forms():
    """T(b) = n_b (c b + o) + K with c, o, K >= 0 always satisfies the bounds; a pair that runs
    faster with more work, or slower than linear in the work, does not."""
    lc = _ceiling_module()
    p, gbs, d = 4, 96, 8
    def fam(times):
        return {("x", 2, d, p): [(b, gbs // (d * b) + p - 1, t) for b, t in times]}
    physical = [(b, (gbs // (d * b) + p - 1) * (10.0 * b + 3.0) + 50.0) for b in (1, 2, 3, 4, 6, 12)]
    assert lc.violations(fam(physical)) == []
    # b = 12: 4 slots of 4x the work of b = 3's 7 slots; a slot of b = 12 cannot be faster than one of b = 3
    bad = lc.violations(fam([(3, 100.0), (12, 30.0)]))
    assert len(bad) == 1 and bad[0][3] == pytest.approx(7 / 4)
    # nor can a b = 12 slot cost more than 4x a b = 3 slot: T(3)/T(12) >= 7 * 3 / (4 * 12)
    bad = lc.violations(fam([(3, 100.0), (12, 300.0)]))
    assert len(bad) == 1 and bad[0][3] == pytest.approx(21 / 48)
    assert lc.violations(fam([(3, 100.0), (12, 200.0)])) == []
    # and the per-family fit n (c b + o) reproduces such a family exactly
    exact = [(b, (gbs // (d * b) + p - 1) * (10.0 * b + 3.0)) for b in (1, 2, 3, 4, 6, 12)]
    mape, rho, k = lc.ceiling(fam(exact), "x")
    assert mape < 1e-9 and rho == pytest.approx(1.0) and k == 2


def test_ceiling_on_the_measured_layouts(reference_dir):
    """The measured layouts break the bounds (3.6B t8 b64: twice b32's time for the same work), and even
    a fit with two free constants per (t, d, p) family ranks the 39.1B job below Spearman 0.9."""
    import csv

    lc = _ceiling_module()
    path = reference_dir / "training" / LAYOUTS_CSV
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with open(path, newline="") as f:
        fams = lc.families(list(csv.DictReader(f)))
    bad = {(job, label): out for job, label, _, _, out in lc.violations(fams)}
    assert bad[("3.6", "t8 d8 p1: b32 / b64")] > 90.0
    assert bad[("39.1", "t4 d32 p4: b2 / b3")] > 10.0
    mape, rho, _ = lc.ceiling(fams, "39.1")
    assert mape < 4.0 and rho < 0.9
