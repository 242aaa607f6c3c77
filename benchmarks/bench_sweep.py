"""The issue-14 sweep: 1,000 training searches (5 models x 4 GPU types x 10 GPU counts x 5 sequence lengths),
with the local process pool and with Ray on a local runtime, on 2 cores.

Run: ``python benchmarks/bench_sweep.py [--workers N] [--refine] [--keep DIR]``. Prints, for each backend, the
wall time of the whole ``planner sweep ... --json --timings`` process (interpreter start, Ray's start-up for
Ray) and the sweep's own ``elapsed_s``, then whether the two output files are byte-identical and the rows by
status. ``--refine`` runs the layer-partition MILP on every best plan (``planner train``'s default; the grid
below turns it off, as a sweep over many jobs would); ``--keep DIR`` leaves the grid and both outputs there.

Jobs: Llama-3.1-8B, Llama-3.1-70B, Qwen3-32B, Mixtral-8x7B and Qwen3-30B-A3B (the last two MoE) on H100, H200,
A100 (80 GB) and B200; 8 ... 4,096 GPUs (powers of two); sequences of 2K ... 32K tokens; a 4M-token batch
(2,048 ... 128 sequences), 1T tokens to train, objective time. Jobs that cannot fit (a 70B model on 8 A100)
or cannot use the GPUs (128 sequences on 4,096 GPUs without enough parallel degrees) are rows with status
``infeasible`` and the search's one-line reason.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLANNER = [sys.executable, "-m", "planner"]

GRID = """\
models: [llama-3.1-8b, llama-3.1-70b, qwen3-32b, mixtral-8x7b, qwen3-30b-a3b]
gpus: [h100, h200, a100, b200]
counts: [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
seq_lens: [2048, 4096, 8192, 16384, 32768]
objectives: [time]
batch_tokens: 4M
tokens: 1T
refine: {refine}
"""


def run(grid: Path, out: Path, *extra: str) -> tuple[float, dict]:
    """(wall seconds, the --json summary) of one ``planner sweep`` process."""
    t0 = time.perf_counter()
    proc = subprocess.run([*PLANNER, "sweep", str(grid), "--out", str(out), "--json", "--timings", *extra],
                          cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"planner sweep {' '.join(extra)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return wall, json.loads(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="local processes / Ray CPUs [default: 2]")
    ap.add_argument("--refine", action="store_true", help="run the partition MILP on every best plan")
    ap.add_argument("--keep", type=Path, help="leave the grid and the outputs in this folder")
    args = ap.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    folder.mkdir(parents=True, exist_ok=True)
    grid = folder / "grid.yaml"
    grid.write_text(GRID.format(refine="true" if args.refine else "false"))
    w = str(args.workers)
    results = {}
    for name, extra in (("local pool", ("--workers", w)), ("Ray, local runtime", ("--ray", "--workers", w))):
        out = folder / f"{name.split()[0].lower().strip(',')}.csv"
        out.unlink(missing_ok=True)
        wall, summary = run(grid, out, *extra)
        results[name] = (out, wall, summary)
        print(f"{name:<20} {summary['jobs']:,} jobs on {args.workers} workers: {wall:6.1f} s wall "
              f"(sweep {summary['elapsed_s']:.1f} s; {wall / summary['jobs'] * 1e3:.0f} ms a job)", flush=True)
    (pool_out, *_), (ray_out, *_) = results.values()
    same = pool_out.read_bytes() == ray_out.read_bytes()
    print(f"rows identical (byte for byte): {'yes' if same else 'NO'}")
    with open(pool_out, newline="") as f:
        rows = list(csv.DictReader(f))
    print("rows by status:", dict(sorted(Counter(r["status"] for r in rows).items())))
    ok = [r for r in rows if r["status"] == "ok"]
    if ok:
        best = max(ok, key=lambda r: float(r["mfu"]))
        print(f"highest MFU: {best['model']} on {best['num_gpus']} x {best['gpu']}, seq {best['seq_len']}: "
              f"{100 * float(best['mfu']):.1f} %")
    if args.keep is None:
        shutil.rmtree(folder)
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
