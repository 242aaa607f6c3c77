"""Fit the communication constants of planner/cost/comm.py to measured NCCL times.

Data: ``<root>/<machine>/{all_reduce,send_recv}.csv`` (microsoft/vidur
data/profiling/network; the reference README allows calibrating on all rows):
median time in ms (``time_stats.<op>.median``) by ``size`` (bytes),
``num_workers`` and ``devices_per_node`` (fewer per node than workers = several
nodes). Machines and the hardware specs used for them:

    a100_dgx               a100-sxm-80gb.yaml  (DGX A100: NVSwitch 8, HDR 200 Gb/s per GPU)
    h100_dgx               h100-sxm.yaml       (DGX H100: NVSwitch 8, NDR 400 Gb/s per GPU)
    a100_pairwise_nvlink   a100-pcie-80gb.yaml with 4 GPUs per node (NVLink bridge pairs, PCIe Gen4)
    h100_pairwise_nvlink   h100-pcie.yaml      with 4 GPUs per node (NVLink bridge pairs, PCIe Gen5)

Each row is placed with ``ranks_per_domain = min(devices_per_node, domain)`` and
``ranks_per_node = devices_per_node``. Per (family, tier) the model is linear in
(launch_s, step_s, 1/eff) once the tier is the bottleneck, so each is fitted by
iteratively reweighted least squares on the relative error (~ minimising the
MAPE over all sizes), coefficients kept >= 0; see the comment above ``_FITS`` in
comm.py for which rows feed which tier. Efficiencies are capped at 1: vidur
times the NCCL kernels of rank 0 only (kineto), and for send_recv the sender's
kernel can finish faster than the link allows (A100 NVSwitch and the NVLink
bridges fit 1.04 and 1.2 uncapped). The MAPE is then computed with
``collective_time_s`` itself. The pairwise machines' send_recv across nodes
(devices_per_node 1; an unknown NIC, and the same file for both machines) is
reported, not fitted.

Usage: python scripts/fit_comm.py [COLLECTIVES_DIR]
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from planner.cost.comm import TierFit, bus_bytes, collective_time_s, ring_steps  # noqa: E402
from planner.specs.hardware import System  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "reference" / "collectives"
MIB = 2**20
# NVSwitch all_reduce rows at least this large fit the bulk (Simple) protocol form: from here
# up the measured bus bandwidth keeps rising with size (A100 8 GPUs: 125 GB/s at 16-32 MiB,
# 174 GB/s at 64 MiB), which one latency + bandwidth line over all sizes cannot follow.
BULK_MIN_BYTES = 16 * MIB

# machine -> (spec file, accelerators per node in the measured machine, or None to keep the spec's)
MACHINES = {
    "a100_dgx": ("a100-sxm-80gb", None),
    "h100_dgx": ("h100-sxm", None),
    "a100_pairwise_nvlink": ("a100-pcie-80gb", 4),
    "h100_pairwise_nvlink": ("h100-pcie", 4),
}
# Used only when a spec file is missing: (family, per node, domain, kind, NVLink B/s, NIC B/s, PCIe B/s).
_FALLBACK_SPECS = {
    "a100-sxm-80gb": ("ampere", 8, 8, "nvswitch", 300e9, 25e9, 32e9),
    "h100-sxm": ("hopper", 8, 8, "nvswitch", 450e9, 50e9, 64e9),
    "a100-pcie-80gb": ("ampere", 8, 2, "nvlink_bridge", 300e9, 12.5e9, 32e9),
    "h100-pcie": ("hopper", 8, 2, "nvlink_bridge", 300e9, 25e9, 64e9),
}


def load_system(name: str, per_node: int | None) -> System:
    path = ROOT / "hardware_specs" / f"{name}.yaml"
    if path.exists():
        system = System.model_validate(yaml.safe_load(path.read_text()))
        # The reference clusters (vidur's) are modelled by the fitted constants, not by a
        # spec's own measured network efficiency (that is another cluster's measurement).
        system = system.model_copy(update={"node": system.node.model_copy(update={"network_efficiency": None})})
    else:
        fam, apn, dom, kind, up, nic, pcie = _FALLBACK_SPECS[name]
        system = System.model_validate({
            "name": name, "sources": ["datasheet facts (fallback in scripts/fit_comm.py)"],
            "accelerator": {"name": name, "vendor": "nvidia", "family": fam, "memory_bytes": 80e9,
                            "hbm_bandwidth_bytes_per_s": 2e12, "peak_flops": {"bf16": 312e12}, "tdp_w": 400},
            "node": {"accelerators_per_node": apn, "scale_up_domain": dom, "scale_up_kind": kind,
                     "scale_up_bandwidth_bytes_per_s": up, "scale_up_latency_s": 3e-6,
                     "nic_bandwidth_bytes_per_s": nic, "network_latency_s": 5e-6,
                     "pcie_bandwidth_bytes_per_s": pcie, "host_memory_bytes": 1e12}})
    if per_node is not None:
        system = system.model_copy(update={"node": system.node.model_copy(update={"accelerators_per_node": per_node})})
    return system


def load_rows(root: Path, machine: str, op: str) -> dict[str, np.ndarray]:
    """Columns n, per_node, size (bytes), t (s) of one CSV."""
    cols: dict[str, list] = {"n": [], "per_node": [], "size": [], "t": []}
    with open(root / machine / f"{op}.csv", newline="") as f:
        for row in csv.DictReader(f):
            cols["n"].append(int(row["num_workers"]))
            cols["per_node"].append(int(row["devices_per_node"]))
            cols["size"].append(float(row["size"]))
            cols["t"].append(float(row[f"time_stats.{op}.median"]) * 1e-3)
    return {k: np.asarray(v) for k, v in cols.items()}


def predict(rows: dict[str, np.ndarray], op: str, system: System, fits=None) -> np.ndarray:
    out = np.empty_like(rows["t"])
    for n, r in {(int(a), int(b)) for a, b in zip(rows["n"], rows["per_node"])}:
        m = (rows["n"] == n) & (rows["per_node"] == r)
        k = min(r, system.node.scale_up_domain)
        out[m] = collective_time_s(op, rows["size"][m], n, system, ranks_per_domain=k, ranks_per_node=r, fits=fits)
    return out


def mape(pred: np.ndarray, t: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - t) / t)) if len(t) else float("nan")


def irls(X: np.ndarray, y: np.ndarray, t: np.ndarray, iters: int = 60) -> np.ndarray:
    """Non-negative b minimising ~ sum |X b - y| / t (IRLS for the relative L1 error)."""
    active = list(range(X.shape[1]))
    while True:
        w = 1.0 / t
        for _ in range(iters):
            b, *_ = np.linalg.lstsq(X[:, active] * w[:, None], y * w, rcond=None)
            rel = np.abs(X[:, active] @ b - y) / t
            w = 1.0 / (t * np.sqrt(np.maximum(rel, 1e-3)))
        if (b >= 0).all() or len(active) == 1:
            out = np.zeros(X.shape[1])
            out[active] = np.maximum(b, 0)
            return out
        active.pop(int(np.argmin(b)))


def select(rows: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[mask] for k, v in rows.items()}


def steps_and_bus(rows, op: str):
    st = np.array([ring_steps(op, int(n)) for n in rows["n"]], dtype=float)
    bb = np.array([bus_bytes(op, s, int(n)) for s, n in zip(rows["size"], rows["n"])])
    return st, bb


def fit(root: Path) -> dict[tuple[str, str], TierFit]:
    fits: dict[tuple[str, str], TierFit] = {}
    data = {(m, op): load_rows(root, m, op) for m in MACHINES for op in ("all_reduce", "send_recv")}
    sys_ = {m: load_system(*MACHINES[m]) for m in MACHINES}
    one = np.ones

    def p2p(rows, bw):
        x = rows["size"] / bw
        b = irls(np.stack([one(len(x)), x], 1), rows["t"], rows["t"])
        if b[1] < 1:  # faster than the link: the sender's kernel time undercounts; hold eff at 1
            b = [irls(one((len(x), 1)), rows["t"] - x, rows["t"])[0], 1.0]
        return dict(p2p_s=b[0], p2p_eff=1 / b[1])

    for fam, dgx, pair in (("ampere", "a100_dgx", "a100_pairwise_nvlink"),
                           ("hopper", "h100_dgx", "h100_pairwise_nvlink")):
        node = sys_[dgx].node
        # scale-up NVSwitch: all_reduce on one node, send_recv between 2 GPUs of one node
        ar = data[dgx, "all_reduce"]
        ar = select(ar, ar["n"] == ar["per_node"])
        st, bb = steps_and_bus(ar, "all_reduce")
        b = irls(np.stack([one(len(st)), st, bb / node.scale_up_bandwidth_bytes_per_s], 1), ar["t"], ar["t"])
        # the bulk (Simple) protocol: the same rows from BULK_MIN_BYTES up, where NCCL's tuner takes it
        big = select(ar, ar["size"] >= BULK_MIN_BYTES)
        stb, bbb = steps_and_bus(big, "all_reduce")
        bulk = irls(np.stack([one(len(stb)), stb, bbb / node.scale_up_bandwidth_bytes_per_s], 1), big["t"], big["t"])
        sr = data[dgx, "send_recv"]
        nvs = TierFit(bus_eff=1 / b[2], launch_s=b[0], step_s=b[1],
                      **p2p(select(sr, sr["per_node"] == 2), node.scale_up_bandwidth_bytes_per_s),
                      bulk_eff=1 / bulk[2], bulk_s=bulk[0], bulk_step_s=bulk[1])
        fits[fam, "nvswitch"] = nvs
        net_p2p = p2p(select(sr, sr["per_node"] == 1), node.nic_bandwidth_bytes_per_s)
        if fam == "ampere":  # network: all_reduce over m nodes; the ring gets r NICs per node
            ar = data[dgx, "all_reduce"]
            ar = select(ar, ar["n"] > ar["per_node"])
            _, bb = steps_and_bus(ar, "all_reduce")
            m = ar["n"] // ar["per_node"]
            inner = nvs.launch_s + 2 * (ar["n"] - m) * nvs.step_s
            x = bb / (ar["per_node"] * node.nic_bandwidth_bytes_per_s)
            b = irls(np.stack([2 * (m - 1), x], 1), ar["t"] - inner, ar["t"])
            fits[fam, "network"] = TierFit(bus_eff=1 / b[1], launch_s=nvs.launch_s, step_s=b[0], **net_p2p)
        else:  # no multi-node all_reduce: scale hopper's p2p by ampere's collective / p2p ratios
            a = fits["ampere", "network"]
            fits[fam, "network"] = TierFit(bus_eff=net_p2p["p2p_eff"] * a.bus_eff / a.p2p_eff, launch_s=nvs.launch_s,
                                           step_s=a.step_s * net_p2p["p2p_s"] / a.p2p_s, **net_p2p)
        # NVLink bridge pairs: all_reduce on the 2 bridged GPUs (step_s taken from NVSwitch)
        pnode = sys_[pair].node
        ar = data[pair, "all_reduce"]
        ar2 = select(ar, ar["n"] == 2)
        st, bb = steps_and_bus(ar2, "all_reduce")
        X = np.stack([one(len(st)), bb / pnode.scale_up_bandwidth_bytes_per_s], 1)
        b = irls(X, ar2["t"] - st * nvs.step_s, ar2["t"])
        sr = data[pair, "send_recv"]
        bridge = TierFit(bus_eff=1 / b[1], launch_s=b[0], step_s=nvs.step_s,
                         **p2p(select(sr, sr["per_node"] == 2), pnode.scale_up_bandwidth_bytes_per_s))
        fits[fam, "nvlink_bridge"] = bridge
        # PCIe between the pairs: all_reduce on 4 GPUs = 2 pairs, 2 hops per phase on the bridge, 1 on PCIe
        ar4 = select(ar, ar["n"] == 4)
        _, bb = steps_and_bus(ar4, "all_reduce")
        inner = bridge.launch_s + 2 * 2 * bridge.step_s
        b = irls(np.stack([2 * one(len(bb)), bb / pnode.pcie_bandwidth_bytes_per_s], 1), ar4["t"] - inner, ar4["t"])
        fits[fam, "pcie"] = TierFit(bus_eff=1 / b[1], launch_s=bridge.launch_s, step_s=b[0],
                                    p2p_eff=1 / b[1], p2p_s=bridge.launch_s + b[0])
    return fits


def _g(x: float) -> str:
    return f"{x:.3g}"


def report(root: Path, fits) -> dict[str, float]:
    """Print the MAPE tables; return {name: MAPE} for the headline numbers."""
    out: dict[str, float] = {}
    all_p, all_t, every_p, every_t = [], [], [], []
    print(f"\n{'machine':22s} {'op':10s} {'(n, per node)':14s} {'MAPE>=1MiB':>10s} {'MAPE all':>9s} rows")
    for machine, spec in MACHINES.items():
        system = load_system(*spec)
        for op in ("all_reduce", "send_recv"):
            rows = load_rows(root, machine, op)
            pred = predict(rows, op, system, fits)
            big = rows["size"] >= MIB
            groups = sorted({(int(a), int(b)) for a, b in zip(rows["n"], rows["per_node"])})
            for g in groups:
                m = (rows["n"] == g[0]) & (rows["per_node"] == g[1])
                unfitted = "pairwise" in machine and op == "send_recv" and g[1] == 1
                note = "  (2 nodes, NIC unknown: not fitted)" if unfitted else ""
                print(f"{machine:22s} {op:10s} {str(g):14s} {mape(pred[m & big], rows['t'][m & big]):10.1%} "
                      f"{mape(pred[m], rows['t'][m]):9.1%} {m.sum()}{note}")
            line_big, line_all = mape(pred[big], rows["t"][big]), mape(pred, rows["t"])
            print(f"{machine:22s} {op:10s} {'all':14s} {line_big:10.1%} {line_all:9.1%} {len(pred)}")
            out[f"{machine}/{op}/>=1MiB"], out[f"{machine}/{op}/all"] = line_big, line_all
            if op == "all_reduce" and machine.endswith("_dgx"):
                all_p.append(pred[big]), all_t.append(rows["t"][big])
                every_p.append(pred), every_t.append(rows["t"])
    out["dgx/all_reduce/>=1MiB"] = mape(np.concatenate(all_p), np.concatenate(all_t))
    out["dgx/all_reduce/all"] = mape(np.concatenate(every_p), np.concatenate(every_t))
    print(f"\nall_reduce, all DGX rows, messages >= 1 MiB: MAPE {out['dgx/all_reduce/>=1MiB']:.1%} (target <= 20%); "
          f"all sizes: {out['dgx/all_reduce/all']:.1%}")
    return out


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else DEFAULT_DATA
    if not (root / "a100_dgx" / "all_reduce.csv").exists():
        print(f"error: no collectives data under {root} (expected a100_dgx/all_reduce.csv ...)", file=sys.stderr)
        return 2
    fits = fit(root)
    print("# paste into planner/cost/comm.py")
    print("_FITS: dict[tuple[str, str], TierFit] = {")
    for (fam, tier), f in fits.items():
        bulk = (f", bulk_eff={_g(f.bulk_eff)}, bulk_s={_g(f.bulk_s)}, bulk_step_s={_g(f.bulk_step_s)}"
                if f.bulk_eff else "")
        print(f'    ("{fam}", "{tier}"): TierFit(bus_eff={_g(f.bus_eff)}, launch_s={_g(f.launch_s)}, '
              f"step_s={_g(f.step_s)}, p2p_eff={_g(f.p2p_eff)}, p2p_s={_g(f.p2p_s)}{bulk}),")
    print("}")
    rounded = {key: TierFit(**{k: (None if v is None else float(_g(v))) for k, v in vars(f).items()})
               for key, f in fits.items()}
    report(root, rounded)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
