"""Fused (FlashAttention-style) attention kernel time.

There is no attention-kernel data in ``shared/reference/operators`` (it holds
the non-attention operators only), so these efficiencies are taken from the
kernels' published benchmarks, not fitted:

- Ampere: FlashAttention-2 on A100 (Dao, "FlashAttention-2", 2023, Fig. 4-6):
  causal, head dim 128, seq 2k-8k: forward ~190-200 TFLOP/s (~62% of 312),
  backward ~160-170 TFLOP/s (~52%).
- Hopper: FlashAttention-3 / cuDNN fused attention on H100 (Shah et al.,
  "FlashAttention-3", 2024, Fig. 5-7): causal bf16, head dim 128, seq 2k-8k:
  forward ~550-600 TFLOP/s (~58%), backward ~430-470 (~45%).
- Blackwell and others: Hopper's fractions (no public measurement used here).

Short sequences under-fill the GPU: the efficiency falls as
``eff * w / (w + w0)`` with ``w`` the work in FLOPs and ``w0`` a half-saturation
work of 2 GFLOP (a few thousand tiles; assumed).
"""

from __future__ import annotations

from ..specs.hardware import Accelerator

_EFFICIENCY = {
    # family: (forward, backward) fraction of dense 16-bit peak
    "ampere": (0.62, 0.52),
    "ada": (0.55, 0.45),
    "hopper": (0.58, 0.45),
    "blackwell": (0.58, 0.45),
}
_DEFAULT = (0.50, 0.40)
_HALF_SATURATION_FLOPS = 2e9
_LAUNCH_S = 10e-6


def attention_efficiency(acc: Accelerator, backward: bool = False) -> float:
    fwd, bwd = _EFFICIENCY.get(acc.family, _DEFAULT)
    return bwd if backward else fwd


def attention_time_s(flops: float, acc: Accelerator, dtype: str = "bf16", backward: bool = False) -> float:
    """Time of a fused attention kernel doing ``flops`` FLOPs (16-bit attention;
    fp8 training keeps attention in bf16, as Transformer Engine does by default)."""
    if flops <= 0:
        return 0.0
    peak = acc.flops("bf16" if dtype in ("fp8", "fp4", "int8", "int4") else dtype)
    eff = attention_efficiency(acc, backward) * flops / (flops + _HALF_SATURATION_FLOPS)
    return flops / (peak * eff) + _LAUNCH_S


def attention_constants(acc: Accelerator) -> dict[str, float]:
    fwd, bwd = _EFFICIENCY.get(acc.family, _DEFAULT)
    return {"attention_fwd_efficiency": fwd, "attention_bwd_efficiency": bwd}
