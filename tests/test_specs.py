"""Spec loading: the built-in catalog, units, and closed forms of the model arithmetic.

Expected numbers are closed forms or published facts, not the code's own output:
Megatron-LM GPT sizes are Narayanan et al. (SC'21) Table 1; Llama-3.1 parameter
counts are the published safetensors totals; KV-cache bytes per token are
2 * kv_heads * head_dim * layers * 2 B (GQA) and (kv_lora_rank + rope_dim) *
layers * 2 B (MLA).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import planner
from planner.specs.hardware import Accelerator
from planner.specs.units import parse_bandwidth, parse_bytes, parse_flops

REFERENCE_CONFIGS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "model_configs"


# ---- the built-in catalog ------------------------------------------------------

def test_catalog_is_not_empty() -> None:
    assert len(planner.hardware_names()) >= 10
    assert len(planner.model_names()) >= 10


@pytest.mark.parametrize("name", planner.hardware_names())
def test_every_builtin_system_loads(name: str) -> None:
    s = planner.get_system(name)
    assert s.name == name
    a = s.accelerator
    assert a.memory_bytes > 1e9 and a.hbm_bandwidth_bytes_per_s > 1e11
    assert a.flops("bf16") > 1e13
    assert s.sources, "every hardware spec cites its sources"
    for alias in s.aliases:
        assert planner.get_system(alias).name == name


@pytest.mark.parametrize("name", planner.model_names())
def test_every_builtin_model_loads(name: str) -> None:
    m = planner.get_model(name)
    assert m.name == name
    assert 0 < m.active_params <= m.total_params
    assert m.kv_cache_bytes_per_token(2) > 0


@pytest.mark.parametrize(
    "alias, family",
    [("h100_sxm", "h100"), ("h200_sxm", "h200"), ("b200_sxm", "b200"), ("gb200", "gb200"), ("b300_sxm", "b300"),
     ("gb300", "gb300")],
)
def test_reference_system_aliases_resolve(alias: str, family: str) -> None:
    """The system names used in shared/reference/serving resolve to the right part."""
    s = planner.get_system(alias)
    assert s.name.startswith(family)
    if family.startswith("gb"):
        assert s.node.scale_up_domain == 72  # NVL72 rack
    else:
        assert s.node.scale_up_domain == 8  # HGX node


def test_model_by_hf_id() -> None:
    assert planner.get_model("meta-llama/Llama-3.1-70B").name == "llama-3.1-70b"
    assert planner.get_model("meta-llama/Llama-3.1-70B").hf_id == "meta-llama/Llama-3.1-70B"


def test_unknown_names_suggest_the_closest() -> None:
    with pytest.raises(planner.SpecError, match="h100"):
        planner.get_system("h1000")
    with pytest.raises(planner.SpecError, match="llama-3.1-70b"):
        planner.get_model("llama-3.1-7b")


# ---- units -----------------------------------------------------------------------

def test_unit_parsing() -> None:
    assert parse_bytes("80 GB") == 80e9
    assert parse_bytes("80 GiB") == 80 * 2**30
    assert parse_bytes("81559 MiB") == 81559 * 2**20
    assert parse_bandwidth("400 Gb/s") == 5e10
    assert parse_bandwidth("3.35 TB/s") == pytest.approx(3.35e12)
    assert parse_flops("989.5 TFLOPS") == pytest.approx(9.895e14)


def test_units_through_a_spec() -> None:
    a = Accelerator(name="x", vendor="nvidia", family="hopper", memory_bytes="80 GiB",
                    hbm_bandwidth_bytes_per_s="3.35 TB/s", peak_flops={"bf16": "989.5 TFLOPS"}, tdp_w="700 W")
    assert a.memory_bytes == 80 * 2**30
    assert a.hbm_bandwidth_bytes_per_s == pytest.approx(3.35e12)
    assert a.flops("bf16") == pytest.approx(989.5e12)
    assert a.flops("fp8") == a.flops("bf16")  # no FP8 tensor cores listed: falls back
    with pytest.raises(ValueError, match="negative"):
        Accelerator(name="x", vendor="nvidia", family="hopper", memory_bytes="-80 GB",
                    hbm_bandwidth_bytes_per_s="3.35 TB/s", peak_flops={"bf16": "989.5 TFLOPS"}, tdp_w="700 W")


# ---- closed forms ----------------------------------------------------------------

@pytest.mark.parametrize(
    "name, billions",
    [("gpt-1.7b", 1.7), ("gpt-3.6b", 3.6), ("gpt-7.5b", 7.5), ("gpt-18b", 18.4), ("gpt-39b", 39.1), ("gpt-76b", 76.1),
     ("gpt-145b", 145.6), ("gpt-310b", 310.1), ("gpt-530b", 529.6), ("gpt-1t", 1008.0)],
)
def test_megatron_table1_parameter_counts(name: str, billions: float) -> None:
    """Narayanan et al. 2021, Table 1 'number of parameters (billion)'."""
    assert abs(planner.get_model(name).total_params / 1e9 - billions) < 0.1


@pytest.mark.parametrize(
    "name, params",
    [("llama-3.1-8b", 8_030_261_248), ("llama-3.1-70b", 70_553_706_496), ("llama-3.1-405b", 405_853_388_800)],
)
def test_llama31_parameter_counts(name: str, params: int) -> None:
    """Published safetensors totals of the Hugging Face checkpoints."""
    assert planner.get_model(name).total_params == pytest.approx(params, rel=1e-4)


def test_deepseek_v3_parameter_counts() -> None:
    """DeepSeek-V3 report: 671B total (main model, MTP excluded), 37B activated per token."""
    m = planner.get_model("deepseek-v3")
    assert m.total_params / 1e9 == pytest.approx(671, abs=1)
    assert m.active_params / 1e9 == pytest.approx(37, abs=1)


def test_kv_cache_bytes_per_token() -> None:
    # GQA: 2 (K, V) * 8 KV heads * 128 head dim * 80 layers * 2 bytes
    assert planner.get_model("llama-3.1-70b").kv_cache_bytes_per_token(2) == 2 * 8 * 128 * 80 * 2 == 327_680
    # MLA: (512 latent + 64 rope) * 61 layers * 2 bytes
    assert planner.get_model("deepseek-v3").kv_cache_bytes_per_token(2) == (512 + 64) * 61 * 2 == 70_272


# ---- every reference config.json -------------------------------------------------

def _reference_configs() -> list:
    if not REFERENCE_CONFIGS.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"reference data not found at {REFERENCE_CONFIGS}"))]
    # *_hf_quant.json files are quantization settings, not model configs.
    files = sorted(f for f in REFERENCE_CONFIGS.glob("*.json") if not f.name.endswith("_hf_quant.json"))
    return [pytest.param(f, id=f.stem) for f in files]


@pytest.mark.parametrize("path", _reference_configs())
def test_reference_config_loads_or_names_its_architecture(path: Path) -> None:
    """Every config.json either becomes a ModelSpec or fails with a SpecError naming the architecture."""
    raw = json.loads(path.read_text())
    try:
        m = planner.load_model_file(path)
    except planner.SpecError as err:
        msg = str(err)
        assert "\n" not in msg
        text = raw.get("text_config") if isinstance(raw.get("text_config"), dict) else {}
        names = {str(raw.get("model_type")), str(text.get("model_type")), *map(str, raw.get("architectures") or [])}
        names.discard("None")
        assert "unsupported architecture" in msg
        assert any(n in msg for n in names), f"message does not name the architecture ({names}): {msg}"
        return
    assert m.num_layers > 0 and m.total_params > 0
    assert 0 < m.active_params <= m.total_params
    assert m.kv_cache_bytes_per_token(2) >= 0
