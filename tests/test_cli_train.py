"""`planner train`, `planner check` and `planner export` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import planner
from test_cli import assert_one_line_error, run

JOB = ["train", "--model", "llama-3.1-8b", "--gpu", "h100", "--gpus", "64", "--seq", "8192", "--gbs", "256"]
ESTIMATE_FIELDS = {"step_time_s", "tokens_per_s", "mfu", "memory", "breakdown"}


@pytest.fixture(scope="module")
def result() -> dict:
    r = run(*JOB, "--json", "--top", "4")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_json_best_and_alternatives(result: dict) -> None:
    best = result["best"]
    assert ESTIMATE_FIELDS <= set(best)
    assert {"tp", "pp", "vpp", "cp", "ep", "dp", "micro_batch", "recompute", "zero", "dtype"} <= set(best)
    assert best["tp"] * best["pp"] * best["cp"] * best["dp"] == 64
    assert best["memory"]["peak_bytes"] <= best["memory"]["capacity_bytes"]
    alts = result["alternatives"]
    assert len(alts) == 3 and all(ESTIMATE_FIELDS <= set(a) for a in alts)
    times = [best["step_time_s"]] + [a["step_time_s"] for a in alts]
    assert times == sorted(times)
    assert result["search"]["estimated"] > 0 and result["search"]["shapes"] >= result["search"]["estimated"] // 4
    assert best["plan_document"]["schema"] == "planner.training-plan"


def test_matches_estimate_train(result: dict) -> None:
    """The search's numbers are the estimator's: re-estimating the chosen plan gives the same step time."""
    b = result["best"]
    plan = b["plan"]
    lists = [(flag, ",".join(map(str, plan[k]))) for flag, k in (("--layers-per-chunk", "layers_per_chunk"),
                                                                  ("--recompute-per-stage", "recompute_per_stage"))
             if plan[k] is not None]
    r = run("estimate", "train", "--model", "llama-3.1-8b", "--gpu", "h100", "--gpus", "64", "--tp", str(b["tp"]),
            "--pp", str(b["pp"]), "--vpp", str(b["vpp"]), "--cp", str(b["cp"]), "--mbs", str(b["micro_batch"]),
            "--gbs", "256", "--seq", "8192", "--recompute", b["recompute"], "--zero", str(b["zero"]), "--json",
            *(["--sp"] if plan["sp"] else ["--no-sp"]), "--attention", plan["attention"],
            "--zero3-gather", plan["zero3_gather"],
            "--overlap-grad-reduce" if plan["overlap_grad_reduce"] else "--no-overlap-grad-reduce",
            "--async-tp-allreduce" if plan["async_tp_allreduce"] else "--no-async-tp-allreduce",
            "--grad-reduce-in-fp32" if plan["grad_reduce_in_fp32"] else "--no-grad-reduce-in-fp32",
            *[x for pair in lists for x in pair])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["step_time_s"] == pytest.approx(b["step_time_s"], rel=1e-9)


def test_tables_output() -> None:
    r = run(*JOB, "--top", "3")
    assert r.returncode == 0, r.stderr
    for text in ("Best plan", "Top 3 plans", "MFU", "searched"):
        assert text in r.stdout


def test_export_megatron_flags() -> None:
    r = run(*JOB, "--export", "megatron")
    assert r.returncode == 0, r.stderr
    for flag in ("--tensor-model-parallel-size", "--pipeline-model-parallel-size", "--micro-batch-size",
                 "--global-batch-size 256", "--seq-length 8192"):
        assert flag in r.stdout


@pytest.mark.parametrize("target", ["torchtitan", "deepspeed", "slurm"])
def test_export_other_targets(target: str) -> None:
    r = run(*JOB, "--export", target)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()


def test_export_saved_plan(result: dict, tmp_path: Path) -> None:
    f = tmp_path / "plan.json"
    f.write_text(json.dumps(result))
    r = run("export", str(f), "--to", "megatron")
    assert r.returncode == 0, r.stderr
    assert f"--tensor-model-parallel-size {result['best']['tp']}" in r.stdout
    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps(result["best"]["plan_document"]))
    assert run("export", str(doc), "--to", "deepspeed").returncode == 0


def test_check_and_export_go_through_the_gate(result: dict, tmp_path: Path) -> None:
    """`planner check` says OK with a summary; `planner export` of the issue's malformed documents (num_gpus 0
    to slurm was a ZeroDivisionError, a missing plan.tp a KeyError, "tp": "8" a TypeError, tp 3 on 64 GPUs and
    a 1e15-byte peak were exported with exit 0) is exit 2 with one line naming the file and the field."""
    f = tmp_path / "plan.json"
    f.write_text(json.dumps(result))
    r = run("check", str(f))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"OK {f}: training plan 1.1: llama-3.1-8b on 64 x h100-sxm")
    good = result["best"]["plan_document"]
    cases = {
        "num_gpus 0": ({**good, "system": {**good["system"], "num_gpus": 0}}, "system.num_gpus"),
        "missing tp": ({**good, "plan": {k: v for k, v in good["plan"].items() if k != "tp"}}, "plan.tp: missing"),
        "tp string": ({**good, "plan": {**good["plan"], "tp": "8"}}, "plan.tp"),
        "tp 3": ({**good, "plan": {**good["plan"], "tp": 3}}, "degrees do not multiply"),
        "peak": ({**good, "estimate": {**good["estimate"], "memory": {**good["estimate"]["memory"], "peak_bytes": 1e15}}},
                 "peak_bytes"),
        "version": ({**good, "schema_version": 1.0}, "schema_version"),
    }
    for name, (doc, words) in cases.items():
        bad = tmp_path / f"{name.replace(' ', '_')}.json"
        bad.write_text(json.dumps(doc))
        assert_one_line_error(run("export", str(bad), "--to", "slurm"), str(bad), words)
    assert_one_line_error(run("check", str(tmp_path / "tp_3.json")), "tp 3")


def test_batch_tokens_16m() -> None:
    r = run("train", "--model", "llama-3.1-8b", "--gpu", "h100", "--gpus", "64", "--seq", "8192", "--batch-tokens",
            "2M", "--json", "--top", "1")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["best"]["plan"]["global_batch"] == 2 * 2**20 // 8192


# ---- impossible jobs: one line, exit 2 ------------------------------------------------------

def test_model_does_not_fit_anywhere() -> None:
    assert_one_line_error(run("train", "--model", "llama-3.1-405b", "--gpu", "h100", "--gpus", "8", "--seq", "8192",
                              "--gbs", "64"), "does not fit", "needs at least", "GB per GPU")


def test_batch_not_divisible() -> None:
    assert_one_line_error(run("train", "--model", "llama-3.1-8b", "--gpu", "h100", "--gpus", "64", "--seq", "8192",
                              "--batch-tokens", "1000000"), "not a multiple of --seq 8192")
    # 37 GPUs: pp 37 exceeds the 32 layers, and dp 37 does not divide a batch of 5
    assert_one_line_error(run("train", "--model", "llama-3.1-8b", "--gpu", "h100", "--gpus", "37", "--seq", "4096",
                              "--gbs", "5"), "no parallel layout of 37 GPUs")


def test_sequence_too_long() -> None:
    assert_one_line_error(run("train", "--model", "llama-3.1-8b", "--gpu", "h100", "--gpus", "8", "--seq", "1000000",
                              "--gbs", "8"), "exceeds", "131072")


def test_bad_flags() -> None:
    assert_one_line_error(run(*JOB[:-2]), "exactly one of --gbs")
    assert_one_line_error(run(*JOB, "--objective", "deadline"), "needs --tokens and --deadline")
    assert_one_line_error(run(*JOB, "--deadline", "soon", "--tokens", "1T"), "cannot read --deadline 'soon' as a time")
    assert_one_line_error(run(*JOB, "--dtype", "fp8", "--gpu", "a100"), "FP8")
    assert_one_line_error(run("export", "/nonexistent/plan.json", "--to", "megatron"), "plan.json: no such file")


def test_deadline_and_budget_errors_say_by_how_much() -> None:
    line = assert_one_line_error(run(*JOB, "--tokens", "15T", "--deadline", "1d"), "deadline is 1.0 days")
    assert "needs" in line
    assert_one_line_error(run(*JOB, "--tokens", "15T", "--budget", "1000"), "budget is $1,000")


def test_pinned_choices() -> None:
    r = run(*JOB, "--mbs", "2", "--zero", "1", "--recompute", "selective", "--json", "--top", "3")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    for e in [d["best"], *d["alternatives"]]:
        assert (e["plan"]["micro_batch"], e["plan"]["zero"], e["plan"]["recompute"]) == (2, 1, "selective")
    assert_one_line_error(run(*JOB, "--recompute", "most"), "invalid recompute modes")
    assert_one_line_error(run(*JOB, "--mbs", "one"), "--mbs takes whole numbers")


# ---- every TrainingPlan field on `estimate train` (issue 11) ----------------------------------------------------

EST = ("estimate", "train", "--model", "llama-3.1-8b", "--gpu", "h100", "--gpus", "16", "--gbs", "64", "--seq", "4096")
PLAN_FLAGS = {  # flag(s) -> the plan fields they set
    ("--attention", "unfused"): {"attention": "unfused"},
    ("--no-overlap-grad-reduce",): {"overlap_grad_reduce": False},
    ("--tp", "2", "--no-sp", "--async-tp-allreduce"): {"tp": 2, "sp": False, "async_tp_allreduce": True},
    ("--no-grad-reduce-in-fp32",): {"grad_reduce_in_fp32": False},
    ("--zero", "3", "--zero3-gather", "tensor"): {"zero": 3, "zero3_gather": "tensor"},
    ("--pp", "2", "--layers-per-chunk", "15,17"): {"pp": 2, "layers_per_chunk": (15, 17)},
    ("--pp", "2", "--recompute", "full", "--recompute-per-stage", "3,2"):
        {"pp": 2, "recompute": "full", "recompute_per_stage": (3, 2)},
}


def test_every_plan_field_is_a_flag() -> None:
    """Each TrainingPlan field a user sets from Python has a flag (num_gpus gives dp; dtype, sp, ... as before)."""
    from cli_in_process import cli

    from planner import TrainingPlan

    import inspect

    from planner.cli.train import estimate_train

    decls = {d for p in inspect.signature(estimate_train).parameters.values()
             for decl in getattr(p.default, "param_decls", ()) for d in decl.split("/")}
    flags = {"micro_batch": "--mbs", "global_batch": "--gbs", "seq_len": "--seq"}
    for field in TrainingPlan.model_fields:
        if field == "dp":
            continue
        assert flags.get(field, "--" + field.replace("_", "-")) in decls, field
    for argv, fields in PLAN_FLAGS.items():
        code, out, err = cli(*EST, *argv, "--json")
        assert code == 0, (argv, err)
        d = json.loads(out)
        for k, v in fields.items():
            assert d["plan"][k] == (list(v) if isinstance(v, tuple) else v), (argv, k)
        py = planner.estimate_train("llama-3.1-8b", "h100", gpus=16, global_batch=64, seq_len=4096, **fields)
        assert d["step_time_s"] == pytest.approx(py.step_time_s, rel=1e-12), argv
        assert d["memory"]["peak_bytes"] == pytest.approx(py.memory.peak_bytes, rel=1e-12), argv


def test_plan_flags_change_what_they_should() -> None:
    from cli_in_process import cli

    def est(*argv: str) -> dict:
        code, out, err = cli(*EST, *argv, "--json")
        assert code == 0, err
        return json.loads(out)

    base = est()
    # 16-bit gradients: exactly half the fp32 gradient bytes
    assert est("--no-grad-reduce-in-fp32")["memory"]["gradients_bytes"] == pytest.approx(
        base["memory"]["gradients_bytes"] / 2, rel=1e-12)
    # no overlap: the whole data-parallel reduction is exposed
    no = est("--no-overlap-grad-reduce")["breakdown"]
    assert no["dp_comm"] == pytest.approx(no["dp_comm_total"], rel=1e-12) and no["dp_comm"] >= base["breakdown"]["dp_comm"]
    # unfused attention keeps the s x s scores: more activation memory, and its name in the assumptions
    unf = est("--attention", "unfused", "--recompute", "none")
    assert unf["memory"]["activations_bytes"] > est("--recompute", "none")["memory"]["activations_bytes"]
    assert any("unfused" in a for a in unf["assumptions"])


@pytest.mark.parametrize("argv,words", [
    (("--attention", "fused"), ["--attention", "flash", "unfused"]),
    (("--zero3-gather", "bucket"), ["--zero3-gather", "layer", "tensor"]),
    (("--layers-per-chunk", "16,x"), ["--layers-per-chunk takes whole numbers"]),
    (("--layers-per-chunk", "99999"), ["--layers-per-chunk must be at most 4,096"]),
    (("--layers-per-chunk", "10,22"), ["layers_per_chunk has 2 entries"]),
    (("--pp", "2", "--layers-per-chunk", "10,10"), ["sum to the 32 layers"]),
    (("--recompute-per-stage", "2"), ["needs recompute='full'"]),
    (("--pp", "2", "--recompute", "full", "--recompute-per-stage", "17,0"), ["stage 0 holds 16 layers"]),
    (("--recompute", "full", "--recompute-per-stage", ","), ["--recompute-per-stage is empty"]),
])
def test_plan_flag_errors_are_one_line(argv: tuple[str, ...], words: list[str]) -> None:
    from cli_in_process import cli

    code, out, err = cli(*EST, *argv)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], (w, lines[0])
