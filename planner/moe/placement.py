"""Expert placements, their evaluation, and the two baselines.

A :class:`Placement` puts, for every MoE layer, each GPU's physical expert
slots in front of logical experts; an expert may have several replicas, each
taking a share of its tokens. Everything is evaluated from ``F[l, e, g]``, the
share of expert ``e``'s tokens at layer ``l`` served on GPU ``g`` (a replica
is picked independently for each token with its share as probability):

* **load** of GPU ``g`` at layer ``l``: ``sum_e load[l, e] F[l, e, g]`` (token
  assignments); imbalance = max / mean over GPUs.
* **flow** between consecutive layers: ``M_l = F_l^T T_l F_{l+1}`` (``G x G``),
  ``M_l[g, h]`` the expert-to-expert pairs leaving GPU ``g`` for GPU ``h``
  (:mod:`planner.moe.trace`); token transfers are pairs / top_k.
  Cross-GPU tokens: the off-diagonal of ``M`` / top_k; cross-node tokens: the
  part between GPUs of different nodes / top_k. A GPU's send (receive) volume is
  its row (column) of ``M`` off the diagonal; the comm skew of a boundary is the
  largest send or receive volume.
* **combined objective** (what the solver minimises and every method is
  scored on)::

      J = w_load mean_l(max load_l / mean load_l)
          + w_comm mean_l(max send-or-receive_l / (pairs_l / G))
          + w_traffic mean_l((c_gpu x cross-GPU pairs_l + (c_node - c_gpu) x cross-node pairs_l) / pairs_l)

  with link costs ``c_same_gpu = 0``, ``c_gpu`` (same node, default 1) and
  ``c_node`` (across nodes, default 4, the NVLink / NIC bandwidth ratio order).
* **MoE layer time** (:func:`moe_layer_time_s`): for a step of
  ``step_tokens`` tokens, the expert GEMMs of the busiest GPU (each of its
  replicas a GEMM at its share of tokens, weight reads included) plus the
  all-to-all of the busiest GPU's sends and receives (NVLink inside a node, the
  NIC across nodes).

Baselines: :func:`round_robin` (contiguous blocks, what engines do by
default; no replicas) and :func:`greedy` (EPLB's heuristic: replicate the
hottest experts into the redundant slots, then pack replicas heaviest first on
the least-loaded GPU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import PlannerError
from ..cost.compute import gemm_time_s
from ..limits import MAX_BYTES_PER_PARAM, MAX_EXPERTS, MAX_GPUS, MAX_LINK_COST, check_int, check_number
from ..specs.hardware import System
from ..specs.model import ModelSpec
from .trace import RoutingStats


class PlacementError(PlannerError):
    """A cluster that cannot hold the experts, or a malformed placement."""


@dataclass(frozen=True)
class ExpertCluster:
    """The GPUs the experts go on: ``gpus`` in nodes of ``gpus_per_node``, each with
    ``slots`` expert slots per layer (``ceil((E + redundant) / gpus)`` unless given)."""

    gpus: int
    gpus_per_node: int
    num_experts: int
    redundant: int = 0
    slots: int = 0
    c_gpu: float = 1.0
    c_node: float = 4.0

    def __post_init__(self) -> None:
        try:
            check_int(self.num_experts, "num_experts", hi=MAX_EXPERTS)
            check_int(self.gpus, "gpus", hi=MAX_GPUS)
            check_int(self.gpus_per_node, "gpus per node", hi=MAX_GPUS)
            check_int(self.redundant, "redundant slots", lo=0, hi=MAX_EXPERTS * MAX_GPUS)
            check_int(self.slots, "slots", lo=0, hi=MAX_EXPERTS)
            check_number(self.c_gpu, "same-node link cost", lo=0.0, lo_open=False, hi=MAX_LINK_COST)
            check_number(self.c_node, "cross-node link cost", lo=0.0, lo_open=False, hi=MAX_LINK_COST)
        except PlannerError as exc:
            raise PlacementError(str(exc)) from None
        if self.gpus % self.gpus_per_node:
            raise PlacementError(f"{self.gpus} GPUs do not fill nodes of {self.gpus_per_node}")
        if self.c_node < self.c_gpu:
            raise PlacementError("link costs must satisfy 0 <= same-node cost <= cross-node cost")
        if self.gpus > self.num_experts + self.redundant:
            raise PlacementError(f"{self.gpus} GPUs exceed the {self.num_experts} experts + {self.redundant} redundant "
                                 f"slots: every GPU needs at least one expert (use fewer GPUs or more --redundant)")
        need = math.ceil((self.num_experts + self.redundant) / self.gpus)
        if self.slots == 0:
            object.__setattr__(self, "slots", need)
        elif self.slots * self.gpus < self.num_experts + self.redundant:
            raise PlacementError(f"{self.gpus} GPUs x {self.slots} expert slots = {self.gpus * self.slots} cannot hold "
                                 f"{self.num_experts} experts + {self.redundant} replicas; need at least {need} slots "
                                 f"per GPU or {math.ceil((self.num_experts + self.redundant) / self.slots)} GPUs")
        if self.redundant > self.num_experts * (self.gpus - 1):
            raise PlacementError(f"{self.redundant} replicas exceed what {self.gpus} GPUs can use")

    @property
    def nodes(self) -> int:
        return self.gpus // self.gpus_per_node

    def node_of(self) -> np.ndarray:
        return np.arange(self.gpus) // self.gpus_per_node

    def same_node(self) -> np.ndarray:
        """``[G, G]``: whether two GPUs share a node."""
        node = self.node_of()
        return node[:, None] == node[None, :]


def expert_slots(model: ModelSpec, gpu_memory_bytes: float, weight_bytes: float = 1.0, reserve: float = 0.5) -> int:
    """Expert slots per GPU per layer the memory model allows: the share ``1 - reserve`` of
    the GPU's memory over the routed-expert weights of all MoE layers (``weight_bytes`` per
    parameter; the rest is left for attention weights, KV cache and activations)."""
    if not isinstance(model, ModelSpec):
        raise PlacementError(f"expected a ModelSpec (planner.get_model), got {type(model).__name__}")
    moe = model.moe
    if moe is None:
        raise PlacementError(f"{model.name} has no experts")
    try:
        check_number(weight_bytes, "bytes per expert parameter", hi=MAX_BYTES_PER_PARAM)
        check_number(reserve, "memory reserve", lo=0.0, lo_open=False, hi=1.0)
        check_number(gpu_memory_bytes, "GPU memory bytes")
    except PlannerError as exc:
        raise PlacementError(str(exc)) from None
    if reserve >= 1:
        raise PlacementError(f"memory reserve must be below 1, got {reserve}")
    layers = sum(1 for l in range(model.num_layers) if model.is_moe_layer(l))
    per_expert = moe.expert_intermediate_size * model.hidden_size * (3 if model.gated_mlp else 2) * weight_bytes
    return int(gpu_memory_bytes * (1 - reserve) // (per_expert * layers))


@dataclass
class Placement:
    """``slots[l, g, s]``: the logical expert in physical slot ``s`` of GPU ``g`` at MoE layer
    ``l`` (-1 empty); ``share[l, g, s]``: the share of that expert's tokens the slot takes."""

    slots: np.ndarray
    share: np.ndarray
    num_experts: int
    meta: dict = field(default_factory=dict)

    @property
    def num_layers(self) -> int:
        return int(self.slots.shape[0])

    @property
    def gpus(self) -> int:
        return int(self.slots.shape[1])

    def fractions(self) -> np.ndarray:
        """``F[l, e, g]``: share of expert e's tokens at layer l on GPU g."""
        n_l, g, s = self.slots.shape
        f = np.zeros((n_l, self.num_experts, g))
        ll, gg, _ = np.meshgrid(np.arange(n_l), np.arange(g), np.arange(s), indexing="ij")
        used = self.slots >= 0
        np.add.at(f, (ll[used], self.slots[used], gg[used]), self.share[used])
        return f

    def check(self) -> None:
        f = self.fractions()
        total = f.sum(axis=2)
        if not np.allclose(total, 1.0, atol=1e-6):
            l, e = np.argwhere(~np.isclose(total, 1.0, atol=1e-6))[0]
            raise PlacementError(f"expert {e} at layer {l} has replica shares summing to {total[l, e]:.3f}, not 1")

    def to_physical_map(self) -> list[list[int]]:
        """Per layer, physical slot -> logical expert, GPU-major (slot ``g * slots + s``), the
        shape of vLLM's / SGLang's expert-placement maps; empty slots repeat the GPU's first expert."""
        out = []
        for l in range(self.num_layers):
            row = []
            for g in range(self.gpus):
                experts = [int(x) for x in self.slots[l, g] if x >= 0]
                fill = experts[0] if experts else 0
                row += experts + [fill] * (self.slots.shape[2] - len(experts))
            out.append(row)
        return out


