"""Predicted vs measured on the reference suites (``../shared/reference``).

``validate_training(reference_dir)`` replays every row of
``training/megatron_2021_weak_scaling.csv`` (Narayanan et al., SC'21, Table 1)
and ``training/megatron_2021_training_days.csv`` (Table 2) through the
training estimator and compares per-GPU TFLOP/s counted the paper's way
(Eq. 3, recomputation included) and training days.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from pydantic import BaseModel

from ..cost.training import TrainingPlan, estimate_training
from ..specs.hardware import System
from ..specs.model import ModelSpec

DEFAULT_REFERENCE = Path("../shared/reference")

#: Micro-batch size and interleaving of each Table 1 run, from the paper's
#: artifact (NVIDIA/Megatron-LM ``examples/sc21/run_table_1.sh``: MBS and
#: ``--num-layers-per-virtual-pipeline-stage``). Keyed by (hidden, layers).
PUBLISHED_TABLE1_SETTINGS: dict[tuple[int, int], tuple[int, int]] = {
    (2304, 24): (16, 1),
    (3072, 30): (16, 1),
    (4096, 36): (16, 1),
    (6144, 40): (8, 1),
    (8192, 48): (4, 1),
    (10240, 60): (2, 3),
    (12288, 80): (2, 2),
    (16384, 96): (1, 2),
    (20480, 105): (1, 3),
    (25600, 128): (1, 1),
}

#: Table 2 plans (Narayanan et al. 2021, sec. 5.2 / Fig. 10): PTD-P with
#: (t, p) = (8, 8) for GPT-3 175B at global batch 1536 and (8, 35) for 530B at
#: global batch 2240 (micro-batch 1); ZeRO-3 without model parallelism.
TABLE2_SHAPES = {174.6: dict(hidden=12288, layers=96, heads=96, tp=8, pp=8, gbs=1536),
                 529.6: dict(hidden=20480, layers=105, heads=128, tp=8, pp=35, gbs=2240)}

SEQ_LEN, VOCAB = 2048, 51200


class TrainingRow(BaseModel):
    name: str
    gpus: int
    tp: int
    pp: int
    vpp: int
    micro_batch: int
    global_batch: int
    published: float
    predicted: float
    error_pct: float
    fits: bool


class TrainingValidation(BaseModel):
    table1: list[TrainingRow]
    table2: list[TrainingRow]
    table1_mape_pct: float
    table1_max_abs_error_pct: float
    table2_mape_pct: float
    table2_max_abs_error_pct: float
    layouts: list["LayoutJob"] = []


def gpt_model(hidden: int, layers: int, heads: int, name: str | None = None) -> ModelSpec:
    """A Megatron GPT (GeLU MLP 4h, learned positions, tied embeddings, dropout 0.1)."""
    return ModelSpec(
        name=name or f"gpt-h{hidden}-l{layers}", model_type="gpt2", hidden_size=hidden, num_layers=layers,
        num_heads=heads, num_kv_heads=heads, head_dim=hidden // heads, intermediate_size=4 * hidden,
        vocab_size=VOCAB, max_seq_len=SEQ_LEN, tie_embeddings=True, gated_mlp=False, norm="layernorm",
        learned_positions=True, qkv_bias=True, linear_bias=True, dropout=0.1,
    )


def paper_flops_per_step(hidden: int, layers: int, batch: int, seq: int = SEQ_LEN, vocab: int = VOCAB) -> float:
    """Narayanan et al. 2021, Eq. 3: ``96 B s l h^2 (1 + s/(6h) + V/(16 l h))``."""
    return 96.0 * batch * seq * layers * hidden**2 * (1 + seq / (6 * hidden) + vocab / (16 * layers * hidden))


def _megatron2021_plan(tp: int, pp: int, dp: int, mbs: int, vpp: int, gbs: int, zero: int = 0) -> TrainingPlan:
    """How the SC'21 runs were configured: fp16, full recomputation, no sequence
    parallelism (it came in 2022), unfused softmax attention with dropout,
    torch DDP (overlapped) without pipelining, Megatron's local DDP otherwise,
    fp16 gradients (the artifact's CONFIG.sh sets --fp16 without
    --accumulate-allreduce-grads-in-fp32). The ZeRO-3 baseline is DeepSpeed's
    of 2021: one collective per parameter tensor, not overlapped."""
    return TrainingPlan(
        tp=tp, pp=pp, vpp=vpp, dp=dp, micro_batch=mbs, global_batch=gbs, seq_len=SEQ_LEN,
        recompute="full", sp=False, zero=zero, dtype="fp16", attention="unfused", overlap_grad_reduce=(pp == 1 or zero == 3),
        grad_reduce_in_fp32=False, zero3_gather="tensor",
    )


def _pick_settings(model: ModelSpec, system: System, tp: int, pp: int, dp: int, gbs: int) -> tuple[int, int]:
    """For a run whose micro-batch and interleaving are not published: the
    fastest (micro-batch, vpp) that fits, as a tuned run would use."""
    best: tuple[float, int, int] | None = None
    for mbs in (1, 2, 4, 8, 16):
        if gbs % (mbs * dp):
            continue
        for vpp in (1, 2, 3, 4, 5, 6, 8):
            if pp == 1 and vpp > 1 or model.num_layers % (pp * vpp):
                continue
            m = gbs // (mbs * dp)
            if vpp > 1 and m % pp:
                continue
            est = estimate_training(model, system, _megatron2021_plan(tp, pp, dp, mbs, vpp, gbs))
            if est.fits and (best is None or est.step_time_s < best[0]):
                best = (est.step_time_s, mbs, vpp)
    return (best[1], best[2]) if best else (1, 1)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def _mape(rows: list[TrainingRow]) -> tuple[float, float]:
    if not rows:
        return math.nan, math.nan
    errs = [abs(r.error_pct) for r in rows]
    return sum(errs) / len(errs), max(errs)


def validate_training(reference_dir: str | Path = DEFAULT_REFERENCE, system: System | None = None) -> TrainingValidation:
    """Predicted vs published per-GPU TFLOP/s (Table 1) and training days (Table 2)."""
    from ..catalog import get_system

    ref = Path(reference_dir) / "training"
    t1_path, t2_path = ref / "megatron_2021_weak_scaling.csv", ref / "megatron_2021_training_days.csv"
    if not t1_path.is_file():
        raise FileNotFoundError(f"{t1_path} not found (give the reference folder with --reference)")
    sysm = system or get_system("a100-sxm-80gb")
    table1: list[TrainingRow] = []
    for r in _read_csv(t1_path):
        h, layers, heads = int(r["hidden"]), int(r["layers"]), int(r["heads"])
        tp, pp, gpus, gbs = int(r["tp"]), int(r["pp"]), int(r["gpus"]), int(r["global_batch"])
        dp = gpus // (tp * pp)
        model = gpt_model(h, layers, heads, name=f"gpt-{r['params_billion']}b")
        mbs, vpp = PUBLISHED_TABLE1_SETTINGS.get((h, layers)) or _pick_settings(model, sysm, tp, pp, dp, gbs)
        est = estimate_training(model, sysm, _megatron2021_plan(tp, pp, dp, mbs, vpp, gbs), gpus)
        pred = paper_flops_per_step(h, layers, gbs) / (est.step_time_s * gpus) / 1e12
        pub = float(r["achieved_tflops_per_gpu"])
        table1.append(TrainingRow(name=model.name, gpus=gpus, tp=tp, pp=pp, vpp=vpp, micro_batch=mbs, global_batch=gbs,
                                  published=pub, predicted=pred, error_pct=100 * (pred - pub) / pub, fits=est.fits))
    table2: list[TrainingRow] = []
    if t2_path.is_file():
        for r in _read_csv(t2_path):
            p_b, gpus = float(r["params_billion"]), int(r["gpus"])
            shape = TABLE2_SHAPES.get(p_b)
            if shape is None:
                continue
            model = gpt_model(shape["hidden"], shape["layers"], shape["heads"], name=f"gpt-{p_b}b")
            if r["method"] == "zero3":
                tp = pp = 1
                gbs = shape["gbs"]
                plan = _megatron2021_plan(1, 1, gpus, max(1, gbs // gpus), 1, gbs, zero=3)
            else:
                tp, pp, gbs = shape["tp"], shape["pp"], shape["gbs"]
                plan = _megatron2021_plan(tp, pp, gpus // (tp * pp), 1, 1, gbs)
            est = estimate_training(model, sysm, plan, gpus)
            days = 300e9 / est.tokens_per_s / 86400
            pub = float(r["training_days_300b_tokens"])
            table2.append(TrainingRow(name=f"{r['method']} {model.name}", gpus=gpus, tp=tp, pp=pp, vpp=plan.vpp,
                                      micro_batch=plan.micro_batch, global_batch=gbs, published=pub, predicted=days,
                                      error_pct=100 * (days - pub) / pub, fits=est.fits))
    m1, x1 = _mape(table1)
    m2, x2 = _mape(table2)
    layouts_path = ref / LAYOUTS_CSV
    return TrainingValidation(table1=table1, table2=table2, table1_mape_pct=m1, table1_max_abs_error_pct=x1,
                              table2_mape_pct=m2, table2_max_abs_error_pct=x2,
                              layouts=validate_layouts(reference_dir) if layouts_path.is_file() else [])


# ---------------------------------------------------------------------------
# many layouts of one job (megatron_a100_layouts.csv): does the model rank them?
# ---------------------------------------------------------------------------

LAYOUTS_CSV = "megatron_a100_layouts.csv"

#: InfiniBand per GPU of the cluster the layouts were measured on: 800 Gb/s per
#: 8-GPU A100 node, half of Selene's 8x200 (shared/reference README, from the
#: VIA-Research/vTrain description of its ground-truth cluster).
LAYOUTS_NIC_BITS_PER_S = 100e9


def layouts_system(base: System | None = None) -> System:
    """The A100-80GB HGX spec with 100 Gb/s of InfiniBand per GPU (half of a DGX
    A100's), everything else as in ``a100-sxm-80gb.yaml``."""
    from ..catalog import get_system

    sysm = base or get_system("a100-sxm-80gb")
    node = sysm.node.model_copy(update={"nic_bandwidth_bytes_per_s": LAYOUTS_NIC_BITS_PER_S / 8})
    return sysm.model_copy(update={"node": node, "name": f"{sysm.name}-800g-ib-per-node"})


def layouts_plan(tp: int, pp: int, dp: int, mbs: int, gbs: int) -> TrainingPlan:
    """How the layouts were run (reference README): fp16, full recomputation,
    1F1B without interleaving, no sequence parallelism, unfused softmax
    attention, no distributed optimizer, and no gradient bucketing - the
    data-parallel all-reduce runs after the last backward. The measurements were
    taken with PyTorch 2.0.1 and CUDA 11.8 (vTrain's Docker image), i.e. a
    Megatron-LM of 2023, whose asynchronous tensor-parallel all-reduce is on
    whenever sequence parallelism is off (``async_tp_allreduce``; the 2021 runs
    of Table 1 predate it)."""
    return TrainingPlan(
        tp=tp, pp=pp, vpp=1, dp=dp, micro_batch=mbs, global_batch=gbs, seq_len=SEQ_LEN, recompute="full", sp=False,
        zero=0, dtype="fp16", attention="unfused", overlap_grad_reduce=False, grad_reduce_in_fp32=False,
        async_tp_allreduce=True,
    )


class LayoutRow(BaseModel):
    tp: int
    dp: int
    pp: int
    micro_batch: int
    measured_ms: float
    predicted_ms: float
    error_pct: float
    fits: bool  # the model's memory estimate (every layout was run, so all fit in reality)


class LayoutJob(BaseModel):
    name: str
    gpus: int
    global_batch: int
    rows: list[LayoutRow]
    mape_pct: float
    max_abs_error_pct: float
    spearman: float  # rank correlation of predicted and measured iteration times
    pick: str  # the layout the model ranks first
    measured_best: str  # the layout measured fastest
    regret_pct: float  # how much slower the model's pick measured than the measured best


def _ranks(xs: list[float]) -> list[float]:
    """Ranks from 1, ties sharing their mean rank."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation: the Pearson correlation of the ranks."""
    if len(a) != len(b) or len(a) < 2:
        return math.nan
    ra, rb = _ranks(a), _ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va, vb = sum((x - ma) ** 2 for x in ra), sum((y - mb) ** 2 for y in rb)
    return cov / math.sqrt(va * vb) if va > 0 and vb > 0 else math.nan


def _layout_label(r: LayoutRow) -> str:
    return f"t{r.tp} d{r.dp} p{r.pp} b{r.micro_batch}"


def validate_layouts(reference_dir: str | Path = DEFAULT_REFERENCE, system: System | None = None) -> list[LayoutJob]:
    """Every layout of ``training/megatron_a100_layouts.csv`` through the estimator
    (:func:`layouts_system`, :func:`layouts_plan`): per job the MAPE, Spearman's rank
    correlation and the measured regret of the model's first-ranked layout."""
    path = Path(reference_dir) / "training" / LAYOUTS_CSV
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (give the reference folder with --reference)")
    sysm = system or layouts_system()
    jobs: dict[tuple[str, int, int], list[LayoutRow]] = {}
    models: dict[tuple[str, int, int], ModelSpec] = {}
    for r in _read_csv(path):
        h, layers, heads = int(r["hidden"]), int(r["layers"]), int(r["heads"])
        tp, dp, pp, mbs, gbs = (int(r[k]) for k in ("tp", "dp", "pp", "micro_batch", "global_batch"))
        if int(r["seq_len"]) != SEQ_LEN:
            continue
        key = (r["params_b"], int(r["gpus"]), gbs)
        model = models.setdefault(key, gpt_model(h, layers, heads, name=f"gpt-{r['params_b']}b"))
        est = estimate_training(model, sysm, layouts_plan(tp, pp, dp, mbs, gbs), int(r["gpus"]))
        meas, pred = float(r["iteration_time_ms"]), est.step_time_s * 1e3
        jobs.setdefault(key, []).append(LayoutRow(tp=tp, dp=dp, pp=pp, micro_batch=mbs, measured_ms=meas,
                                                  predicted_ms=pred, error_pct=100 * (pred - meas) / meas,
                                                  fits=est.fits))
    out = []
    for (params, gpus, gbs), rows in jobs.items():
        errs = [abs(r.error_pct) for r in rows]
        pick = min(rows, key=lambda r: r.predicted_ms)
        best = min(rows, key=lambda r: r.measured_ms)
        out.append(LayoutJob(
            name=models[(params, gpus, gbs)].name, gpus=gpus, global_batch=gbs, rows=rows,
            mape_pct=sum(errs) / len(errs), max_abs_error_pct=max(errs),
            spearman=spearman([r.predicted_ms for r in rows], [r.measured_ms for r in rows]),
            pick=_layout_label(pick), measured_best=_layout_label(best),
            regret_pct=100 * (pick.measured_ms / best.measured_ms - 1),
        ))
    return out


TrainingValidation.model_rebuild()


# ---------------------------------------------------------------------------
# the training search against the published Table 1 plans
# ---------------------------------------------------------------------------

#: The technology of the SC'21 runs, fixed for both the published plan and the
#: search so that only the parallel layout differs: fp16, unfused attention, no
#: sequence parallelism, fp16 gradient reduction, full recomputation of every
#: layer, no distributed optimizer, equal layers per pipeline chunk.
TABLE1_SEARCH_BASE = dict(attention="unfused", sp=False, grad_reduce_in_fp32=False)


class SearchRow(BaseModel):
    name: str
    gpus: int
    global_batch: int
    published_plan: str
    published_step_s: float
    best_plan: str  # the search at the published micro-batch (only t, p and vpp chosen)
    best_step_s: float
    speedup_pct: float  # how much faster the planner's best is than the published plan
    published_rank: int | None  # 1-based rank of the published (t, p) among the planner's top plans
    accepted: bool  # best no slower, and the published (t, p) in the top 5 or within 5 %
    free_best_plan: str  # the search choosing the micro-batch too
    free_speedup_pct: float
    free_published_rank: int | None
    free_accepted: bool


def _label(p: TrainingPlan) -> str:
    return f"t{p.tp} p{p.pp} v{p.vpp} b{p.micro_batch}"


def validate_training_search(reference_dir: str | Path = DEFAULT_REFERENCE, system: System | None = None,
                             top: int = 5) -> list[SearchRow]:
    """For every Table 1 row: the search's best plan at the same GPU count and
    global batch vs the published (t, p) plan, both under one cost model; once
    at the published micro-batch (the (t, p, vpp) choice alone) and once with
    the micro-batch free."""
    from ..catalog import get_system
    from ..search.training import search_training

    path = Path(reference_dir) / "training" / "megatron_2021_weak_scaling.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (give the reference folder with --reference)")
    sysm = system or get_system("a100-sxm-80gb")
    rows = []
    for r in _read_csv(path):
        h, layers, heads = int(r["hidden"]), int(r["layers"]), int(r["heads"])
        tp, pp, gpus, gbs = int(r["tp"]), int(r["pp"]), int(r["gpus"]), int(r["global_batch"])
        model = gpt_model(h, layers, heads, name=f"gpt-{r['params_billion']}b")
        mbs, vpp = PUBLISHED_TABLE1_SETTINGS[(h, layers)]
        published = TrainingPlan(tp=tp, pp=pp, vpp=vpp, dp=gpus // (tp * pp), micro_batch=mbs, global_batch=gbs,
                                 seq_len=SEQ_LEN, recompute="full", zero=0, dtype="fp16", **TABLE1_SEARCH_BASE)
        pub = estimate_training(model, sysm, published, gpus)
        found = []
        for mbs_choice in ((mbs,), None):
            extra = {"micro_batches": mbs_choice} if mbs_choice else {}
            res = search_training(model, sysm, gpus, SEQ_LEN, gbs, top=top, dtypes=("fp16",), recompute=("full",),
                                  partial_recompute=False, zero_stages=(0,), base=TABLE1_SEARCH_BASE, refine=False,
                                  max_memory_fraction=1.0, even_layers=True, **extra)
            ranked = [res.best] + res.alternatives
            rank = next((i + 1 for i, e in enumerate(ranked) if (e.plan.tp, e.plan.pp) == (tp, pp)), None)
            speedup = 100 * (pub.step_time_s / res.best.step_time_s - 1)
            ok = res.best.step_time_s <= pub.step_time_s * (1 + 1e-9) and (rank is not None or speedup <= 5.0)
            found.append((res.best, speedup, rank, ok))
        (b1, s1, r1, ok1), (b2, s2, r2, ok2) = found
        rows.append(SearchRow(
            name=model.name, gpus=gpus, global_batch=gbs, published_plan=_label(published),
            published_step_s=pub.step_time_s, best_plan=_label(b1.plan), best_step_s=b1.step_time_s, speedup_pct=s1,
            published_rank=r1, accepted=ok1, free_best_plan=_label(b2.plan), free_speedup_pct=s2,
            free_published_rank=r2, free_accepted=ok2,
        ))
    return rows
