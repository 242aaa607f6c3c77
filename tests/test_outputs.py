"""Outputs (issue 10): never write over an input, no option that silently does nothing, the same command
gives the same ``--json`` bytes (timings only with ``--timings``), and no Python warning text on stderr.

The CLI runs in-process (:func:`planner.cli.main`); the expert placer, whose CP-SAT solver is the one part
that could depend on the machine's speed, also runs twice as separate processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import planner
from cli_in_process import cli
from planner.cli.render import TIMING_KEYS
from planner.moe.synthetic import synthetic_trace
from planner.moe.trace import save_routing

ROOT = Path(__file__).resolve().parents[1]


def refused(*argv: str, expect: str) -> str:
    code, out, err = cli(*argv)
    assert code == 2, (argv, code, out[-300:], err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], (expect, err)
    return lines[0]


def keys(obj) -> set[str]:
    """Every key of a JSON document, at any depth."""
    if isinstance(obj, dict):
        return set(obj) | {k for v in obj.values() for k in keys(v)}
    if isinstance(obj, list):
        return {k for v in obj for k in keys(v)}
    return set()


@pytest.fixture(scope="module")
def routing(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("routing") / "trace.npz"
    save_routing(synthetic_trace(planner.get_model("mixtral-8x7b"), tokens=128, seed=1), p)
    return p


@pytest.fixture(scope="module")
def rows_csv(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("rows") / "rows.csv"
    p.write_text("id,model_path,system,backend,precision,mode,isl,osl,batch_size,tp_size\n"
                 "r1,Qwen/Qwen3-8B,h100_sxm,vllm,bf16,agg,1024,128,8,1\n")
    return p


# ---- never write over an input ------------------------------------------------------------------------------

def test_out_is_never_the_csv_it_reads(rows_csv, tmp_path):
    before = rows_csv.read_bytes()
    refused("estimate", "serve", "--from-csv", str(rows_csv), "--out", str(rows_csv),
            expect=f"--out {rows_csv} is the --from-csv input; refusing to write over it")
    link = tmp_path / "link.csv"
    link.symlink_to(rows_csv)
    refused("estimate", "serve", "--from-csv", str(rows_csv), "--out", str(link), expect="is the --from-csv input")
    assert rows_csv.read_bytes() == before
    out = tmp_path / "out.csv"
    code, _, err = cli("estimate", "serve", "--from-csv", str(rows_csv), "--out", str(out))
    assert code == 0, err
    assert out.read_text().splitlines()[1].startswith("r1,")


def test_export_is_never_the_trace_or_the_model_it_reads(routing, tmp_path):
    before = routing.read_bytes()
    base = ("experts", "-m", "mixtral-8x7b", "--gpus", "4", "--time-limit", "0.5")
    refused(*base, "--trace", str(routing), "--export", str(routing), expect="is the --trace input")
    assert routing.read_bytes() == before
    config = tmp_path / "mixtral.json"
    shutil.copy(ROOT / "model_specs" / "mixtral-8x7b.json", config)
    refused("experts", "-m", str(config), "--gpus", "4", "--synthetic", "--tokens", "64", "--export", str(config),
            expect="is the --model input")
    assert json.loads(config.read_text())["model_type"] == "mixtral"


# ---- options that do nothing are errors ---------------------------------------------------------------------

SIM_TRACE = "arrived_at,num_prefill_tokens,num_decode_tokens\n0,100,20\n0.5,200,10\n"


@pytest.mark.parametrize("argv, expect", [
    (("estimate", "serve", "-m", "qwen3-8b", "-g", "h100", "--isl", "10", "--osl", "10", "-c", "1", "--out", "x.csv"),
     "--out does nothing without --from-csv"),
    (("estimate", "serve", "--from-csv", "{rows}", "--tp", "2"), "--tp does nothing with --from-csv"),
    (("estimate", "serve", "-m", "qwen3-8b", "-g", "h100", "--isl", "10", "--osl", "10", "-c", "1", "--model-dir", "."),
     "--model-dir does nothing: --model qwen3-8b is built in"),
    (("estimate", "serve", "--from-csv", "{rows}", "-m", "qwen3-8b", "--json"),
     "--model, --json do nothing with --from-csv"),
    (("simulate", "-m", "qwen3-8b", "-g", "h100", "--trace", "{trace}", "--isl", "100"),
     "--isl does nothing with --trace"),
    (("simulate", "-m", "qwen3-8b", "-g", "h100", "--trace", "{trace}", "--osl", "10", "--seed", "3"),
     "--osl, --seed do nothing with --trace"),
    (("experts", "-m", "mixtral-8x7b", "--gpus", "4", "--trace", "{routing}", "--tokens", "64"),
     "--tokens does nothing with --trace"),
    (("experts", "-m", "mixtral-8x7b", "--gpus", "4", "--trace", "{routing}", "--seed", "1"),
     "--seed does nothing with --trace"),
    (("experts", "-m", "mixtral-8x7b", "--gpus", "4", "--trace", "{stats}", "--no-holdout"),
     "--holdout/--no-holdout does nothing with an aggregated trace"),
    (("experts", "-m", "mixtral-8x7b", "--gpus", "4", "--synthetic", "--timings"), "--timings does nothing without --json"),
    (("train", "-m", "llama-3.1-8b", "-g", "h100", "-n", "8", "--seq", "4096", "--gbs", "64", "--timings"),
     "--timings does nothing without --json"),
    (("serve", "-m", "qwen3-8b", "-g", "h100", "-n", "8", "--isl", "10", "--osl", "10", "--ttft", "1s", "--tpot",
      "1s", "--timings"), "--timings does nothing without --json"),
])
def test_options_that_do_nothing_are_refused(argv, expect, rows_csv, routing, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text(SIM_TRACE)
    stats = tmp_path / "stats.npz"
    save_routing(synthetic_trace(planner.get_model("mixtral-8x7b"), tokens=64).stats(), stats)
    names = {"{rows}": str(rows_csv), "{trace}": str(trace), "{routing}": str(routing), "{stats}": str(stats)}
    refused(*(names.get(a, a) for a in argv), expect=expect)


def test_model_dir_resolves_an_unknown_hugging_face_id(tmp_path):
    shutil.copy(ROOT / "model_specs" / "qwen3-8b.json", tmp_path / "acme--Private-8B.json")
    argv = ("estimate", "serve", "-m", "acme/Private-8B", "-g", "h100", "--isl", "10", "--osl", "10", "-c", "1", "--json")
    code, out, err = cli(*argv, "--model-dir", str(tmp_path))
    assert code == 0 and json.loads(out)["model"] == "private-8b", err
    refused(*argv, expect="unknown model 'acme/Private-8B'")


# ---- the same command twice: the same bytes -------------------------------------------------------------------

SAME = {
    "estimate train": ("estimate", "train", "-m", "llama-3.1-8b", "-g", "h100", "-n", "8", "--tp", "2", "--gbs", "64",
                       "--seq", "4096", "--json"),
    "train": ("train", "-m", "llama-3.1-8b", "-g", "h100", "-n", "8", "--seq", "4096", "--gbs", "64", "--json"),
    "estimate serve": ("estimate", "serve", "-m", "qwen3-8b", "-g", "h100", "--isl", "1024", "--osl", "128", "-c", "8",
                       "--json"),
    "serve": ("serve", "-m", "qwen3-8b", "-g", "h100", "-n", "8", "--isl", "1024", "--osl", "128", "--ttft", "500ms",
              "--tpot", "50ms", "--json"),
    "simulate": ("simulate", "-m", "qwen3-8b", "-g", "h100", "--rate", "4", "--requests", "60", "--json"),
    "experts": ("experts", "-m", "mixtral-8x7b", "--synthetic", "--tokens", "256", "--gpus", "4", "--time-limit",
                "0.5", "--json"),
}


@pytest.mark.parametrize("name", sorted(SAME))
def test_json_is_byte_identical_without_timings(name):
    first = cli(*SAME[name])
    second = cli(*SAME[name])
    assert first[0] == 0 and first[2] == "", first[2]
    assert first[1] == second[1]
    assert not keys(json.loads(first[1])) & TIMING_KEYS


@pytest.mark.parametrize("name, timing", [("train", "elapsed_s"), ("serve", "elapsed_s"), ("experts", "time_s")])
def test_timings_only_on_request(name, timing):
    code, out, err = cli(*SAME[name], "--timings")
    assert code == 0, err
    assert timing in keys(json.loads(out))


def test_expert_placement_is_the_same_in_two_processes(tmp_path):
    """Two processes (different timing, the machine shared with other work): the same bytes, including the
    exported placement. CP-SAT runs on a deterministic time limit with one worker and a fixed seed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PLANNER_DEBUG", None)
    outs = []
    for i in range(2):
        export = tmp_path / f"placement{i}.json"
        argv = ["experts", "-m", "qwen3-30b-a3b", "--synthetic", "--tokens", "512", "--gpus", "8", "--time-limit",
                "1", "--json", "--export", str(export)]
        r = subprocess.run([sys.executable, "-m", "planner", *argv], env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        outs.append((r.stdout.replace(str(export), "EXPORT"), export.read_bytes()))
    assert outs[0] == outs[1]
    assert json.loads(outs[0][0])["solver"]["method"] == "decomposed"  # the time-limited path


# ---- warnings never reach stderr -----------------------------------------------------------------------------

def test_python_warnings_never_reach_stderr(monkeypatch):
    import planner.cli.serve as serve_cli

    real = serve_cli.estimate_serving

    def noisy(*args, **kwargs):
        np.float64(1.0) / np.float64(0.0)  # a numpy RuntimeWarning (divide by zero)
        warnings.warn("something deprecated", DeprecationWarning, stacklevel=1)
        return real(*args, **kwargs)

    monkeypatch.setattr(serve_cli, "estimate_serving", noisy)
    code, out, err = cli(*SAME["estimate serve"])
    assert code == 0 and err == "", err
    assert json.loads(out)["ttft_ms"] > 0
