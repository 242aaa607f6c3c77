"""The ``planner`` command line, run as a user runs it (``python -m planner``).

Bad input must give exit code 2 and ONE line on stderr (``error: ...``), never
a traceback; ``--json`` must print exactly one JSON object with the documented
keys.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

TRAIN = ["estimate", "train", "--model", "llama-3.1-70b", "--gpu", "h100", "--gpus", "64", "--tp", "8", "--pp", "2",
         "--mbs", "1", "--gbs", "512", "--seq", "8192"]


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), "COLUMNS": "200"}
    env.pop("PLANNER_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "planner", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def assert_one_line_error(r: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: "), lines[0]
    for e in expected:
        assert e in lines[0], (e, lines[0])
    return lines[0]


# ---- spec files for `specs validate` -------------------------------------------

GOOD_SYSTEM: dict[str, Any] = {
    "name": "test-gpu",
    "aliases": ["tgpu"],
    "description": "a made-up accelerator for tests",
    "sources": ["test fixture"],
    "accelerator": {
        "name": "Test GPU 80GB", "vendor": "nvidia", "family": "hopper", "memory_bytes": "80 GiB",
        "hbm_bandwidth_bytes_per_s": "3.35 TB/s", "peak_flops": {"bf16": "989.5 TFLOPS", "fp8": "1979 TFLOPS"},
        "tdp_w": "700 W", "price_per_hour_usd": 2.5,
    },
    "node": {
        "accelerators_per_node": 8, "scale_up_domain": 8, "scale_up_bandwidth_bytes_per_s": "450 GB/s",
        "scale_up_latency_s": "3 us", "nic_bandwidth_bytes_per_s": "400 Gb/s", "network_latency_s": "5 us",
        "pcie_bandwidth_bytes_per_s": "64 GB/s", "host_memory_bytes": "2 TiB",
    },
}

LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
    "max_position_embeddings": 131072, "tie_word_embeddings": False,
}


def _system(**changes: Any) -> dict[str, Any]:
    d = json.loads(json.dumps(GOOD_SYSTEM))
    for dotted, value in changes.items():
        *path, key = dotted.split("__")
        target = d
        for p in path:
            target = target[p]
        if value is None:
            del target[key]
        else:
            target[key] = value
    return d


@pytest.fixture()
def spec_file(tmp_path: Path):
    def write(name: str, content: Any) -> Path:
        p = tmp_path / name
        if isinstance(content, str):
            p.write_text(content)
        elif name.endswith(".json"):
            p.write_text(json.dumps(content))
        else:
            p.write_text(yaml.safe_dump(content))
        return p

    return write


# ---- happy paths -----------------------------------------------------------------

def test_version() -> None:
    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("planner ")


def test_estimate_train_json() -> None:
    r = run(*TRAIN, "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)  # exactly one JSON object, nothing else on stdout
    assert isinstance(d, dict)
    for key in ("step_time_s", "tokens_per_s", "mfu", "fits", "memory", "breakdown", "plan", "model", "gpu",
                "num_gpus", "model_tflops_per_gpu", "constants", "assumptions", "time_to_train_s", "cost_to_train_usd"):
        assert key in d, key
    assert isinstance(d["fits"], bool)
    for key in ("weights_bytes", "gradients_bytes", "optimizer_bytes", "activations_bytes", "other_bytes", "peak_bytes",
                "capacity_bytes"):
        assert isinstance(d["memory"][key], (int, float)), key
    assert d["num_gpus"] == 64 and d["model"] == "llama-3.1-70b" and d["gpu"] == "h100-sxm"
    assert d["plan"]["tp"] == 8 and d["plan"]["pp"] == 2 and d["plan"]["dp"] == 4
    assert 0 < d["mfu"] < 1 and d["step_time_s"] > 0
    # 512 sequences x 8192 tokens per step
    assert d["tokens_per_s"] == pytest.approx(512 * 8192 / d["step_time_s"], rel=1e-9)
    # default --tokens 1e12; the H100 spec carries a price
    assert d["time_to_train_s"] == pytest.approx(1e12 / d["tokens_per_s"], rel=1e-9)
    price = d["price_per_gpu_hour_usd"]
    assert price and d["cost_to_train_usd"] == pytest.approx(d["time_to_train_s"] / 3600 * 64 * price, rel=1e-9)
    # the step breakdown adds up to the step (entries ending in _total are before-overlap notes)
    parts = sum(v for k, v in d["breakdown"].items() if not k.endswith("_total"))
    assert parts == pytest.approx(d["step_time_s"], rel=1e-6)


def test_estimate_train_json_without_price(spec_file) -> None:
    hw = spec_file("noprice.yaml", _system(accelerator__price_per_hour_usd=None))
    args = [a if a != "h100" else str(hw) for a in TRAIN]
    r = run(*args, "--json", "--tokens", "2e9")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["cost_to_train_usd"] is None
    assert d["time_to_train_s"] == pytest.approx(2e9 / d["tokens_per_s"], rel=1e-9)


def test_estimate_train_tables() -> None:
    r = run(*TRAIN)
    assert r.returncode == 0, r.stderr
    for text in ("step time", "MFU", "tokens / s", "fits in memory", "cost to train", "weights", "activations", "peak",
                 "pp_bubble", "% of step"):
        assert text in r.stdout, text


def test_specs_list() -> None:
    r = run("specs", "list")
    assert r.returncode == 0, r.stderr
    assert "h100-sxm" in r.stdout and "llama-3.1-70b" in r.stdout and "meta-llama/Llama-3.1-70B" in r.stdout
    gpus = run("specs", "list", "--kind", "gpu")
    assert "h100-sxm" in gpus.stdout and "llama-3.1-70b" not in gpus.stdout
    models = run("specs", "list", "--kind", "model")
    assert "llama-3.1-70b" in models.stdout and "h100-sxm" not in models.stdout


def test_specs_show() -> None:
    r = run("specs", "show", "h100")
    assert r.returncode == 0, r.stderr
    assert "h100-sxm" in r.stdout and "memory_bytes" in r.stdout and "sources" in r.stdout
    r = run("specs", "show", "deepseek-v3")
    assert r.returncode == 0, r.stderr
    assert "kv_lora_rank" in r.stdout and "70,272" in r.stdout


def test_specs_validate_ok(spec_file) -> None:
    r = run("specs", "validate", str(spec_file("good.yaml", GOOD_SYSTEM)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK") and "test-gpu" in r.stdout and "85.9 GB (80.0 GiB)" in r.stdout
    r = run("specs", "validate", str(spec_file("config.json", LLAMA_CONFIG)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK") and "32 layers" in r.stdout


def test_validate_training_json(reference_dir: Path) -> None:
    r = run("validate", "training", "--reference", str(reference_dir), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert len(d["table1"]) == 10
    assert {"table1_mape_pct", "table2_mape_pct", "table2"} <= set(d)
    row = d["table1"][0]
    assert {"name", "gpus", "tp", "pp", "published", "predicted", "error_pct"} <= set(row)


def test_validate_training_tables(reference_dir: Path) -> None:
    r = run("validate", "training", "--reference", str(reference_dir))
    assert r.returncode == 0, r.stderr
    assert "Table 1" in r.stdout and "MAPE" in r.stdout


# ---- bad input: exit 2, one line, no traceback -------------------------------------

def test_unknown_gpu_suggests_close_name() -> None:
    args = [a if a != "h100" else "h1000" for a in TRAIN]
    assert_one_line_error(run(*args), "unknown GPU 'h1000'", "did you mean", "h100")


def test_unknown_model() -> None:
    args = [a if a != "llama-3.1-70b" else "llama-3.1-7b" for a in TRAIN]
    assert_one_line_error(run(*args), "unknown model", "llama-3.1-70b")


def test_unknown_spec_name() -> None:
    assert_one_line_error(run("specs", "show", "no-such-thing"), "no-such-thing")


def test_degrees_do_not_multiply_to_gpu_count() -> None:
    args = list(TRAIN)
    args[args.index("--gpus") + 1] = "100"
    args[args.index("--pp") + 1] = "4"
    assert_one_line_error(run(*args), "100")


def test_global_batch_not_divisible() -> None:
    args = list(TRAIN)
    args[args.index("--gbs") + 1] = "510"  # dp = 64 / (8 * 2) = 4 does not divide 510
    assert_one_line_error(run(*args), "510")


@pytest.mark.parametrize("flag, value", [("--gbs", "-1"), ("--seq", "0"), ("--mbs", "0"), ("--gpus", "-8"),
                                         ("--tp", "0")])
def test_non_positive_sizes(flag: str, value: str) -> None:
    args = list(TRAIN)
    args[args.index(flag) + 1] = value
    assert_one_line_error(run(*args), flag)


def test_bad_choice() -> None:
    assert_one_line_error(run(*TRAIN, "--recompute", "sometimes"), "--recompute")


def test_missing_option() -> None:
    args = TRAIN[: TRAIN.index("--seq")]
    assert_one_line_error(run(*args), "--seq")


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("malformed.yaml", "name: x\naccelerator: [unclosed\n", "malformed YAML"),
        ("malformed.json", '{"model_type": "llama", ', "malformed JSON"),
        ("missing.yaml", _system(accelerator__tdp_w=None), "tdp_w"),
        ("unknown.yaml", _system(accelerator__colour="green"), "colour"),
        ("negative.yaml", _system(accelerator__memory_bytes="-80 GB"), "memory_bytes"),
        ("badunit.yaml", _system(accelerator__hbm_bandwidth_bytes_per_s="3.35 parsecs"), "hbm_bandwidth_bytes_per_s"),
        ("mamba.json", {"architectures": ["MambaForCausalLM"], "model_type": "mamba", "hidden_size": 768,
                        "num_hidden_layers": 24, "vocab_size": 50280}, "mamba"),
        ("noheads.json", {k: v for k, v in LLAMA_CONFIG.items() if k != "num_attention_heads"}, "num_attention_heads"),
    ],
)
def test_specs_validate_bad_file(spec_file, name: str, content: Any, expected: str) -> None:
    path = spec_file(name, content)
    line = assert_one_line_error(run("specs", "validate", str(path)), expected)
    assert name in line  # says where


def test_bad_hardware_file_given_to_estimate(spec_file) -> None:
    hw = spec_file("negative.yaml", _system(accelerator__memory_bytes="-80 GB"))
    args = [a if a != "h100" else str(hw) for a in TRAIN]
    assert_one_line_error(run(*args), "memory_bytes", "negative")


def test_specs_validate_missing_file(tmp_path: Path) -> None:
    assert_one_line_error(run("specs", "validate", str(tmp_path / "nope.yaml")), "nope.yaml")


def test_validate_training_missing_reference() -> None:
    assert_one_line_error(run("validate", "training", "--reference", "/nonexistent"), "/nonexistent")


def test_unknown_command() -> None:
    assert_one_line_error(run("estimate", "trian"), "trian")


# ---- the example script runs against the current API --------------------------------

def test_example_script_runs() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "estimate_llama70b.py")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "MFU" in r.stdout and "tokens/s" in r.stdout
