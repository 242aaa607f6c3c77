"""Power and energy of GPUs while serving and training, from the spec's TDP.

No power measurements are in ``shared/reference``; the fractions below are published ones.

Serving. A GPU's board power in a serving engine depends on how busy its tensor cores are, which
grows with the decode batch. Anchors: the ML.ENERGY Benchmark v3.0 (Chung et al., "Where Do the
Joules Go?", arXiv:2601.22076, Dec 2025; the anchors as quoted by the vLLM semantic-router
fleet-sim power-model reference) measured an H100 SXM (700 W TDP) at 300 W decoding at batch 1 and
600 W at batch 128: ``DECODE_LOW = 300 / 700`` and ``BUSY = 600 / 700`` of TDP. Between them the
draw is taken to grow with ``log2`` of the batch (an assumption: the leaderboard's power-vs-batch
curves are close to linear in log batch). Prefill is compute-bound and runs at ``BUSY``. An idle
GPU (no request in flight) draws ``IDLE = 80 / 700``: an H200 SXM at 80.3 W idle against 592.8 W
under load (serialalice GPU energy benchmark, 2026). So a replica that carries a fraction ``u`` of
the load it is sized for draws::

    P = TDP * (IDLE + u * (active - IDLE)),   active = s * BUSY + (1 - s) * decode(B)
    decode(B) = DECODE_LOW + (BUSY - DECODE_LOW) * min(1, log2(B) / log2(128))

with ``s`` the share of GPU time spent prefilling and ``B`` the decode batch per GPU.

Power capping (POLCA, Patel et al., ASPLOS 2024): capping a GPU at a fraction ``c`` of TDP lowers
its clock. Dynamic power goes as ``f V^2`` and the voltage with the clock, so as ``f^3`` (the
usual DVFS approximation): when the uncapped draw ``P`` exceeds the cap, the clock falls to
``f = ((c - IDLE) / (P / TDP - IDLE)) ** (1 / 3)`` and compute-bound work (prefill) takes ``1 / f``
as long; memory-bound decode keeps its speed (HBM does not slow with the core clock).

Training: every GPU at its TDP for the run (the convention of the Llama 3 model card's energy
figures: "peak power capacity per GPU device"), an upper bound on the energy to train.
"""

from __future__ import annotations

import math

from ..specs.hardware import Accelerator

#: fractions of TDP (module docstring)
IDLE = 80.3 / 700.0
DECODE_LOW = 300.0 / 700.0
BUSY = 600.0 / 700.0
_LOG_BATCH_SATURATION = math.log2(128)


def decode_power_fraction(batch_per_gpu: float) -> float:
    """Fraction of TDP a GPU draws while decoding a batch of ``batch_per_gpu`` requests."""
    b = max(1.0, float(batch_per_gpu))
    return DECODE_LOW + (BUSY - DECODE_LOW) * min(1.0, math.log2(b) / _LOG_BATCH_SATURATION)


def active_power_fraction(batch_per_gpu: float, prefill_share: float) -> float:
    """Fraction of TDP a fully loaded serving GPU draws: ``prefill_share`` of its time prefilling
    (at :data:`BUSY`), the rest decoding a batch of ``batch_per_gpu``."""
    s = min(1.0, max(0.0, float(prefill_share)))
    return s * BUSY + (1.0 - s) * decode_power_fraction(batch_per_gpu)


def serving_power_w(acc: Accelerator, batch_per_gpu: float, prefill_share: float, load: float = 1.0,
                    cap_fraction: float | None = None) -> float:
    """Watts one GPU draws carrying ``load`` (0..1) of the traffic its replica is sized for, capped at
    ``cap_fraction`` of TDP when given."""
    u = min(1.0, max(0.0, float(load)))
    frac = IDLE + u * (active_power_fraction(batch_per_gpu, prefill_share) - IDLE)
    if cap_fraction is not None:
        frac = min(frac, cap_fraction)
    return acc.tdp_w * frac


def capped_clock(acc_fraction_uncapped: float, cap_fraction: float) -> float:
    """Relative core clock (<= 1) of a GPU capped at ``cap_fraction`` of TDP that would draw
    ``acc_fraction_uncapped`` uncapped (cube law, module docstring)."""
    if cap_fraction <= IDLE:
        raise ValueError(f"a power cap of {cap_fraction:.0%} of TDP is at or below the idle draw ({IDLE:.0%})")
    if acc_fraction_uncapped <= cap_fraction:
        return 1.0
    return ((cap_fraction - IDLE) / (acc_fraction_uncapped - IDLE)) ** (1.0 / 3.0)


def training_power_w(acc: Accelerator, gpus: int) -> float:
    """Watts of ``gpus`` GPUs training (each at its TDP)."""
    return acc.tdp_w * gpus


def energy_mwh(power_w: float, seconds: float) -> float:
    """Megawatt-hours of ``power_w`` for ``seconds``."""
    return power_w * seconds / 3.6e9


def wh_per_million_tokens(power_w: float, tokens_per_s: float) -> float | None:
    """Watt-hours per million tokens at ``power_w`` producing ``tokens_per_s``."""
    if tokens_per_s <= 0:
        return None
    return power_w / tokens_per_s * 1e6 / 3600.0


__all__ = ["BUSY", "DECODE_LOW", "IDLE", "active_power_fraction", "capped_clock", "decode_power_fraction",
           "energy_mwh", "serving_power_w", "training_power_w", "wh_per_million_tokens"]