def from_fractions_layer(items: list[tuple[int, float]], gpu_of_item: np.ndarray, gpus: int, slots: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    """One layer's slot and share arrays from items (expert, share) and each item's GPU."""
    sl = -np.ones((gpus, slots), dtype=np.int64)
    sh = np.zeros((gpus, slots))
    fill = np.zeros(gpus, dtype=np.int64)
    for (e, share), g in zip(items, gpu_of_item):
        if fill[g] >= slots:
            raise PlacementError(f"GPU {g} has more than {slots} experts")
        sl[g, fill[g]] = e
        sh[g, fill[g]] = share
        fill[g] += 1
    return sl, sh


# ---------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------

@dataclass
class Weights:
    """Weights of the combined objective (module docstring)."""

    load: float = 1.0
    comm: float = 0.5
    traffic: float = 1.0


@dataclass
class Evaluation:
    load_imbalance: float  # mean over layers of max / mean GPU load
    worst_layer_imbalance: float
    cross_gpu_tokens: float  # token transfers between GPUs, summed over layer boundaries
    cross_node_tokens: float
    comm_skew: float  # mean over boundaries of max send-or-receive / (pairs / G)
    objective: float
    moe_layer_time_s: float | None
    per_layer: dict[str, list[float]]

    def summary(self) -> dict:
        return {"load_imbalance": self.load_imbalance, "worst_layer_imbalance": self.worst_layer_imbalance,
                "cross_gpu_tokens": self.cross_gpu_tokens, "cross_node_tokens": self.cross_node_tokens,
                "comm_skew": self.comm_skew, "objective": self.objective, "moe_layer_time_s": self.moe_layer_time_s}


def layer_terms(load: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(GPU loads [L, G], imbalance [L])."""
    gl = np.einsum("le,leg->lg", load, f)
    mean = gl.mean(axis=1)
    return gl, gl.max(axis=1) / np.where(mean > 0, mean, 1.0)


def boundary_flows(trans: np.ndarray, f: np.ndarray) -> np.ndarray:
    """``M[l, g, h]`` expert-to-expert pairs from GPU g (layer l) to GPU h (layer l + 1)."""
    return np.einsum("lag,lab,lbh->lgh", f[:-1], trans, f[1:], optimize=True)


def boundary_terms(m: np.ndarray, cluster: ExpertCluster) -> tuple[np.ndarray, ...]:
    """(pairs, cross-GPU pairs, cross-node pairs, comm skew, traffic) of flows ``m[..., G, G]``
    (one boundary or a stack of them): the boundary terms of the combined objective."""
    pairs = m.sum(axis=(-2, -1))
    diag = np.diagonal(m, axis1=-2, axis2=-1)
    cross_gpu = pairs - diag.sum(axis=-1)
    cross_node = (m * ~cluster.same_node()).sum(axis=(-2, -1))
    send, recv = m.sum(axis=-1) - diag, m.sum(axis=-2) - diag
    safe = np.where(pairs > 0, pairs, 1.0)
    skew = np.where(pairs > 0, np.maximum(send.max(axis=-1), recv.max(axis=-1)) / (safe / cluster.gpus), 0.0)
    traffic = (cluster.c_gpu * cross_gpu + (cluster.c_node - cluster.c_gpu) * cross_node) / safe
    return pairs, cross_gpu, cross_node, skew, traffic


def evaluate(stats: RoutingStats, placement: Placement, cluster: ExpertCluster, weights: Weights | None = None,
             model: ModelSpec | None = None, system: System | None = None, step_tokens: int | None = None
             ) -> Evaluation:
    """Replay the routing statistics against a placement (module docstring)."""
    w = weights or Weights()
    if placement.num_layers != stats.num_layers:
        raise PlacementError(f"placement has {placement.num_layers} layers, trace {stats.num_layers}")
    f = placement.fractions()
    gl, imb = layer_terms(stats.load, f)
    k = stats.top_k
    m = None
    if stats.num_layers > 1:
        m = boundary_flows(stats.transitions, f)
        _, cross_gpu, cross_node, skew, traffic = boundary_terms(m, cluster)
    else:
        cross_gpu = cross_node = skew = traffic = np.zeros(1)
    obj = w.load * float(imb.mean()) + w.comm * float(skew.mean()) + w.traffic * float(traffic.mean())
    t_layer = None
    if model is not None and system is not None:
        t_layer = float(np.mean(moe_layer_time_s(stats, placement, cluster, model, system, step_tokens, flows=m)))
    return Evaluation(
        load_imbalance=float(imb.mean()), worst_layer_imbalance=float(imb.max()),
        cross_gpu_tokens=float(cross_gpu.sum() / k), cross_node_tokens=float(cross_node.sum() / k),
        comm_skew=float(skew.mean()), objective=obj, moe_layer_time_s=t_layer,
        per_layer={"imbalance": imb.tolist(), "cross_gpu_tokens": (cross_gpu / k).tolist(),
                   "cross_node_tokens": (cross_node / k).tolist()})


def moe_layer_time_s(stats: RoutingStats, placement: Placement, cluster: ExpertCluster, model: ModelSpec, system: System,
                     step_tokens: int | None = None, dtype: str = "bf16", flows: np.ndarray | None = None) -> np.ndarray:
    """Per MoE layer, seconds for a step of ``step_tokens`` tokens (default 1024 per GPU):
    the busiest GPU's expert GEMMs (each replica at its tokens, weights read once) plus
    the all-to-all of the busiest GPU (NVLink inside a node, NIC across nodes, both ways).
    ``flows``: the placement's :func:`boundary_flows` when the caller has them."""
    moe = model.moe
    assert moe is not None
    tokens = step_tokens or 1024 * cluster.gpus
    scale = tokens / max(1, stats.tokens)
    acc = system.accelerator
    h, fi = model.hidden_size, moe.expert_intermediate_size
    up = fi * (2 if model.gated_mlp else 1)
    n_l = stats.num_layers
    # tokens each slot serves
    per_slot = np.zeros(placement.slots.shape)
    used = placement.slots >= 0
    lidx = np.nonzero(used)[0]
    per_slot[used] = stats.load[lidx, placement.slots[used]] * placement.share[used] * scale
    m = np.maximum(per_slot, 1.0)
    t_up = gemm_time_s(m.astype(np.int64), up, h, acc, dtype, 1)
    t_down = gemm_time_s(m.astype(np.int64), h, fi, acc, dtype, 1)
    compute = np.where(used, np.asarray(t_up) + np.asarray(t_down), 0.0).sum(axis=2).max(axis=1)
    comm = np.zeros(n_l)
    if n_l > 1:
        same_node = cluster.same_node()
        if flows is None:
            flows = boundary_flows(stats.transitions, placement.fractions())
        off = flows * scale / stats.top_k * (1 - np.eye(cluster.gpus))[None]  # token transfers between GPUs
        nb = h * 2.0  # bf16 activations
        nvl = system.node.scale_up_bandwidth_bytes_per_s
        nic = system.node.nic_bandwidth_bytes_per_s
        intra = (off * same_node[None]).sum(axis=2) + (off * same_node[None]).sum(axis=1)
        inter = (off * ~same_node[None]).sum(axis=2) + (off * ~same_node[None]).sum(axis=1)
        per_gpu = intra * nb / nvl + inter * nb / nic
        comm[:-1] = per_gpu.max(axis=1)
    return compute + comm


# ---------------------------------------------------------------------------
# baselines
# ---------------------------------------------------------------------------

def replica_counts(load: np.ndarray, redundant: int, max_copies: int) -> np.ndarray:
    """Replicas per expert for one layer: each redundant slot goes to the expert with the
    largest load per replica (EPLB's water-filling), at most ``max_copies`` copies each."""
    r = np.ones(len(load), dtype=np.int64)
    for _ in range(redundant):
        per = np.where(r < max_copies, load / r, -1.0)
        e = int(np.argmax(per))
        if per[e] < 0:
            break
        r[e] += 1
    return r


def round_robin(stats: RoutingStats, cluster: ExpertCluster) -> Placement:
    """Contiguous blocks, no replicas: expert e on GPU ``e // ceil(E / G)`` at every layer."""
    e, g = stats.num_experts, cluster.gpus
    per = math.ceil(e / g)
    slots = -np.ones((stats.num_layers, g, cluster.slots), dtype=np.int64)
    share = np.zeros(slots.shape)
    for x in range(e):
        slots[:, x // per, x % per] = x
        share[:, x // per, x % per] = 1.0
    return Placement(slots, share, e, {"method": "round_robin"})


def greedy(stats: RoutingStats, cluster: ExpertCluster) -> Placement:
    """EPLB's heuristic per layer: water-filling replicas, then heaviest replica first onto the
    least-loaded GPU that has a free slot and no copy of that expert yet."""
    e, g, s = stats.num_experts, cluster.gpus, cluster.slots
    slots = -np.ones((stats.num_layers, g, s), dtype=np.int64)
    share = np.zeros(slots.shape)
    for l in range(stats.num_layers):
        r = replica_counts(stats.load[l], cluster.redundant, g)
        items = [(x, 1.0 / r[x]) for x in range(e) for _ in range(r[x])]
        items.sort(key=lambda it: -stats.load[l, it[0]] * it[1])
        gl = np.zeros(g)
        fill = np.zeros(g, dtype=np.int64)
        holds: list[set[int]] = [set() for _ in range(g)]
        for x, sh in items:
            ok = [i for i in range(g) if fill[i] < s and x not in holds[i]]
            i = min(ok, key=lambda i: (gl[i], fill[i]))
            slots[l, i, fill[i]] = x
            share[l, i, fill[i]] = sh
            fill[i] += 1
            gl[i] += stats.load[l, x] * sh
            holds[i].add(x)
    return Placement(slots, share, e, {"method": "greedy"})


__all__ = ["ExpertCluster", "Evaluation", "Placement", "PlacementError", "Weights", "boundary_flows", "boundary_terms", "evaluate",
           "expert_slots", "from_fractions_layer", "greedy", "layer_terms", "moe_layer_time_s", "replica_counts",
           "round_robin"]
