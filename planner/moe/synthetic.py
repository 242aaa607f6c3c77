"""Seeded synthetic routing traces shaped like a catalog MoE model.

What the generator imitates (the structure the reference routing data shows,
``shared/reference/moe/README``): per-layer popularity skew, popularity that
drifts from layer to layer, cross-layer affinity, and a routing shift over
time. The mechanism, per token ``t`` and MoE layer ``l``:

* **Popularity**: expert ``e`` has weight ``p_l(e) ∝ rank_l(e) ** -skew``
  (Zipf). The ranking ``rank_l`` is a random permutation at the first layer;
  each next layer swaps a share ``drift`` of the ranks with random partners.
* **Affinity**: every token has a latent *topic* (one of ``topics``, like the
  domains of the OLMoE statistics); at every layer each topic favours its own
  ``E / topics`` experts (a fresh random partition per layer). With
  probability ``affinity`` a token's layer-``l`` choice multiplies its topic's
  experts' weights by ``topic_boost``, so consecutive layers' experts are
  correlated through the topic, which is what a placer can exploit.
* **Choice**: the ``top_k`` distinct experts are drawn with probabilities
  ``∝ weight`` without replacement (Gumbel top-k).
* **Shift**: the second half of the token stream has its topic mix moved a
  share ``shift`` towards a different random mix and its popularity blended a
  share ``shift`` with a new Zipf ranking, so a placement fitted on the first
  half meets changed routing on the second.

Model shapes (MoE layers, routed experts, top-k) come from the catalog.

Defaults, matched to the reference statistics (``tests/test_experts.py``): ``skew
0.3`` gives a busiest / mean expert load of about 3.3 for DeepSeek-V3 (OLMoE's
top-8 routing: 2.5-3 on C4, up to 6-8 on arXiv) and 1.3 for Mixtral (1.1-1.6
measured); ``affinity 0.9`` puts a token's next-layer first expert among the 2
likeliest successors of its current one about 9 points more often than the
popularity alone would (the OLMoE and Mixtral statistics: 5-15 points).
"""

from __future__ import annotations

import numpy as np

from ..errors import PlannerError
from ..limits import MAX_ROUTING_TOKENS, MAX_SEED, MAX_SYNTHETIC_WORK, check_int, check_number
from ..specs.model import ModelSpec
from .trace import RoutingTrace, TraceError

_MAX_LAYER_ELEMENTS = 1 << 26  # tokens x experts of one layer's float32 logits and noise (256 MB each)


def moe_shape(model: ModelSpec) -> tuple[int, int, int]:
    """(MoE layers, routed experts, top-k) of a catalog model."""
    if not isinstance(model, ModelSpec):
        raise TraceError(f"expected a ModelSpec (planner.get_model), got {type(model).__name__}")
    if model.moe is None:
        raise TraceError(f"{model.name} has no experts")
    layers = sum(1 for l in range(model.num_layers) if model.is_moe_layer(l))
    return layers, model.moe.num_experts, model.moe.top_k


def _zipf(order: np.ndarray, skew: float) -> np.ndarray:
    """Weights of experts whose popularity rank (0 = hottest) is ``order[e]``."""
    w = (order + 1.0) ** -skew
    return w / w.sum()


def synthetic_trace(model: ModelSpec, tokens: int = 8192, seed: int = 0, skew: float = 0.3, drift: float = 0.1,
                    affinity: float = 0.9, topics: int = 8, topic_boost: float = 30.0,
                    shift: float = 0.2) -> RoutingTrace:
    """A per-token trace of ``tokens`` tokens over the model's MoE layers (module docstring).

    Its work (``tokens x MoE layers x experts`` Gumbel draws) is bounded by ``MAX_SYNTHETIC_WORK`` and one
    layer's arrays (``tokens x experts``) by 2^26 elements; larger asks raise :class:`TraceError`."""
    n_layers, e, k = moe_shape(model)
    try:
        tokens = check_int(tokens, "tokens", lo=2, hi=MAX_ROUTING_TOKENS)
        seed = check_int(seed, "seed", lo=0, hi=MAX_SEED)
        topics = check_int(topics, "topics", lo=1, hi=e)
        for name, v in (("drift", drift), ("affinity", affinity), ("shift", shift)):
            check_number(v, name, lo=0.0, lo_open=False, hi=1.0)
        check_number(skew, "skew", lo=0.0, lo_open=False, hi=10.0)
        check_number(topic_boost, "topic_boost", lo=1.0, lo_open=False, hi=1e6)
    except PlannerError as exc:
        raise TraceError(f"synthetic trace: {exc}") from None
    work = tokens * n_layers * e
    if work > MAX_SYNTHETIC_WORK or tokens * e > _MAX_LAYER_ELEMENTS:
        most = min(MAX_SYNTHETIC_WORK // (n_layers * e), _MAX_LAYER_ELEMENTS // e)
        raise TraceError(f"synthetic trace: {tokens:,} tokens over {n_layers} MoE layers x {e} experts is more work "
                         f"than the bound; at most {most:,} tokens for {model.name}")
    topics = max(1, min(topics, e // max(1, k)))
    rng = np.random.default_rng(seed)
    half = tokens // 2
    mix1 = rng.dirichlet(np.full(topics, 4.0))
    mix2 = (1 - shift) * mix1 + shift * rng.dirichlet(np.full(topics, 4.0))
    topic = np.concatenate([rng.choice(topics, half, p=mix1), rng.choice(topics, tokens - half, p=mix2)])
    later = np.arange(tokens) >= half
    order = rng.permutation(e).astype(np.float64)  # rank of each expert
    out = np.empty((tokens, n_layers, k), dtype=np.int16 if e < 32768 else np.int32)
    boost = np.log(topic_boost)
    for l in range(n_layers):
        if l:
            swap = rng.random(e) < drift
            idx = np.flatnonzero(swap)
            order[idx] = order[rng.permutation(idx)] if len(idx) > 1 else order[idx]
        p1 = _zipf(order, skew)
        p2 = (1 - shift) * p1 + shift * _zipf(rng.permutation(e).astype(np.float64), skew)
        logp = np.where(later[:, None], np.log(p2).astype(np.float32)[None, :], np.log(p1).astype(np.float32)[None, :])
        groups = rng.permutation(e) % topics  # this layer's topic of each expert
        follow = rng.random(tokens) < affinity
        logits = logp + np.float32(boost) * ((groups[None, :] == topic[:, None]) & follow[:, None])
        u = rng.random((tokens, e), dtype=np.float32)
        logits -= np.log(-np.log(np.maximum(u, np.float32(1e-12))))  # Gumbel noise
        top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
        order_k = np.argsort(-np.take_along_axis(logits, top, axis=1), axis=1)
        out[:, l, :] = np.take_along_axis(top, order_k, axis=1)  # slot 0: the router's first choice
    return RoutingTrace(out, e, model.name)


__all__ = ["moe_shape", "synthetic_trace"]
