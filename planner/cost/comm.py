"""Time of NCCL-style collectives on a two-tier topology: alpha-beta ring models.

Placement. A group of ``n`` ranks has ``k`` ranks per scale-up domain (NVLink /
NVSwitch, an NVLink bridge pair, ...) and ``r`` ranks per node (a "node" here is
the larger of the server and the scale-up domain, so an NVL72 rack is one node).
Up to three tiers can be crossed, each with its per-rank, per-direction bandwidth
from the hardware spec and fitted constants (``TierFit``):

    up      scale-up fabric            B_up  = scale_up_bandwidth_bytes_per_s    used if k > 1
    pcie    between domains of a node  B_pci = pcie_bandwidth_bytes_per_s        used if r > k
    network between nodes              B_net = nic_bandwidth_bytes_per_s          used if n > r

Ring algorithms (Thakur, Rabenseifner & Gropp 2005; the busbw definitions of
NCCL's ``PERFORMANCE.md``), ``S`` = ``message_bytes``, bytes each rank sends on
its bottleneck link and the number of latency-bound steps::

    all_reduce      2(n-1)/n S     2(n-1) steps   (reduce-scatter + all-gather)
    reduce_scatter   (n-1)/n S      (n-1) steps   (S = the full, unreduced buffer)
    all_gather       (n-1)/n S      (n-1) steps   (S = the full, gathered buffer)

    t = launch + phases * [(n - m) step_in + (m - 1) step_out] + bus_bytes / B_eff
    B_eff = min over crossed tiers of:  B_up e_up,  B_pci e_pci,  r B_net e_net

with ``phases`` 2 for all_reduce, 1 otherwise, ``m`` the number of units of the
outermost crossed tier (nodes, or domains when the group stays in one node),
``step_out`` that tier's hop latency and ``step_in`` the inner one's: a chunk
travels n-1 hops per phase, m-1 of them across the outer tier (the latency model
of NCCL's tuner, ``nInterSteps = 2(nNodes-1)`` for all-reduce). On one tier this
is ``ring_time_s``: ``steps * step + bus_bytes / (B e)``, steps = phases (n-1).
Inside one scale-up domain NCCL's tuner also has a bulk protocol (Simple) with a
larger fixed cost and a higher bandwidth, and takes the faster of the two::

    t_domain = min(t,  bulk_s + phases (n-1) bulk_step + bus_bytes / (B_up e_bulk))

An all-reduce across more than two units may also take NCCL's tree (a chain inside each
unit, a binary tree across units), whose latency grows with log2 of the units:

    t_tree = launch + 2 [(n/m - 1) step_in + ceil(log2 m) step_out] + bus_bytes / B_eff

and the faster of ring and tree is taken (small messages across many nodes: serving
decode at wide tensor parallelism, the latency part of data-parallel reductions at scale).

A ring that crosses nodes leaves each node once per channel; NCCL spreads its
channels over the node's NICs (one per GPU), so the r ranks of a node give the
ring ``r B_net`` (busbw of multi-node DGX runs ~ 8 x NIC). Between the NVLink
pairs of one server the measured busbw is about one PCIe link, so ``B_pci`` gets
no such factor. This *flat ring* is what NCCL runs for large messages. The
hierarchical form (reduce-scatter in the domain, all-reduce of S/k across nodes,
all-gather) gives the same time on many nodes but half of it on two, which the
two-node DGX A100 runs of the reference data do not show (refitted on those rows,
messages >= 1 MiB: flat ring 29% MAPE, hierarchical 40%). ``launch``, ``step_in``
and ``step_out`` are at least the scale-up tier's and B_eff at most its, so a
group that spans domains is never faster than the same group inside one. NCCL's
tree (log2 of the nodes in the latency) is not modelled: for small messages on
many nodes the ring latency here overestimates.

Point-to-point (``send_recv``, one message of S bytes to the peer, over the tier
it crosses) and ``all_to_all`` (each rank sends S in total, S/n to each rank,
itself included) use the send/recv constants::

    send_recv   t = p2p_latency + S / (B_tier e_tier)
    all_to_all  t = p2p_latency + (k-1)/n S / (B_up e_up) + (r-k)/n S / (B_pci e_pci)
                                + (n-r)/n S / (B_net e_net)

(e = each tier's p2p_eff; p2p_latency the largest of the crossed tiers'; an
outer tier's B e is capped at the scale-up tier's).

For all_to_all the terms add up rather than overlap: with PXN, NCCL routes a
message bound for another node through NVLink to the GPU on the right rail, so
the scale-up links carry both kinds; all n-1 sends are posted in one group, so
they share one latency. (No all_to_all measurements here: an assumption.)

Constants come from ``scripts/fit_comm.py`` (see ``_FITS``). Functions are pure,
take SI units and accept a numpy array of message sizes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np

from planner.specs.hardware import System

CollectiveKind = Literal["all_reduce", "reduce_scatter", "all_gather", "all_to_all", "send_recv"]
KINDS: tuple[str, ...] = ("all_reduce", "reduce_scatter", "all_gather", "all_to_all", "send_recv")


@dataclass(frozen=True)
class TierFit:
    """Fitted constants of one tier of one accelerator family."""

    bus_eff: float  # busbw / per-direction link bandwidth reached by ring collectives
    launch_s: float  # fixed time of one collective call
    step_s: float  # latency of one ring step
    p2p_eff: float  # achieved / link bandwidth for send/recv (and all_to_all)
    p2p_s: float  # fixed time of one send/recv
    # NCCL's bulk (Simple) protocol: a larger fixed cost, a higher bandwidth. NCCL's tuner
    # takes the faster protocol for each size, so a ring collective inside the scale-up
    # domain costs min(low-latency form, bulk form). None: not measured (one form only).
    bulk_eff: float | None = None
    bulk_s: float = 0.0  # fixed time of one bulk-protocol collective
    bulk_step_s: float = 0.0  # latency of one ring step in the bulk protocol


# Fitted by scripts/fit_comm.py on every row of ../shared/reference/collectives/
# (microsoft/vidur data/profiling/network, MIT; median NCCL kernel time of rank 0,
# 2 KiB-64 MiB; 512 MiB for a100_pairwise all_reduce), minimising the mean relative error:
#   (*, "nvswitch")      {a100,h100}_dgx all_reduce on 1 node (2/4/8 GPUs); send_recv between 2 GPUs of 1 node
#   ("ampere","network") a100_dgx all_reduce over 2 nodes ((GPUs, per node) = (2,1),(4,2),(8,4),(16,8));
#                        send_recv, 1 GPU on each of 2 nodes. Specs: a100-sxm-80gb.yaml, h100-sxm.yaml.
#   ("hopper","network") h100_dgx send_recv over 2 nodes; no multi-node all_reduce was measured, so its
#                        bus_eff and step_s = hopper p2p values x ampere's (collective / p2p) ratios.
#   (*, "nvlink_bridge") {a100,h100}_pairwise_nvlink all_reduce on a bridged pair, send_recv (2,2);
#                        step_s = the family's nvswitch value (one group size only).
#   (*, "pcie")          pairwise_nvlink all_reduce on 4 GPUs (two bridged pairs); p2p = the collective
#                        values (not measured). Specs: a100-pcie-80gb.yaml, h100-pcie.yaml, 4 GPUs per node.
# bulk_* (NVSwitch only): the same all_reduce rows from 16 MiB up (NCCL's Simple protocol, whose
#   bus bandwidth keeps rising past where one line over all sizes bends: A100 8 GPUs 125 GB/s at
#   16-32 MiB, 174 GB/s at 64 MiB); a collective inside one domain costs the faster of the two forms.
#   Training's tensor-parallel all-reduces (25-400 MB) are bulk messages.
# launch_s of the network and pcie tiers = the scale-up tier's (all outer-tier rows span 2 units,
# so launch and step cannot be told apart there).
# p2p_eff is capped at 1 (the sender's kernel alone was timed; uncapped fits gave 1.04 and 1.2).
# The A100 cluster's network reaches ~22-31% of its spec's 200 Gb/s HDR per GPU, the H100
# cluster's ~73% of 400 Gb/s NDR. The 16-GPU A100 runs (8 per node) reach only ~3 NICs' worth,
# not 8: the model is 2x optimistic there (66% MAPE), as if that cluster had <= 4 NICs a node.
# Refit with ``python scripts/fit_comm.py`` and paste its output here.
_FITS: dict[tuple[str, str], TierFit] = {
    ("ampere", "nvswitch"): TierFit(bus_eff=0.564, launch_s=4.14e-05, step_s=6.29e-07, p2p_eff=1, p2p_s=1.33e-05,
                                    bulk_eff=0.623, bulk_s=5.61e-05, bulk_step_s=1.77e-06),
    ("ampere", "network"): TierFit(bus_eff=0.219, launch_s=4.14e-05, step_s=4.17e-05, p2p_eff=0.31, p2p_s=2.79e-05),
    ("ampere", "nvlink_bridge"): TierFit(bus_eff=0.644, launch_s=3.34e-05, step_s=6.29e-07, p2p_eff=1, p2p_s=4.96e-06),
    ("ampere", "pcie"): TierFit(bus_eff=0.74, launch_s=3.34e-05, step_s=1.09e-05, p2p_eff=0.74, p2p_s=4.43e-05),
    ("hopper", "nvswitch"): TierFit(bus_eff=0.772, launch_s=2.38e-05, step_s=4.07e-07, p2p_eff=0.803, p2p_s=7.59e-06,
                                    bulk_eff=0.805, bulk_s=3.51e-05, bulk_step_s=0),
    ("hopper", "network"): TierFit(bus_eff=0.514, launch_s=2.38e-05, step_s=2.73e-05, p2p_eff=0.728, p2p_s=1.83e-05),
    ("hopper", "nvlink_bridge"): TierFit(bus_eff=0.655, launch_s=1.5e-05, step_s=4.07e-07, p2p_eff=1, p2p_s=4.96e-06),
    ("hopper", "pcie"): TierFit(bus_eff=0.744, launch_s=1.5e-05, step_s=5.61e-06, p2p_eff=0.744, p2p_s=2.06e-05),
}
FITS_SOURCE = "scripts/fit_comm.py on shared/reference/collectives (vidur NCCL all_reduce, send_recv)"

# Families without measurements borrow the nearest measured NVIDIA generation (an
# assumption, not a fit): Ada (PCIe cards) and CDNA2 -> Ampere; Blackwell, CDNA3/4,
# TPU and Gaudi -> Hopper. RCCL, ICI and HCCL were not measured here.
FAMILY_FALLBACK: dict[str, str] = {
    "ada": "ampere", "cdna2": "ampere",
    "blackwell": "hopper", "cdna3": "hopper", "cdna4": "hopper", "tpu": "hopper", "gaudi": "hopper",
}
# Scale-up fabrics without measurements use the NVSwitch constants (an assumption):
# an AMD xGMI mesh, a TPU ICI torus, Gaudi's on-board RoCE.
_SCALE_UP_TIER: dict[str, str] = {"nvswitch": "nvswitch", "nvlink_bridge": "nvlink_bridge", "pcie": "pcie",
                                  "mesh": "nvswitch", "torus": "nvswitch", "ethernet": "nvswitch"}


def _family(system: System) -> str:
    fam = system.accelerator.family
    return fam if fam in ("ampere", "hopper") else FAMILY_FALLBACK.get(fam, "hopper")


def _tier_key(system: System, tier: str) -> tuple[str, str]:
    """The key of ``_FITS`` for tier "up", "pcie" or "network" of ``system``."""
    name = _SCALE_UP_TIER[system.node.scale_up_kind] if tier == "up" else tier
    return (_family(system), name)


def _bandwidth(system: System, tier: str) -> float:
    n = system.node
    return {"up": n.scale_up_bandwidth_bytes_per_s, "pcie": n.pcie_bandwidth_bytes_per_s,
            "network": n.nic_bandwidth_bytes_per_s}[tier]


def _with_override(system: System, tier: str, fit: TierFit) -> TierFit:
    """A system spec may state its own measured network efficiency (``node.network_efficiency``,
    with its source in the spec): it replaces the fitted bus and p2p efficiencies of the network tier."""
    eff = system.node.network_efficiency
    if tier != "network" or eff is None:
        return fit
    return replace(fit, bus_eff=eff, p2p_eff=eff)


def comm_constants(system: System) -> dict:
    """The constants ``collective_time_s`` uses for ``system``, for breakdown reporting."""
    out: dict = {"family": system.accelerator.family, "source": FITS_SOURCE}
    for tier in ("up", "pcie", "network"):
        key = _tier_key(system, tier)
        out[tier] = {"constants_key": "/".join(key), "fitted_on_this_family": key[0] == system.accelerator.family,
                     "bandwidth_bytes_per_s": _bandwidth(system, tier), **asdict(_with_override(system, tier, _FITS[key]))}
    return out


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown collective kind {kind!r}; expected one of {', '.join(KINDS)}")


def _check_size(message_bytes) -> np.ndarray:
    s = np.asarray(message_bytes, dtype=float)
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError(f"message_bytes must be finite and >= 0, got {message_bytes!r}")
    return s


def _check_group(group_size) -> int:
    if isinstance(group_size, bool) or not float(group_size).is_integer() or group_size < 1:
        raise ValueError(f"group_size must be an integer >= 1, got {group_size!r}")
    return int(group_size)


def ring_steps(kind: str, group_size: int) -> int:
    """Latency-bound steps: all_reduce 2(n-1), reduce_scatter / all_gather n-1,
    all_to_all and send_recv 1 (all sends posted at once)."""
    _check_kind(kind)
    n = _check_group(group_size)
    if n == 1:
        return 0
    return {"all_reduce": 2 * (n - 1), "reduce_scatter": n - 1, "all_gather": n - 1}.get(kind, 1)


def bus_bytes(kind: str, message_bytes, group_size: int):
    """Bytes one rank sends over its link: all_reduce 2(n-1)/n S; reduce_scatter,
    all_gather, all_to_all (n-1)/n S; send_recv S (NCCL busbw factors)."""
    _check_kind(kind)
    n = _check_group(group_size)
    s = _check_size(message_bytes)
    if n == 1:
        return s * 0.0
    factor = {"all_reduce": 2 * (n - 1) / n, "send_recv": 1.0}.get(kind, (n - 1) / n)
    return s * factor


def ring_time_s(kind: CollectiveKind, message_bytes, group_size: int, bandwidth_bytes_per_s: float,
                latency_s: float = 0.0, efficiency: float = 1.0):
    """Alpha-beta time on one uniform tier: ``steps * latency_s + bus_bytes / (B * efficiency)``.

    E.g. ring all-reduce with ``efficiency=1, latency_s=0``: ``2(n-1)/n * S / B``."""
    if bandwidth_bytes_per_s <= 0 or efficiency <= 0 or latency_s < 0:
        raise ValueError("bandwidth and efficiency must be > 0 and latency >= 0, got "
                         f"{bandwidth_bytes_per_s!r}, {efficiency!r}, {latency_s!r}")
    t = ring_steps(kind, group_size) * latency_s + bus_bytes(kind, message_bytes, group_size) / (
        bandwidth_bytes_per_s * efficiency)
    return float(t) if np.ndim(t) == 0 else t


def placement(group_size: int, system: System, ranks_per_domain: int | None = None,
              ranks_per_node: int | None = None) -> tuple[int, int]:
    """``(k, r)``: ranks per scale-up domain and per node, checked against ``system``.

    Defaults: ``k = min(n, scale_up_domain)``; ``r = min(n, node size)`` when the
    group is packed (k at its default), else ``r = k`` (a strided group, such as data
    parallel across tensor-parallel blocks, is assumed to take k ranks per node)."""
    n = _check_group(group_size)
    node = system.node
    node_size = max(node.accelerators_per_node, node.scale_up_domain)
    k_max = min(n, node.scale_up_domain)
    k = k_max if ranks_per_domain is None else ranks_per_domain
    if isinstance(k, bool) or not float(k).is_integer() or not 1 <= k <= k_max:
        raise ValueError(f"ranks_per_domain must be an integer in 1..{k_max} (group of {n} on a scale-up "
                         f"domain of {node.scale_up_domain}), got {ranks_per_domain!r}")
    k = int(k)
    r_max = min(n, node_size)
    r = (r_max if k == k_max else k) if ranks_per_node is None else ranks_per_node
    if isinstance(r, bool) or not float(r).is_integer() or not k <= r <= r_max:
        raise ValueError(f"ranks_per_node must be an integer in {k}..{r_max}, got {ranks_per_node!r}")
    return k, int(r)


def collective_time_s(kind: CollectiveKind, message_bytes, group_size: int, system: System,
                      ranks_per_domain: int | None = None, ranks_per_node: int | None = None,
                      fits: Mapping[tuple[str, str], TierFit] | None = None):
    """Time in seconds of one collective (formulas in the module docstring).

    ``message_bytes``: all_reduce, the buffer each rank holds; all_gather /
    reduce_scatter, the full gathered buffer; all_to_all, all bytes one rank sends
    (its own share included); send_recv, the bytes one rank sends to its peer.
    ``ranks_per_domain`` / ``ranks_per_node``: see :func:`placement`. ``fits``
    overrides ``_FITS`` (for fitting). A group of one rank, or 0 bytes, costs 0.
    """
    _check_kind(kind)
    s = _check_size(message_bytes)
    n = _check_group(group_size)
    k, r = placement(n, system, ranks_per_domain, ranks_per_node)
    fits = _FITS if fits is None else fits
    up = fits[_tier_key(system, "up")]
    bw_up = _bandwidth(system, "up")
    crossed = [t for t, used in (("pcie", r > k), ("network", n > r)) if used]
    tiers = [(tier, _with_override(system, tier, fits[_tier_key(system, tier)]), _bandwidth(system, tier)) for tier in crossed]

    if kind == "send_recv":  # one message over the tier between the two ranks
        tier, fit, bw = tiers[0] if k < 2 and tiers else ("up", up, bw_up)
        t = max(up.p2p_s, fit.p2p_s) + s / min(bw * fit.p2p_eff, bw_up * up.p2p_eff)
    elif kind == "all_to_all":
        share = {"up": (k - 1) / n, "pcie": (r - k) / n, "network": (n - r) / n}
        t = max([up.p2p_s] + [f.p2p_s for _, f, _ in tiers]) + s * share["up"] / (bw_up * up.p2p_eff)
        for tier, fit, bw in tiers:
            t = t + s * share[tier] / min(bw * fit.p2p_eff, bw_up * up.p2p_eff)
    else:  # flat ring through every rank; the slowest crossed tier sets the pace
        eff_bw = [bw_up * up.bus_eff] + [(r if tier == "network" else 1) * bw * fit.bus_eff for tier, fit, bw in tiers]
        launch = max([up.launch_s] + [f.launch_s for _, f, _ in tiers])
        step_in = max([up.step_s] + [f.step_s for _, f, _ in tiers[:-1]])
        step_out = max(up.step_s, tiers[-1][1].step_s) if tiers else up.step_s
        m = -(-n // (r if n > r else k))  # units of the outermost crossed tier
        phases = 2 if kind == "all_reduce" else 1
        t = launch + phases * ((n - m) * step_in + (m - 1) * step_out) + bus_bytes(kind, s, n) / min(eff_bw)
        if kind == "all_reduce" and m > 2:  # NCCL's tree: a chain in each unit, a binary tree across units
            k_unit = -(-n // m)
            tree = launch + 2 * ((k_unit - 1) * step_in + math.ceil(math.log2(m)) * step_out)
            t = np.minimum(t, tree + bus_bytes(kind, s, n) / min(eff_bw))
        if not tiers and up.bulk_eff:  # inside one scale-up domain: NCCL picks the faster protocol
            t = np.minimum(t, up.bulk_s + phases * (n - 1) * up.bulk_step_s
                           + bus_bytes(kind, s, n) / (bw_up * up.bulk_eff))
    t = np.where((s > 0) & (n > 1), t, 0.0)
    return float(t) if np.ndim(message_bytes) == 0 else t


__all__ = ["CollectiveKind", "KINDS", "TierFit", "FAMILY_FALLBACK", "FITS_SOURCE", "bus_bytes", "ring_steps",
           "ring_time_s", "placement", "collective_time_s", "comm_constants"]
