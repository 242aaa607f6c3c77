"""A domain for every spec input (issue 10): loaders, config.json and hardware YAML sanity, names, API arguments.

Each bad input is written to ``tmp_path`` and must be refused with exactly one line, as a
:class:`planner.SpecError` (a :class:`planner.PlannerError`) naming the file and the field; the CLI
prints that line after ``error:`` and exits 2. The property test at the end mutates one numeric field of
real catalog configs: the result either loads with finite, positive derived numbers or is refused as a
PlannerError - never anything else.
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import planner
from planner import catalog
from planner.errors import PlannerError
from planner.specs.model import ModelConfigError, ModelSpec, from_hf_config
from planner.specs.units import UnitError, parse_bandwidth, parse_bytes, parse_flops, parse_seconds

ROOT = Path(__file__).resolve().parents[1]
SpecError = planner.SpecError


def _config(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "model_specs" / f"{name}.json").read_text())


def _system() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "hardware_specs" / "h100-sxm.yaml").read_text())


def _refused(fn: Any, *args: Any, where: str | None = None, field: str | None = None,
             exc: type[Exception] = SpecError) -> str:
    """Call ``fn``; it must raise exactly ``exc`` with one line naming ``where`` and ``field``."""
    with pytest.raises(PlannerError) as info:
        fn(*args)
    assert type(info.value) is exc, (type(info.value), info.value)
    msg = str(info.value)
    assert "\n" not in msg and "\r" not in msg and msg.strip() == msg, msg
    if where:
        assert where in msg, (where, msg)
    if field:
        assert field in msg, (field, msg)
    return msg


def _write_model(tmp_path: Path, fname: str, base: str, **changes: Any) -> Path:
    cfg = {**_config(base), **changes}
    path = tmp_path / fname
    path.write_text(json.dumps(cfg))
    return path


# ---- 1. loaders: special, oversized, deep, binary, tagged and aliased files ---------------------------------

def test_folder_fifo_and_dev_zero_link_are_refused_not_read(tmp_path: Path) -> None:
    (tmp_path / "folder.yaml").mkdir()
    os.mkfifo(tmp_path / "fifo.json")  # reading it would block for ever
    (tmp_path / "zero.json").symlink_to("/dev/zero")  # reading it would never end
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    _refused(planner.get_system, str(tmp_path / "folder.yaml"), where="folder.yaml", field="folder")
    _refused(planner.get_model, str(tmp_path / "fifo.json"), where="fifo.json", field="not a regular file")
    _refused(planner.get_model, str(tmp_path / "zero.json"), where="zero.json", field="not a regular file")
    _refused(planner.get_system, str(tmp_path / "zero.yaml"), where="zero.yaml", field="not a regular file")
    _refused(planner.get_system, "/dev/zero", where="/dev/zero", field="not a regular file")
    _refused(planner.load_model_file, tmp_path / "zero.json", where="zero.json")


def test_oversized_spec_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog, "MAX_SPEC_FILE_BYTES", 4096)
    path = _write_model(tmp_path, "big.json", "qwen3-8b", padding="x" * 5000)
    _refused(planner.get_model, str(path), where="big.json", field="larger than")


@pytest.mark.parametrize("fname, text, expected", [
    ("deep.json", "[" * 100_000 + "]" * 100_000, "nested deeper"),
    ("deepobj.json", '{"a":' * 50_000 + "1" + "}" * 50_000, "nested deeper"),
    ("deep.yaml", "- " * 100_000 + "x\n", "nest"),
    ("deepflow.yaml", "a: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested deeper"),
    ("bigint.json", '{"vocab_size": ' + "9" * 5000 + "}", "digits"),
])
def test_deeply_nested_or_huge_literals_are_refused_without_recursion_error(tmp_path: Path, fname: str, text: str,
                                                                            expected: str) -> None:
    path = tmp_path / fname
    path.write_text(text)
    fn = planner.get_model if fname.endswith(".json") else planner.get_system
    _refused(fn, str(path), where=fname, field=expected)


def test_binary_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "binary.json").write_bytes(b'{"a": "\xff\xfe\x00\x80"}')
    (tmp_path / "binary.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    _refused(planner.get_model, str(tmp_path / "binary.json"), where="binary.json", field="not UTF-8")
    _refused(planner.get_system, str(tmp_path / "binary.yaml"), where="binary.yaml", field="not UTF-8")


def test_yaml_tags_are_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "tag.yaml"
    path.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    _refused(planner.get_system, str(path), where="tag.yaml", field="tag")
    assert not marker.exists()


def test_yaml_aliases_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 9)]
    path.write_text("\n".join(lines) + "\n")
    _refused(planner.get_system, str(path), where="laughs.yaml", field="aliases")


def test_non_finite_yaml_number_is_refused_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "nan.yaml"
    path.write_text(yaml.safe_dump(_system()).replace("bf16: 989.5 TFLOPS", "bf16: .nan"))
    _refused(planner.get_system, str(path), where="nan.yaml", field="accelerator.peak_flops.bf16")


def test_file_readers_refuse_overflowing_numbers() -> None:
    from planner.files import FileInputError, parse_json, parse_yaml

    _refused(parse_json, '{"peak": 1e400}', "plan.json", exc=FileInputError, where="plan.json", field="1e400")
    _refused(parse_json, '{"n": ' + "9" * 5000 + "}", "plan.json", exc=FileInputError, field="digits")
    _refused(parse_yaml, "n: " + "9" * 5000 + "\n", "gpu.yaml", exc=FileInputError, where="gpu.yaml")
    _refused(parse_yaml, "a:\n  b: [1, .inf]\n", "gpu.yaml", exc=FileInputError, field="a.b[1]: inf")
    assert parse_json('{"x": Infinity}', "c.json", allow_non_finite=True) == {"x": math.inf}


def test_real_config_with_infinity_in_an_unread_field_still_loads(tmp_path: Path) -> None:
    """Hugging Face writes Infinity (Nemotron-H's time_step_limit): only the fields the planner reads are checked."""
    path = tmp_path / "inf.json"
    path.write_text(json.dumps({**_config("qwen3-8b"), "time_step_limit": [0.0, math.inf]}))
    assert planner.get_model(str(path)).num_layers == 36


# ---- 2. config.json sanity -----------------------------------------------------------------------------------

CONFIG_CASES = [
    # (case, base config, changes, field named in the message)
    ("heads-0", "qwen3-8b", {"num_attention_heads": 0}, "num_attention_heads"),
    ("heads-negative", "llama-3.1-8b", {"num_attention_heads": -32}, "num_attention_heads"),
    ("kv-heads-0", "qwen3-8b", {"num_key_value_heads": 0}, "num_key_value_heads"),
    ("kv-heads-not-dividing", "llama-3.1-8b", {"num_key_value_heads": 3}, "num_key_value_heads"),
    ("hidden-0", "llama-3.1-8b", {"hidden_size": 0}, "hidden_size"),
    ("hidden-4097-32-heads", "llama-3.1-8b", {"hidden_size": 4097}, "hidden_size"),
    ("gpt2-hidden-not-dividing", "gpt2", {"n_embd": 770}, "n_embd"),
    ("head-dim-0", "qwen3-8b", {"head_dim": 0}, "head_dim"),
    ("intermediate-0", "llama-3.1-8b", {"intermediate_size": 0}, "intermediate_size"),
    ("moe-intermediate-0", "qwen3-30b-a3b", {"moe_intermediate_size": 0}, "moe_intermediate_size"),
    ("max-positions-0", "llama-3.1-8b", {"max_position_embeddings": 0}, "max_position_embeddings"),
    ("max-positions-huge", "llama-3.1-8b", {"max_position_embeddings": 10**12}, "max_position_embeddings"),
    ("vocab-0", "llama-3.1-8b", {"vocab_size": 0}, "vocab_size"),
    ("vocab-huge", "llama-3.1-8b", {"vocab_size": 10**9}, "vocab_size"),
    ("layers-0", "llama-3.1-8b", {"num_hidden_layers": 0}, "num_hidden_layers"),
    ("layers-1e9", "llama-3.1-8b", {"num_hidden_layers": 1_000_000_000}, "num_hidden_layers"),
    ("sliding-window-0", "qwen3-8b", {"sliding_window": 0}, "sliding_window"),
    ("sliding-window-minus-1", "mistral-7b-v0.1", {"sliding_window": -1}, "sliding_window"),
    ("gpt-oss-window-missing", "gpt-oss-20b", {"sliding_window": None}, "sliding_window"),
    ("mlp-only-layers-out-of-range", "qwen3-30b-a3b", {"mlp_only_layers": [999, -1]}, "mlp_only_layers[0]"),
    ("mlp-only-layers-negative", "qwen3-30b-a3b", {"mlp_only_layers": [-1]}, "mlp_only_layers[0]"),
    ("mlp-only-layers-string", "qwen3-30b-a3b", {"mlp_only_layers": "0,1"}, "mlp_only_layers"),
    ("layer-types-too-short", "gpt-oss-20b", {"layer_types": ["full_attention"] * 3}, "layer_types"),
    ("layer-types-unknown", "gpt-oss-20b", {"layer_types": ["banana"] * 24}, "layer_types[0]"),
    ("experts-0", "qwen3-30b-a3b", {"num_experts": 0}, "num_experts"),
    ("deepseek-experts-0", "deepseek-v3", {"n_routed_experts": 0}, "n_routed_experts"),
    ("top-k-0", "mixtral-8x7b", {"num_experts_per_tok": 0}, "num_experts_per_tok"),
    ("top-k-above-experts", "mixtral-8x7b", {"num_experts_per_tok": 9}, "num_experts_per_tok"),
    ("shared-experts-negative", "deepseek-v3", {"n_shared_experts": -1}, "n_shared_experts"),
    ("no-moe-layer-left", "deepseek-v3", {"first_k_dense_replace": 61}, "first_k_dense_replace"),
    ("sparse-step-0", "qwen3-30b-a3b", {"decoder_sparse_step": 0}, "decoder_sparse_step"),
    ("bool-as-int", "llama-3.1-8b", {"num_hidden_layers": True}, "num_hidden_layers"),
    ("string-as-int", "llama-3.1-8b", {"hidden_size": "4096"}, "hidden_size"),
    ("fraction-as-int", "llama-3.1-8b", {"num_attention_heads": 32.5}, "num_attention_heads"),
    ("float-inf", "llama-3.1-8b", {"hidden_size": 1e400}, "hidden_size"),
    ("bool-as-string", "llama-3.1-8b", {"tie_word_embeddings": "false"}, "tie_word_embeddings"),
    ("dropout-above-1", "llama-3.1-8b", {"attention_dropout": 3.0}, "attention_dropout"),
    ("mla-rank-0", "deepseek-v3", {"kv_lora_rank": 0}, "kv_lora_rank"),
    ("conv-kernel-null-in-gpt2", "gpt2", {"n_head": None}, "n_head"),
]


@pytest.mark.parametrize("base, changes, field", [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_config_field_outside_its_domain_is_one_line_naming_file_and_field(tmp_path: Path, base: str,
                                                                          changes: dict[str, Any], field: str) -> None:
    path = _write_model(tmp_path, "bad-config.json", base, **changes)
    msg = _refused(planner.get_model, str(path), where="bad-config.json", field=field)
    assert msg.startswith(f"{path}: {field}"), msg  # `<file>: <field>: ...`


def test_from_hf_config_raises_a_planner_error_itself() -> None:
    """The Python API refuses too, as a PlannerError subclass naming the field (no file to name)."""
    msg = _refused(from_hf_config, {**_config("qwen3-8b"), "num_attention_heads": 0}, exc=ModelConfigError)
    assert msg == "num_attention_heads: must be at least 1, got 0"
    _refused(from_hf_config, ["not", "a", "dict"], exc=ModelConfigError, field="JSON object")


def test_a_billion_layers_is_refused_before_anything_is_allocated() -> None:
    cfg = {**_config("qwen3-30b-a3b"), "num_hidden_layers": 1_000_000_000}
    tracemalloc.start()
    try:
        with pytest.raises(ModelConfigError, match="num_hidden_layers: must be at most 4,096"):
            from_hf_config(cfg)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # a billion-entry tuple would be 8 GB


def test_model_spec_itself_bounds_its_fields() -> None:
    m = planner.get_model("llama-3.1-8b")
    fields = m.model_dump(exclude={"layer_attention"})
    for change in ({"num_layers": 10**9}, {"num_heads": True}, {"vocab_size": "128256"}, {"sliding_window": 0}):
        with pytest.raises(ValueError):
            ModelSpec(**{**fields, **change})


def test_documented_offs_and_defaults_still_load(tmp_path: Path) -> None:
    """null is Hugging Face's "no window" / "use the default"; a window only applies when switched on."""
    qwen = planner.get_model(str(_write_model(tmp_path, "a.json", "qwen3-8b", sliding_window=None)))
    assert set(qwen.layer_attention) == {"full"}
    on = planner.get_model(str(_write_model(tmp_path, "b.json", "qwen3-8b", sliding_window=4096,
                                            use_sliding_window=True)))
    assert set(on.layer_attention) == {"sliding"} and on.sliding_window == 4096
    # sliding layers keep at most the window: 36 layers x 2 (K, V) x 8 KV heads x 128 dims x 2 B x 4096 tokens
    assert on.kv_cache_bytes(100_000) == 36 * 2 * 8 * 128 * 2 * 4096
    kv = planner.get_model(str(_write_model(tmp_path, "c.json", "llama-3.1-8b", num_key_value_heads=None)))
    assert kv.num_kv_heads == kv.num_heads == 32  # null: multi-head attention
    whole = planner.get_model(str(_write_model(tmp_path, "d.json", "llama-3.1-8b", hidden_size=4096.0)))
    assert whole.hidden_size == 4096 and isinstance(whole.hidden_size, int)


# ---- 3. hardware YAML sanity -----------------------------------------------------------------------------------

HARDWARE_CASES = [
    # (case, section, field, value, path named in the message)
    ("peak-nan-string", "accelerator", "peak_flops", {"bf16": "nan TFLOPS"}, "accelerator.peak_flops.bf16"),
    ("peak-inf-overflow", "accelerator", "peak_flops", {"bf16": "1e400 TFLOPS"}, "accelerator.peak_flops.bf16"),
    ("peak-zero", "accelerator", "peak_flops", {"bf16": 0}, "accelerator.peak_flops.bf16"),
    ("memory-1e-30-GB", "accelerator", "memory_bytes", "1e-30 GB", "accelerator.memory_bytes"),
    ("memory-inf", "accelerator", "memory_bytes", "1e400 GB", "accelerator.memory_bytes"),
    ("hbm-bandwidth-0", "accelerator", "hbm_bandwidth_bytes_per_s", "0 TB/s", "accelerator.hbm_bandwidth_bytes_per_s"),
    ("nic-negative", "node", "nic_bandwidth_bytes_per_s", "-400 Gb/s", "node.nic_bandwidth_bytes_per_s"),
    ("latency-negative", "node", "network_latency_s", "-5 us", "node.network_latency_s"),
    ("latency-huge", "node", "scale_up_latency_s", "1e300 s", "node.scale_up_latency_s"),
    ("price-negative", "accelerator", "price_per_hour_usd", -1, "accelerator.price_per_hour_usd"),
    ("price-nan", "accelerator", "price_per_hour_usd", "nan", "accelerator.price_per_hour_usd"),
    ("price-inf", "accelerator", "price_per_hour_usd", 1e400, "accelerator.price_per_hour_usd"),
    ("tdp-zero", "accelerator", "tdp_w", "0 W", "accelerator.tdp_w"),
    ("host-memory-tiny", "node", "host_memory_bytes", "1 KiB", "node.host_memory_bytes"),
    ("per-node-0", "node", "accelerators_per_node", 0, "node.accelerators_per_node"),
    ("per-node-fraction", "node", "accelerators_per_node", 8.5, "node.accelerators_per_node"),
    ("per-node-bool", "node", "accelerators_per_node", True, "node.accelerators_per_node"),
    ("per-node-huge", "node", "accelerators_per_node", 10**7, "node.accelerators_per_node"),
    ("domain-0", "node", "scale_up_domain", 0, "node.scale_up_domain"),
    ("efficiency-above-1", "node", "network_efficiency", 1.5, "node.network_efficiency"),
]


@pytest.mark.parametrize("section, field, value, named", [c[1:] for c in HARDWARE_CASES],
                         ids=[c[0] for c in HARDWARE_CASES])
def test_hardware_field_outside_its_domain_is_one_line_naming_file_and_field(tmp_path: Path, section: str, field: str,
                                                                            value: Any, named: str) -> None:
    spec = _system()
    spec[section][field] = value
    path = tmp_path / "bad-gpu.yaml"
    path.write_text(yaml.safe_dump(spec).replace("1.0e+400", "1e400"))
    msg = _refused(planner.get_system, str(path), where="bad-gpu.yaml", field=named)
    assert msg.startswith(f"{path}: {named}"), msg


def test_unit_strings_parse_strictly() -> None:
    assert parse_bytes("80 GiB") == 80 * 2**30  # still works
    for fn, text in ((parse_bytes, "1e400 GB"), (parse_flops, "nan TFLOPS"), (parse_flops, "inf TFLOPS"),
                     (parse_bandwidth, "1e999 TB/s"), (parse_seconds, "1e400 s"), (parse_bytes, "80 GB extra"),
                     (parse_bytes, "8" * 100 + " GB"), (parse_flops, math.nan), (parse_seconds, math.inf)):
        _refused(fn, text, exc=UnitError)


def test_every_builtin_system_sits_inside_the_documented_ranges() -> None:
    for name in planner.hardware_names():
        s = planner.get_system(name)
        a, n = s.accelerator, s.node
        assert 1e9 <= a.memory_bytes <= 1e14 and 1e9 <= a.hbm_bandwidth_bytes_per_s <= 1e15, name
        assert all(1e9 <= f <= 1e18 for f in a.peak_flops.values()), name
        assert 1 <= n.accelerators_per_node <= 72 and 0 <= n.network_latency_s <= 1, name


# ---- 4. names: one printable line --------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["\n", "\r", "\t", "\u2028", "\u2029", "\x00", "\u202e", "\x1b"],
                         ids=["LF", "CR", "TAB", "LS", "PS", "NUL", "RLO", "ESC"])
def test_control_characters_in_names_are_refused(tmp_path: Path, bad: str) -> None:
    path = _write_model(tmp_path, "named.json", "qwen3-8b", _name_or_path=f"Qwen/Qwen3-8B{bad}touch /tmp/x{bad}#")
    _refused(planner.get_model, str(path), where="named.json", field="_name_or_path: contains a control character")
    spec = _system()
    spec["aliases"] = ["ok", f"h100{bad}x"]
    hw = tmp_path / "alias.yaml"
    hw.write_text(yaml.safe_dump(spec))
    _refused(planner.get_system, str(hw), where="alias.yaml", field="aliases")
    spec = _system()
    spec["accelerator"]["name"] = f"H100{bad}rm -rf /"
    hw.write_text(yaml.safe_dump(spec))
    _refused(planner.get_system, str(hw), where="alias.yaml", field="accelerator.name")


def test_a_path_with_a_newline_is_refused_before_it_becomes_a_model_name(tmp_path: Path) -> None:
    path = _write_model(tmp_path, "evil\nname.json", "qwen3-8b")
    _refused(planner.get_model, str(path), field="contains a control character (U+000A)")
    _refused(planner.load_model_file, path, field="contains a control character (U+000A)")
    _refused(from_hf_config, _config("qwen3-8b"), "evil\nname", exc=ModelConfigError, field="name: contains")


def test_hugging_face_id_characters_are_kept(tmp_path: Path) -> None:
    path = _write_model(tmp_path, "ok.json", "qwen3-8b", _name_or_path="Org-1/Model_v2.5-Instruct")
    assert planner.get_model(str(path)).hf_id == "Org-1/Model_v2.5-Instruct"


# ---- 5. bad arguments to get_model / get_system ------------------------------------------------------------------

@pytest.mark.parametrize("arg, named", [(None, "NoneType"), (8, "int"), (["h100"], "list"), ("", "empty"),
                                        ("   ", "empty"), ("x" * 10_000, "10,000 characters"),
                                        ("h100\nx", "control character")])
@pytest.mark.parametrize("fn", [planner.get_model, planner.get_system], ids=["get_model", "get_system"])
def test_bad_name_arguments_are_spec_errors(fn: Any, arg: Any, named: str) -> None:
    _refused(fn, arg, field=named)


def test_missing_paths_and_overlong_components_are_spec_errors(tmp_path: Path) -> None:
    _refused(planner.get_model, str(tmp_path / "missing" / "config.json"), where="config.json", field="no such file")
    _refused(planner.get_system, str(tmp_path / "missing.yaml"), where="missing.yaml", field="no such file")
    _refused(planner.get_system, str(tmp_path / "no-such-folder" / "gpu"), where="no-such-folder", field="no such file")
    _refused(planner.get_model, "a" * 300 + ".json", field="File name too long")  # a component too long for the OS
    _refused(planner.get_model, "org/unknown-model", str(tmp_path / ("d" * 300)), field="unknown model")


# ---- 6. the command line -------------------------------------------------------------------------------------

def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("PLANNER_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "planner", *args], check=False, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def _one_line_exit_2(r: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for e in expected:
        assert e in lines[0], (e, lines[0])


def test_cli_specs_validate_refuses_bad_spec_files(tmp_path: Path) -> None:
    _write_model(tmp_path, "heads0.json", "qwen3-8b", num_attention_heads=0)
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    spec = _system()
    spec["accelerator"]["memory_bytes"] = "1e-30 GB"
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(spec))
    (tmp_path / "deep.json").write_text("[" * 100_000)
    for fname, expected in (("heads0.json", "heads0.json: num_attention_heads: must be at least 1, got 0"),
                            ("zero.yaml", "zero.yaml: not a regular file"),
                            ("tiny.yaml", "tiny.yaml: accelerator.memory_bytes: must be between 1 GB"),
                            ("deep.json", "deep.json: nested deeper")):
        _one_line_exit_2(_cli("specs", "validate", fname, cwd=tmp_path), expected)


def test_cli_estimate_train_refuses_a_bad_model_file(tmp_path: Path) -> None:
    _write_model(tmp_path, "window.json", "mistral-7b-v0.1", sliding_window=-1)
    r = _cli("estimate", "train", "--model", "window.json", "--gpu", "h100", "--gpus", "8", "--tp", "8", "--pp", "1",
             "--mbs", "1", "--gbs", "8", "--seq", "4096", cwd=tmp_path)
    _one_line_exit_2(r, "window.json: sliding_window: must be at least 1, got -1")


# ---- 7. property: one mutated field of a real config loads sanely or is refused -----------------------------------

PROPERTY_MODELS = ["qwen3-8b", "qwen3-30b-a3b", "deepseek-v3", "gpt-oss-20b", "gpt2", "mixtral-8x7b",
                   "llama-4-scout-17b-16e-instruct"]
_NUMERIC = {m: sorted(k for k, v in _config(m).items() if isinstance(v, (int, float)) and not isinstance(v, bool))
            for m in PROPERTY_MODELS}

_VALUES = st.one_of(
    st.integers(-3, 70_000),
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(),
    st.text(max_size=12),
)


@st.composite
def _mutations(draw: Any) -> tuple[str, str, Any]:
    model = draw(st.sampled_from(PROPERTY_MODELS))
    return model, draw(st.sampled_from(_NUMERIC[model])), draw(_VALUES)


@settings(max_examples=100, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(_mutations())
def test_one_mutated_numeric_field_loads_sanely_or_is_refused(mutation: tuple[str, str, Any]) -> None:
    model, key, value = mutation
    cfg = copy.deepcopy(_config(model))
    cfg[key] = value
    try:
        m = from_hf_config(cfg, name=model)
    except PlannerError as err:
        assert "\n" not in str(err)
        return
    for x in (m.total_params, m.active_params, m.kv_cache_bytes_per_token(2), m.kv_cache_bytes(4096)):
        assert math.isfinite(float(x)) and x > 0, (key, value, x)
    assert m.active_params <= m.total_params
