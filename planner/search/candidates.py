"""The structural plan space of a training job, with the rules the hardware imposes.

A *shape* fixes every degree of a plan except recomputation and the layer
partition (which :mod:`planner.search.training` chooses per shape):
``tp, cp, pp, vpp, dp, ep, etp, micro-batch, ZeRO stage, dtype``.

Rules (each candidate violating one is skipped, and counted under its name):

- ``tp`` divides the attention heads, and the KV heads divide ``tp`` or the
  reverse (GQA replication); ``tp <= scale-up domain`` (TP all-reduces on every
  layer cannot cross the network at useful speed).
- ``cp``: the sequence splits into ``2 cp`` load-balanced chunks, each at least
  ``MIN_CP_CHUNK`` tokens; ``tp * cp`` stays within the scale-up domain when
  both exceed 1 (Megatron puts tp then cp innermost).
- ``pp`` divides the remaining GPUs, ``pp * vpp <= layers``; ``vpp > 1`` needs
  the micro-batch count to be a multiple of ``pp`` (interleaved 1F1B).
- ``dp = gpus / (tp cp pp)`` and ``micro-batch * dp`` divides the global batch.
- MoE: ``ep`` divides the experts, ``ep * etp`` divides ``tp * cp * dp`` (the
  expert mesh is folded over the attention mesh, Megatron-Core's "parallel
  folding"), ``etp in {1, tp}``, and ``ep * etp`` stays in the scale-up domain
  unless ``ep`` alone exceeds it (then all-to-all crosses nodes, as DeepSeek-V3).
- ``sp`` is on whenever ``tp > 1`` (same communication volume, less memory);
  ZeRO: stage 1 (Megatron's distributed optimizer, no slower than plain DDP)
  and stage 3 (FSDP); stage 0/2 are dominated and not enumerated.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterator

from ..specs.hardware import System
from ..specs.model import ModelSpec

#: smallest per-rank sequence chunk for context parallelism (tokens): below it
#: ring attention's exchange cannot hide behind the attention kernel.
MIN_CP_CHUNK = 1024
MICRO_BATCHES = (1, 2, 4, 8, 16)
VPP_CHOICES = (1, 2, 3, 4, 6, 8)


@dataclass(frozen=True, order=True)
class Shape:
    tp: int
    cp: int
    pp: int
    vpp: int
    dp: int
    ep: int
    etp: int
    micro_batch: int
    zero: int
    dtype: str


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, int(n**0.5) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def _pow2_upto(n: int) -> list[int]:
    out, v = [], 1
    while v <= n:
        out.append(v)
        v *= 2
    return out


def tp_choices(model: ModelSpec, system: System) -> list[int]:
    dom = system.node.scale_up_domain
    out = []
    for t in _pow2_upto(max(1, dom)):
        if model.num_heads % t:
            continue
        if model.mla is None and model.num_kv_heads % t and t % model.num_kv_heads:
            continue
        out.append(t)
    return out


def cp_choices(model: ModelSpec, seq_len: int) -> list[int]:
    out = []
    for c in _pow2_upto(64):
        if c > 1 and (seq_len % (2 * c) or seq_len // (2 * c) < MIN_CP_CHUNK // 2):
            continue
        out.append(c)
    return out


def enumerate_shapes(model: ModelSpec, system: System, gpus: int, seq_len: int, global_batch: int,
                     dtypes: tuple[str, ...] = ("bf16",), zero_stages: tuple[int, ...] = (1, 3),
                     skipped: Counter | None = None, even_layers: bool = False,
                     micro_batches: tuple[int, ...] = MICRO_BATCHES) -> Iterator[Shape]:
    """Every shape that satisfies the rules above (see the module docstring).

    ``even_layers``: only layouts whose model chunks hold equal layer counts
    (``layers % (pp * vpp) == 0``), as Megatron-LM required before uneven
    first / last stages and pipeline layouts existed. ``micro_batches``: the
    micro-batch sizes to try."""
    skipped = skipped if skipped is not None else Counter()
    dom = system.node.scale_up_domain
    experts = model.moe.num_experts if model.moe else 1
    for tp in tp_choices(model, system):
        for cp in cp_choices(model, seq_len):
            if tp > 1 and cp > 1 and tp * cp > dom:
                skipped["tp x cp beyond the scale-up domain"] += 1
                continue
            if gpus % (tp * cp):
                continue
            for pp in _divisors(gpus // (tp * cp)):
                if pp > model.num_layers or (even_layers and model.num_layers % pp):
                    continue
                dp = gpus // (tp * cp * pp)
                if global_batch % dp:
                    skipped["global batch not divisible by dp"] += 1
                    continue
                for mbs in micro_batches:
                    if global_batch % (mbs * dp):
                        continue
                    m = global_batch // (mbs * dp)
                    for vpp in VPP_CHOICES:
                        if vpp > 1 and (pp == 1 or m % pp or pp * vpp > model.num_layers):
                            continue
                        if even_layers and model.num_layers % (pp * vpp):
                            continue
                        for ep, etp in _expert_layouts(model, tp, cp, dp, dom, experts):
                            for zero in zero_stages:
                                if zero == 3 and dp * cp == 1:
                                    continue  # nothing to shard
                                for dtype in dtypes:
                                    yield Shape(tp, cp, pp, vpp, dp, ep, etp, mbs, zero, dtype)


def dp_degrees(model: ModelSpec, system: System, gpus: int, seq_len: int, even_layers: bool = False) -> set[int]:
    """The data-parallel degrees the placement rules leave at a GPU count (whatever the global batch):
    a global batch has a layout iff a micro-batch times one of them divides it."""
    dom = system.node.scale_up_domain
    out = set()
    for tp in tp_choices(model, system):
        for cp in cp_choices(model, seq_len):
            if (tp > 1 and cp > 1 and tp * cp > dom) or gpus % (tp * cp):
                continue
            for pp in _divisors(gpus // (tp * cp)):
                if pp <= model.num_layers and not (even_layers and model.num_layers % pp):
                    out.add(gpus // (tp * cp * pp))
    return out


def _expert_layouts(model: ModelSpec, tp: int, cp: int, dp: int, dom: int, experts: int) -> list[tuple[int, int]]:
    if not model.moe:
        return [(1, tp)]
    out = []
    mesh = tp * cp * dp
    for ep in _divisors(experts):
        for etp in sorted({1, tp}):
            group = ep * etp
            if mesh % group:
                continue
            if group > dom and ep < dom:  # keep all-to-all in the scale-up domain when it fits there
                continue
            out.append((ep, etp))
    return out


__all__ = ["MIN_CP_CHUNK", "Shape", "cp_choices", "dp_degrees", "enumerate_shapes", "tp_choices"]
