"""planner.cost.power against the published anchors its docstring names, and its invariants.

Anchors: ML.ENERGY Benchmark v3.0 (H100 SXM, 700 W TDP): 300 W decoding at batch 1, 600 W at batch 128; an
H200 SXM idles at 80.3 W (of 700 W); the Llama 3 model card: training power counted as every GPU at its TDP
(700 W per H100-80GB; Llama 3.1 70B: 7.0M GPU-hours, Llama 3.1 8B / 70B / 405B together 39.3M GPU-hours).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import planner
from planner.cost.power import (BUSY, DECODE_LOW, IDLE, active_power_fraction, capped_clock, decode_power_fraction,
                                energy_mwh, serving_power_w, training_power_w, wh_per_million_tokens)

H100 = planner.get_system("h100").accelerator
H200 = planner.get_system("h200").accelerator
MI300X = planner.get_system("mi300x").accelerator


def test_the_specs_give_the_tdps_the_anchors_assume() -> None:
    assert H100.tdp_w == 700.0 and H200.tdp_w == 700.0 and MI300X.tdp_w == 750.0


def test_ml_energy_decode_anchors_on_h100() -> None:
    """300 W at batch 1, 600 W at batch 128 (and beyond: saturated), on a 700 W H100 decoding only."""
    assert serving_power_w(H100, 1, 0.0) == pytest.approx(300.0)
    assert serving_power_w(H100, 128, 0.0) == pytest.approx(600.0)
    assert serving_power_w(H100, 4096, 0.0) == pytest.approx(600.0)
    # log2 in between: batch 8 is 3/7 of the way from 300 W to 600 W
    assert serving_power_w(H100, 8, 0.0) == pytest.approx(300.0 + 300.0 * 3 / 7)
    # a batch below one request is batch 1
    assert decode_power_fraction(0.25) == pytest.approx(DECODE_LOW)


def test_idle_anchor_and_load() -> None:
    """An idle GPU draws 80.3 W of 700 (the H200 measurement); a replica at load u draws idle + u (active - idle)."""
    assert serving_power_w(H200, 64, 0.3, load=0.0) == pytest.approx(80.3)
    active = serving_power_w(H200, 64, 0.3, load=1.0)
    assert active == pytest.approx(700.0 * active_power_fraction(64, 0.3))
    assert serving_power_w(H200, 64, 0.3, load=0.25) == pytest.approx(80.3 + 0.25 * (active - 80.3))
    # loads outside 0..1 are clamped
    assert serving_power_w(H200, 64, 0.3, load=7.0) == pytest.approx(active)
    assert serving_power_w(H200, 64, 0.3, load=-1.0) == pytest.approx(80.3)


def test_prefill_runs_busy() -> None:
    assert active_power_fraction(1, 1.0) == pytest.approx(BUSY)
    assert serving_power_w(H100, 1, 1.0) == pytest.approx(600.0)
    # a prefill share mixes busy and decode power linearly
    assert active_power_fraction(1, 0.5) == pytest.approx(0.5 * BUSY + 0.5 * DECODE_LOW)
    # the fractions scale with the TDP: MI300X (750 W) at the same point draws 750 / 700 as much
    assert serving_power_w(MI300X, 16, 0.2) == pytest.approx(serving_power_w(H100, 16, 0.2) * 750 / 700)


@settings(max_examples=200, deadline=None)
@given(b1=st.floats(0.0, 1e6), b2=st.floats(0.0, 1e6), s=st.floats(0.0, 1.0), u1=st.floats(0.0, 1.0),
       u2=st.floats(0.0, 1.0))
def test_power_grows_with_batch_and_load_and_stays_between_idle_and_busy(b1: float, b2: float, s: float, u1: float,
                                                                          u2: float) -> None:
    lo, hi = sorted((b1, b2))
    ulo, uhi = sorted((u1, u2))
    assert serving_power_w(H100, lo, s, ulo) <= serving_power_w(H100, hi, s, ulo) + 1e-9
    assert serving_power_w(H100, lo, s, ulo) <= serving_power_w(H100, lo, s, uhi) + 1e-9
    w = serving_power_w(H100, hi, s, uhi)
    assert 700.0 * IDLE - 1e-9 <= w <= 700.0 * BUSY + 1e-9


def test_power_cap() -> None:
    """Capped at c of TDP a GPU draws at most c x TDP; the clock follows the cube law below the cap."""
    assert serving_power_w(H100, 128, 0.5, cap_fraction=0.5) == pytest.approx(350.0)
    assert serving_power_w(H100, 1, 0.0, cap_fraction=0.5) == pytest.approx(300.0)  # under the cap: unchanged
    assert capped_clock(0.4, 0.5) == 1.0
    f = capped_clock(BUSY, 0.5)
    assert f == pytest.approx(((0.5 - IDLE) / (BUSY - IDLE)) ** (1 / 3))
    assert 0.0 < f < 1.0
    # POLCA-style 30 % cut of the busy draw: f^3 = the remaining dynamic share
    c = IDLE + 0.7 * (BUSY - IDLE)
    assert capped_clock(BUSY, c) ** 3 == pytest.approx(0.7)
    with pytest.raises(ValueError, match="at or below the idle draw"):
        capped_clock(BUSY, IDLE)


def test_llama3_model_card_training_energy() -> None:
    """Every GPU at its TDP: 7.0M H100-hours at 700 W = 4,900 MWh (Llama 3.1 70B); 39.3M = 27,510 MWh (all three)."""
    assert training_power_w(H100, 1) == 700.0
    assert training_power_w(H100, 16384) == pytest.approx(11.4688e6)
    assert energy_mwh(training_power_w(H100, 1), 7.0e6 * 3600) == pytest.approx(4900.0)
    assert energy_mwh(training_power_w(H100, 1), 39.3e6 * 3600) == pytest.approx(27510.0)
    # the same GPU-hours spread over more GPUs for less time: the same energy
    assert energy_mwh(training_power_w(H100, 16384), 7.0e6 / 16384 * 3600) == pytest.approx(4900.0)


def test_energy_per_million_tokens() -> None:
    # 1 kW producing 1,000 tokens/s: a million tokens in 1,000 s = 1,000 / 3.6 Wh
    assert wh_per_million_tokens(1000.0, 1000.0) == pytest.approx(1e6 / 3600)
    assert wh_per_million_tokens(600.0, 1e6 / 3600) == pytest.approx(600.0)  # one hour at 600 W
    assert wh_per_million_tokens(600.0, 0.0) is None
    assert math.isclose(energy_mwh(1e6, 3600.0), 1.0)


# ---------------------------------------------------------------------------
# every serving answer states power and energy per million output tokens
# ---------------------------------------------------------------------------

def _cli_json(*argv: str) -> dict:
    import json

    from cli_in_process import cli

    code, out, err = cli(*argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_estimate_serve_states_worker_power() -> None:
    d = _cli_json("estimate", "serve", "-m", "qwen3-32b", "-g", "h200", "--tp", "4", "--isl", "4000", "--osl", "500",
                  "-c", "32", "--precision", "fp8")
    share = d["breakdown"]["prefill_share"]
    assert 0.0 < share < 1.0
    watts = 4 * serving_power_w(H200, 32 / 1, share)
    assert d["power_kw"] == pytest.approx(watts / 1e3)
    tokens_per_s = d["tokens_per_s_per_gpu"] * 4
    assert d["energy_wh_per_million_tokens"] == pytest.approx(watts / tokens_per_s * 1e6 / 3600)
    # open loop (--rate): the mean batch in flight and the prompt queue's utilisation
    r = _cli_json("estimate", "serve", "-m", "qwen3-32b", "-g", "h200", "--tp", "4", "--isl", "4000", "--osl", "500",
                  "--rate", "2", "--precision", "fp8")
    assert r["power_kw"] == pytest.approx(4 * serving_power_w(H200, r["concurrency"], r["breakdown"]["prefill_share"])
                                          / 1e3)


def test_serve_states_deployment_power() -> None:
    argv = ("serve", "-m", "qwen3-8b", "-g", "h100", "-n", "8", "--ttft", "1s", "--tpot", "50ms", "--isl", "1024",
            "--osl", "128")
    full = _cli_json(*argv)
    a = full["aggregated"]
    e = a["estimate"]
    per_gpu = serving_power_w(H100, e["concurrency"] / e["plan"]["dp"], e["breakdown"]["prefill_share"])
    assert a["power_kw"] == pytest.approx(a["gpus"] * per_gpu / 1e3)
    assert a["energy_wh_per_million_tokens"] == pytest.approx(
        a["gpus"] * per_gpu / (a["gpus"] * e["tokens_per_s_per_gpu"]) * 1e6 / 3600)
    assert {"power_kw", "energy_wh_per_million_tokens"} <= set(full["disaggregated"])
    # sized for a rate: the replicas carry rate / capacity of their load, between idle and full power
    sized = _cli_json(*argv, "--rate", "20")
    a = sized["aggregated"]
    e = a["estimate"]
    load = 20 * 128 / (a["gpus"] * e["tokens_per_s_per_gpu"])
    assert 0 < load < 1
    per_gpu = serving_power_w(H100, e["concurrency"] / e["plan"]["dp"], e["breakdown"]["prefill_share"], load)
    assert a["power_kw"] == pytest.approx(a["gpus"] * per_gpu / 1e3)
    assert a["energy_wh_per_million_tokens"] == pytest.approx(a["gpus"] * per_gpu / (20 * 128) * 1e6 / 3600)
    assert a["gpus"] * 700 * IDLE <= a["power_kw"] * 1e3 <= a["gpus"] * 700 * BUSY
    d = sized["disaggregated"]
    assert d["gpus"] * 700 * IDLE <= d["power_kw"] * 1e3 <= d["gpus"] * 700 * BUSY
