"""Plans you can trust (issue 10): random valid searches, every answer through the gate and back.

Run: ``python benchmarks/bench_plan_roundtrip.py [--train 100] [--serve 100] [--seed 0] [--cli 3]``.

For each kind, seeded random jobs are drawn from the catalog (models, GPU types, GPU counts, lengths, SLOs,
rates) until ``--train`` / ``--serve`` searches have returned an answer (jobs the planner refuses with a
one-line input error, e.g. a model that fits nowhere or an SLO no layout meets, are counted apart). The
public API (:func:`planner.search_train`, :func:`planner.search_serve`) passes every answer through the gate
before returning; this script then

* round-trips each document: JSON text -> :func:`planner.plans.check` -> every export target of its kind
  (training: megatron, torchtitan, deepspeed, slurm; serving: vllm, sglang, trtllm, k8s), none may raise;
* sends the first ``--cli`` documents of each kind through the real CLI as subprocesses (``planner check``,
  then ``planner export --to T`` for every target), each must exit 0;
* mutates copies (a degree, the GPU count, the memory peak) and asserts the gate refuses every one.

It prints the counts; it exits 1 if any round-trip failed or any mutation was accepted.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import planner
from planner.export import EXPORTERS, export
from planner.export.serving import TARGETS as SERVING_TARGETS
from planner.export.serving import export_serving
from planner.plans import PlanCheckError, check

TRAIN_MODELS = ("llama-3.1-8b", "llama-3.1-70b", "qwen3-8b", "qwen3-32b", "mistral-7b-v0.1", "llama-2-7b",
                "gpt-7.5b", "gpt-18b", "mixtral-8x7b", "qwen3-30b-a3b", "gpt-oss-20b")
TRAIN_GPUS = ("h100", "h200", "a100-sxm-80gb", "b200", "h800", "mi300x", "gb200-nvl72")
SERVE_MODELS = ("llama-3.1-8b", "qwen3-8b", "qwen3-32b", "llama-3.1-70b", "mistral-7b-v0.1", "mixtral-8x7b",
                "qwen3-30b-a3b", "gpt-oss-20b", "gpt-oss-120b", "qwen3-235b-a22b")
SERVE_GPUS = ("h100", "h200", "b200", "a100-sxm-80gb", "gb200-nvl72", "l40s", "mi300x")
TRAINING_TARGETS = tuple(EXPORTERS)


def train_job(rng: random.Random) -> dict[str, Any]:
    """A random training search (arguments of :func:`planner.search_train`)."""
    model, gpu = rng.choice(TRAIN_MODELS), rng.choice(TRAIN_GPUS)
    m, s = planner.get_model(model), planner.get_system(gpu)
    seq = min(rng.choice((2048, 4096, 8192)), m.max_seq_len)
    gpus = rng.choice((8, 16, 32, 64, 128))
    batch_tokens = rng.choice((1, 2, 4)) * 2**20
    dtypes = ("bf16", "fp8") if s.accelerator.has_native("fp8") and rng.random() < 0.3 else ("bf16",)
    return dict(model=model, gpu=gpu, gpus=gpus, seq_len=seq, global_batch=max(1, batch_tokens // seq), top=3,
                dtypes=dtypes, refine=rng.random() < 0.5)


def serve_job(rng: random.Random) -> dict[str, Any]:
    """A random serving search (arguments of :func:`planner.search_serve`)."""
    model, gpu = rng.choice(SERVE_MODELS), rng.choice(SERVE_GPUS)
    m = planner.get_model(model)
    isl, osl = rng.choice((256, 1000, 2000, 4000, 8000)), rng.choice((64, 200, 500, 1000, 2000))
    longest = isl + osl
    if rng.random() < 0.3:  # a trace-like spread: the longest request is longer than the mean one
        longest = min(m.max_seq_len, int(longest * rng.uniform(1.0, 3.0)))
    return dict(model=model, gpu=gpu, gpus=rng.choice((8, 16, 32, 64)), isl=isl, osl=osl,
                ttft_ms=rng.choice((300, 500, 1000, 2000, 5000)), tpot_ms=rng.choice((15, 20, 30, 50, 100)),
                rate=rng.choice((None, None, 1.0, 5.0, 20.0)), max_request_tokens=longest,
                backend=rng.choice(("trtllm", "vllm", "sglang")))


def _mutations(kind: str) -> list[tuple[str, Callable[[dict[str, Any]], None]]]:
    """(what, how) pairs that make a document wrong in one place: a degree, the GPU count, the memory peak."""
    if kind == "training":
        return [
            ("degree", lambda d: d["plan"].update(dp=d["plan"]["dp"] + 1)),
            ("gpu count", lambda d: d["system"].update(num_gpus=d["system"]["num_gpus"] * 2)),
            ("memory", lambda d: d["estimate"]["memory"].update(peak_bytes=d["estimate"]["memory"]["peak_bytes"] * 1.05)),
        ]
    return [
        ("degree", lambda d: d["pools"][0]["plan"].update(tp=d["pools"][0]["plan"]["tp"] * 2)),
        ("gpu count", lambda d: d.update(gpus=d["gpus"] + 1)),
        ("memory", lambda d: d["pools"][0]["predicted"].update(peak_bytes=d["pools"][0]["predicted"]["peak_bytes"] * 1.05)),
    ]


def roundtrip(doc: dict[str, Any], kind: str, counts: Counter, failures: list[str]) -> None:
    """JSON text -> check -> every export target; then each mutation must be refused."""
    try:
        typed = check(json.loads(json.dumps(doc)), where=f"{kind} document")
        for target in (TRAINING_TARGETS if kind == "training" else SERVING_TARGETS):
            text = export(typed, target) if kind == "training" else export_serving(typed, target)
            if not text.strip():
                raise RuntimeError(f"empty {target} export")
            counts[f"{kind} exports ok"] += 1
        counts[f"{kind} round-trips ok"] += 1
    except Exception as exc:  # a round-trip must not fail at all
        failures.append(f"{kind} round-trip: {type(exc).__name__}: {exc}")
    for what, mutate in _mutations(kind):
        bad = copy.deepcopy(doc)
        mutate(bad)
        try:
            check(bad, where=f"mutated {kind} document")
        except PlanCheckError:
            counts[f"{kind} mutations refused"] += 1
        except Exception as exc:
            failures.append(f"{kind} mutation ({what}) raised {type(exc).__name__}: {exc}")
        else:
            failures.append(f"{kind} mutation ({what}) was accepted")
        counts[f"{kind} mutations"] += 1


def cli_roundtrip(doc: dict[str, Any], kind: str, counts: Counter, failures: list[str], tmp: Path) -> None:
    """``planner check`` and ``planner export --to T`` (every target) on the document saved to a file."""
    path = tmp / f"{kind}-{counts[f'{kind} cli documents']}.json"
    path.write_text(json.dumps(doc))
    counts[f"{kind} cli documents"] += 1
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    runs = [["check", str(path)]] + [["export", str(path), "--to", t]
                                     for t in (TRAINING_TARGETS if kind == "training" else SERVING_TARGETS)]
    for args in runs:
        r = subprocess.run([sys.executable, "-m", "planner", *args], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            failures.append(f"planner {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
        else:
            counts[f"{kind} cli runs ok"] += 1
        counts[f"{kind} cli runs"] += 1


def run(n_train: int, n_serve: int, seed: int = 0, cli: int = 3, max_tries: int = 6) -> tuple[Counter, list[str]]:
    """The whole measurement (module docstring): the counts and the failures (empty when all held)."""
    rng = random.Random(seed)
    counts: Counter = Counter()
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for kind, n, draw, search in (("training", n_train, train_job, planner.search_train),
                                      ("serving", n_serve, serve_job, planner.search_serve)):
            t0 = time.perf_counter()
            tries = 0
            while counts[f"{kind} searches answered"] < n and tries < max_tries * n:
                tries += 1
                job = draw(rng)
                counts[f"{kind} searches"] += 1
                try:
                    res = search(**job)
                except planner.PlannerError:  # the job itself has no answer (fits nowhere, SLO unmeetable)
                    counts[f"{kind} searches refused (input)"] += 1
                    continue
                except Exception as exc:  # GateFailure or any bug
                    failures.append(f"{kind} search {job}: {type(exc).__name__}: {exc}")
                    continue
                counts[f"{kind} searches answered"] += 1
                docs = [res.plan_document] if kind == "training" else list((res.plan_documents or {}).values())
                for doc in docs:
                    counts[f"{kind} documents passed the gate"] += 1
                    roundtrip(doc, kind, counts, failures)
                    if counts[f"{kind} cli documents"] < cli:
                        cli_roundtrip(doc, kind, counts, failures, tmp)
            counts[f"{kind} seconds"] = round(time.perf_counter() - t0, 1)  # type: ignore[assignment]
    return counts, failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=100, help="training searches that must answer")
    ap.add_argument("--serve", type=int, default=100, help="serving searches that must answer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cli", type=int, default=3, help="documents of each kind also sent through the CLI")
    a = ap.parse_args(argv)
    counts, failures = run(a.train, a.serve, a.seed, a.cli)
    width = max(map(len, counts))
    for key in sorted(counts, key=lambda k: (not k.startswith("training"), k)):
        print(f"{key:<{width}}  {counts[key]}")
    for f in failures[:20]:
        print("FAIL", f)
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
