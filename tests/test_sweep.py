"""``planner sweep``: a grid of training jobs -> one row per job with its best plan (planner/sweep.py).

The rows are checked against :func:`planner.search_train` run on the same job and against closed forms
(time to train = tokens / tokens/s, cost = GPUs x $/GPU-h x hours, power = GPUs x TDP); the process pool,
the serial run and Ray give the same file; a rerun after a partial file runs only the missing jobs and
ends with the same bytes; bad grids are one line naming the key.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from cli_in_process import cli

import planner
import planner.sweep as sweep
from planner.sweep import COLUMN_NAMES, SweepError, load_grid, parse_grid, read_rows, run_sweep

#: 2 models x 2 GPU types x 2 counts x 1 sequence length x 2 objectives = 16 jobs (~3 s serial on one core);
#: llama-3.1-70b does not fit on 8 GPUs of either type (160.9 GB per GPU at least, with ZeRO-3 and full
#: recomputation), so 4 rows are infeasible.
GRID = """\
models: [llama-3.1-8b, llama-3.1-70b]
gpus: [h100, a100]
counts: [8, 64]
seq_lens: [4096]
objectives: [time, cost]
batch_tokens: 1M
tokens: 1T
"""
N_JOBS = 16


@pytest.fixture(scope="module")
def grid_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("grid") / "grid.yaml"
    path.write_text(GRID)
    return path


@pytest.fixture(scope="module")
def serial(grid_file, tmp_path_factory) -> Path:
    """The grid run once in this process: the reference output every other run must reproduce byte for byte."""
    out = tmp_path_factory.mktemp("serial") / "rows.csv"
    summary = run_sweep(load_grid(grid_file), out, workers=1)
    assert (summary.backend, summary.jobs, summary.done, summary.skipped) == ("serial", N_JOBS, N_JOBS, 0)
    assert (summary.ok, summary.infeasible, summary.invalid, summary.failed) == (12, 4, 0, 0)
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_rows_are_the_search_answers(serial):
    """Each row is planner.search_train's best plan for its job; the derived columns are their closed forms."""
    rows = _rows(serial)
    assert [int(r["job"]) for r in rows] == list(range(N_JOBS))
    assert tuple(rows[0]) == COLUMN_NAMES
    # the product order: models x gpus x counts x seq_lens x objectives
    assert [(r["model"], r["gpu"], r["gpus"], r["objective"]) for r in rows[:5]] == [
        ("llama-3.1-8b", "h100", "8", "time"), ("llama-3.1-8b", "h100", "8", "cost"),
        ("llama-3.1-8b", "h100", "64", "time"), ("llama-3.1-8b", "h100", "64", "cost"),
        ("llama-3.1-8b", "a100", "8", "time")]
    for r in rows:
        assert r["global_batch"] == str(2**20 // 4096) and r["tokens"] == "1000000000000.0"
        if r["model"] == "llama-3.1-70b" and r["gpus"] == "8":
            assert r["status"] == "infeasible" and "does not fit" in r["reason"] and r["step_time_s"] == ""
            continue
        assert r["status"] == "ok" and r["reason"] == ""
        res = planner.search_train(r["model"], r["gpu"], int(r["gpus"]), 4096, 256, objective=r["objective"],
                                   tokens=1e12, top=1)
        b, p = res.best, res.best.plan
        assert (int(r["num_gpus"]), int(r["tp"]), int(r["pp"]), int(r["vpp"]), int(r["cp"]), int(r["ep"]),
                int(r["dp"]), int(r["micro_batch"]), r["recompute"], int(r["zero"]), r["dtype"]) == (
                b.num_gpus, p.tp, p.pp, p.vpp, p.cp, p.ep, p.dp, p.micro_batch, p.recompute, p.zero, p.dtype)
        assert float(r["step_time_s"]) == b.step_time_s  # repr in the file: the same float read back
        assert float(r["tokens_per_s"]) == b.tokens_per_s
        assert float(r["mfu"]) == b.mfu
        assert float(r["memory_peak_bytes"]) == b.memory.peak_bytes
        n, price = int(r["num_gpus"]), float(r["price_per_gpu_hour_usd"])
        acc = planner.get_system(r["gpu"]).accelerator
        assert price == acc.price_per_hour_usd
        t = 1e12 / float(r["tokens_per_s"])
        assert float(r["time_to_train_s"]) == pytest.approx(t, rel=1e-12)
        assert float(r["cost_to_train_usd"]) == pytest.approx(n * price * t / 3600, rel=1e-12)
        assert float(r["power_kw"]) == pytest.approx(n * acc.tdp_w / 1e3, rel=1e-12)
        assert float(r["energy_to_train_mwh"]) == pytest.approx(n * acc.tdp_w * t / 3.6e9, rel=1e-12)
        assert 0.2 < float(r["mfu"]) < 0.8  # dense bf16 training lands at 35-60 % MFU in published runs
        assert float(r["memory_peak_bytes"]) <= 0.95 * float(r["memory_capacity_bytes"])
    # cost may choose fewer GPUs than offered, time never does
    assert all(r["num_gpus"] == r["gpus"] for r in rows if r["objective"] == "time" and r["status"] == "ok")


def test_job_key_is_a_hash_of_the_inputs(grid_file):
    job = load_grid(grid_file).jobs()[3]
    canonical = json.dumps(job.inputs(), sort_keys=True, separators=(",", ":"))
    assert job.key == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    assert (job.model, job.gpu, job.gpus, job.objective, job.global_batch) == ("llama-3.1-8b", "h100", 64, "cost", 256)


def test_pool_gives_the_same_file(grid_file, serial, tmp_path):
    out = tmp_path / "pool.csv"
    summary = run_sweep(load_grid(grid_file), out, workers=2)
    assert summary.backend == "pool" and summary.done == N_JOBS
    assert out.read_bytes() == serial.read_bytes()


def _count_searches(monkeypatch) -> list[int]:
    """Record the index of every job whose search runs (in this process: the serial backend)."""
    calls: list[int] = []
    real = sweep._search

    def counting(job):
        calls.append(job.index)
        return real(job)

    monkeypatch.setattr(sweep, "_search", counting)
    return calls


def test_resume_runs_only_the_missing_jobs(grid_file, serial, tmp_path, monkeypatch):
    """A crash left 6 rows (out of order, the last one cut mid-line): the rerun runs the other 10 jobs and
    writes the uninterrupted run's bytes; a third run runs nothing."""
    calls = _count_searches(monkeypatch)
    lines = serial.read_text().splitlines(keepends=True)
    out = tmp_path / "rows.csv"
    finished = [lines[1 + i] for i in (5, 0, 12, 3, 7, 15)]
    out.write_text(lines[0] + "".join(finished) + lines[1 + 9][:40])
    summary = run_sweep(load_grid(grid_file), out, workers=1)
    assert (summary.skipped, summary.done) == (6, 10)
    assert sorted(calls) == [i for i in range(N_JOBS) if i not in (5, 0, 12, 3, 7, 15)]
    assert out.read_bytes() == serial.read_bytes()
    calls.clear()
    again = run_sweep(load_grid(grid_file), out, workers=1)
    assert (again.skipped, again.done, calls) == (N_JOBS, 0, [])
    assert out.read_bytes() == serial.read_bytes()


def test_resume_reruns_internal_errors_and_follows_a_reordered_grid(grid_file, serial, tmp_path, monkeypatch):
    rows = _rows(serial)
    rows[2].update({k: "" for k in COLUMN_NAMES[12:]}, status="error", reason="RuntimeError: boom")
    out = tmp_path / "rows.csv"
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, COLUMN_NAMES, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    calls = _count_searches(monkeypatch)
    reordered = GRID.replace("[h100, a100]", "[a100, h100]")
    summary = run_sweep(parse_grid(yaml.safe_load(reordered)), out, workers=1)
    assert summary.skipped == N_JOBS - 1 and len(calls) == 1
    got = {r["job_key"]: r for r in _rows(out)}
    for r in _rows(serial):  # the same rows, each at its place in the reordered grid
        moved = got[r["job_key"]]
        assert {k: v for k, v in moved.items() if k != "job"} == {k: v for k, v in r.items() if k != "job"}
        assert [j.index for j in load_grid(grid_file).jobs() if j.key == r["job_key"]] == [int(r["job"])]
    # llama-3.1-8b h100 64 time: h100 is the 2nd GPU type now, so 0 x 8 + 1 x 4 + 1 x 2 + 0 = 6
    assert int(got[rows[2]["job_key"]]["job"]) == 6 and calls == [6]


def test_parquet_output_and_resume(grid_file, serial, tmp_path):
    pytest.importorskip("pyarrow", reason="Parquet output needs pyarrow (the planner[parquet] extra)")
    out = tmp_path / "rows.parquet"
    grid = load_grid(grid_file)
    summary = run_sweep(grid, out, workers=1)
    assert summary.format == "parquet" and not (tmp_path / "rows.parquet.partial.csv").exists()
    assert read_rows(out) == read_rows(serial)
    whole = out.read_bytes()
    # a crash mid-run: the journal holds 5 rows, no Parquet file yet
    journal = tmp_path / "rows.parquet.partial.csv"
    journal.write_text("".join(serial.read_text().splitlines(keepends=True)[:6]))
    out.unlink()
    again = run_sweep(grid, out, workers=1)
    assert (again.skipped, again.done) == (5, N_JOBS - 5)
    assert out.read_bytes() == whole and not journal.exists()


def test_ray_local_runtime_gives_the_same_rows(serial, tmp_path):
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'planner[ray]'")
    grid = parse_grid({"models": ["llama-3.1-8b"], "gpus": ["h100", "a100"], "counts": [8, 64],
                       "seq_lens": [4096], "objectives": ["time"], "batch_tokens": "1M", "tokens": "1T"})
    out = tmp_path / "ray.csv"
    summary = run_sweep(grid, out, workers=2, ray_address="local")
    assert (summary.backend, summary.done, summary.ok) == ("ray", 4, 4)
    by_key = {r["job_key"]: r for r in _rows(serial)}
    for r in _rows(out):  # the same jobs in the 16-job grid, run serially there
        assert {k: v for k, v in r.items() if k != "job"} == {k: v for k, v in by_key[r["job_key"]].items()
                                                                if k != "job"}


def test_missing_ray_is_one_line(grid_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(SweepError, match=r"^--ray needs Ray: pip install 'planner\[ray\]'$"):
        run_sweep(load_grid(grid_file), tmp_path / "x.csv", ray_address="local")
    assert not (tmp_path / "x.csv").exists()


def test_an_unreachable_or_malformed_ray_address_is_one_line_at_once(grid_file, tmp_path):
    """A cluster address must answer a TCP connection within seconds (Ray itself retries for minutes)."""
    pytest.importorskip("ray", reason="the ray extra: pip install 'planner[ray]'")
    import socket

    with socket.socket() as s:  # a port nothing listens on: bind, then close
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SweepError, match=rf"^--ray 127.0.0.1:{port}: nothing answers at 127.0.0.1:{port} within 5 s"):
        run_sweep(load_grid(grid_file), tmp_path / "x.csv", ray_address=f"127.0.0.1:{port}")
    for bad in ("nonsense", "host:", "host:99999", "ray://"):
        with pytest.raises(SweepError, match=r"give auto, local, HOST:PORT or ray://HOST:PORT"):
            run_sweep(load_grid(grid_file), tmp_path / "x.csv", ray_address=bad)
    assert not (tmp_path / "x.csv").exists()


def test_missing_pyarrow_is_one_line(grid_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(SweepError, match=r"^Parquet output needs pyarrow: pip install 'planner\[parquet\]'"):
        run_sweep(load_grid(grid_file), tmp_path / "x.parquet")


BAD_GRIDS = [
    ("modles: [a]\n", r"modles: unknown key \(did you mean 'models'\?\)"),
    ("[1, 2]\n", r"expected a mapping of grid keys"),
    (GRID.replace("counts: [8, 64]", "counts: []"), r"counts: is empty"),
    (GRID.replace("counts: [8, 64]\n", ""), r"counts: missing"),
    (GRID.replace("counts: [8, 64]", "counts: [8, 0]"), r"counts\[1\] must be at least 1, got 0"),
    (GRID.replace("counts: [8, 64]", "counts: [8, 8]"), r"counts\[1\]: 8 is listed twice"),
    (GRID.replace("counts: [8, 64]", "counts: [8, 1.5]"), r"counts\[1\] must be a whole number"),
    (GRID.replace("counts: [8, 64]", f"counts: {list(range(1, 30_002))}"),
     r"2 models x 2 gpus x 30,001 counts x 1 seq_lens x 2 objectives = 240,008 jobs; a grid runs at most 100,000"),
    (GRID.replace("llama-3.1-70b", "llama-3.1-70"), r"models\[1\]: .*llama-3.1-70"),
    (GRID.replace("[h100, a100]", "[h100, zz9000]"), r"gpus\[1\]: "),
    (GRID.replace("[time, cost]", "[time, fastest]"), (r"objectives\[1\]: 'fastest' is not one of time, "
                                                       r"cost, deadline")),
    (GRID.replace("[time, cost]", "[deadline]"), r"objectives: deadline needs a deadline key"),
    (GRID + "deadline: 60\n", r"deadline: give units, e.g. 30d or 720h"),
    (GRID + "global_batch: 256\n", r"exactly one of global_batch \(sequences\) or batch_tokens"),
    (GRID.replace("batch_tokens: 1M", "batch_tokens: 1000000"), (r"batch_tokens: 1,000,000 tokens is not "
                                                                 r"a multiple of seq_lens\[0\] = 4096")),
    (GRID.replace("tokens: 1T", "tokens: .nan"), r"not a finite number"),
    (GRID.replace("tokens: 1T", "tokens: lots"), r"tokens: cannot read 'lots' as a number"),
    (GRID + "refine: maybe\n", r"refine: expected true or false"),
    (GRID + "zero: [4]\n", r"zero\[0\] must be at most 3"),
    (GRID + "dtype: fp4\n", r"dtype\[0\]: 'fp4' is not one of"),
    ("models: [a\n", r"malformed YAML"),
]


@pytest.mark.parametrize(("text", "message"), BAD_GRIDS, ids=[m[:30] for _, m in BAD_GRIDS])
def test_bad_grids_are_one_line_naming_the_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, out, err = cli("sweep", str(path), "--json")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: {path}: "), err
    assert re.search(message, err), err
    assert not (tmp_path / "bad.csv").exists()


def test_cli_json_summary_and_rerun(grid_file, serial, tmp_path):
    out = tmp_path / "rows.csv"
    code, text, err = cli("sweep", str(grid_file), "--out", str(out), "--workers", "2", "--json")
    assert code == 0 and err == ""
    doc = json.loads(text)
    assert {k: doc[k] for k in ("jobs", "done", "skipped", "ok", "infeasible", "invalid", "failed", "backend")} == {
        "jobs": N_JOBS, "done": N_JOBS, "skipped": 0, "ok": 12, "infeasible": 4, "invalid": 0, "failed": 0,
        "backend": "pool"}
    assert "elapsed_s" not in doc and doc["output"] == str(out)
    assert out.read_bytes() == serial.read_bytes()
    code, text, _ = cli("sweep", str(grid_file), "--out", str(out), "--json", "--timings")
    doc = json.loads(text)
    assert code == 0 and (doc["done"], doc["skipped"]) == (0, N_JOBS) and doc["elapsed_s"] >= 0
    assert out.read_bytes() == serial.read_bytes()


def test_cli_refuses_outputs_it_must_not_touch(grid_file, tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    cases = [
        (("--out", str(other)), r"not a sweep output of this planner \(its columns differ\)"),
        (("--out", str(tmp_path / "rows.txt")), r"must end in .csv or .parquet"),
        (("--out", str(grid_file)), r"is the GRID input"),
        (("auto",), r"ADDRESS 'auto' given without --ray"),
    ]
    for args, message in cases:
        code, _, err = cli("sweep", str(grid_file), *args)
        assert code == 2 and err.count("\n") == 1 and re.search(message, err), (args, err)
    assert other.read_text() == "a,b\n1,2\n"


def test_rows_of_another_grid_are_not_dropped(grid_file, serial, tmp_path):
    out = tmp_path / "rows.csv"
    out.write_bytes(serial.read_bytes())
    smaller = GRID.replace("counts: [8, 64]", "counts: [64]")
    path = tmp_path / "small.yaml"
    path.write_text(smaller)
    code, _, err = cli("sweep", str(path), "--out", str(out), "--workers", "1")
    assert code == 2 and "holds 8 row(s) of jobs not in this grid" in err
    assert out.read_bytes() == serial.read_bytes()
    code, _, err = cli("sweep", str(path), "--out", str(out), "--workers", "1", "--restart", "--json")
    assert code == 0
    assert [r["job_key"] for r in _rows(out)] == [r["job_key"] for r in _rows(serial) if r["gpus"] == "64"]


def test_statuses_without_a_plan(tmp_path, monkeypatch):
    """A job the planner refuses is ``invalid`` with its reason; a bug is ``error``, counted as failed (exit 1)."""
    grid = parse_grid({"models": ["llama-3.1-8b"], "gpus": ["a100"], "counts": [8], "seq_lens": [4096],
                       "global_batch": 64, "dtype": "fp8"})
    row = sweep.run_job(grid.jobs()[0])
    assert row["status"] == "invalid" and "no FP8 tensor cores" in row["reason"] and row["step_time_s"] is None

    def boom(job):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(sweep, "_search", boom)
    path = tmp_path / "g.yaml"
    path.write_text(GRID)
    code, out, err = cli("sweep", str(path), "--workers", "1", "--json")
    assert code == 1 and json.loads(out)["failed"] == N_JOBS
    assert err.count("\n") == 1 and f"{N_JOBS} job(s) failed with an internal error" in err
    assert {(r["status"], r["reason"]) for r in _rows(tmp_path / "g.csv")} == {
        ("error", "RuntimeError: boom second line")}  # one line


def test_two_sweeps_never_write_one_output(grid_file, tmp_path):
    fcntl = pytest.importorskip("fcntl", reason="the output lock uses flock (POSIX)")
    out = tmp_path / "rows.csv"
    with open(tmp_path / ".rows.csv.lock", "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(SweepError, match="another planner sweep is writing it"):
            run_sweep(load_grid(grid_file), out, workers=1)
    assert not out.exists()


def test_the_best_plans_table_is_the_files_rows(grid_file, serial, tmp_path):
    """``planner sweep`` shows the first ``--show`` jobs' best plans (as CSV with ``--table best``): the rows of
    the output file, in job order; ``--show 0`` hides them; ``--show`` with ``--json`` is refused."""
    import shutil

    out = tmp_path / "rows.csv"
    shutil.copy(serial, out)  # every job finished: the command runs none and shows the file
    code, text, err = cli("sweep", str(grid_file), "--out", str(out), "--csv", "--table", "best", "--show", "5")
    assert code == 0, err
    shown = list(csv.DictReader(text.splitlines()))
    rows = read_rows(out)
    assert [int(r["job"]) for r in shown] == [r["job"] for r in rows[:5]]
    for s, r in zip(shown, rows):
        assert (s["model"], s["GPU"], int(s["GPUs"])) == (r["model"], r["gpu"], r["gpus"])
        if r["status"] == "ok":
            assert s["layout"].startswith(f"{r['tp']}.{r['pp']}.{r['dp']}")
            assert float(s["step s"]) == pytest.approx(r["step_time_s"], rel=5e-3)
        else:
            assert s["layout"] == r["status"] and s["step s"] == "-"
    code, text, _ = cli("sweep", str(grid_file), "--out", str(out), "--show", "0")
    assert code == 0 and "Best plans" not in text
    code, _, err = cli("sweep", str(grid_file), "--out", str(out), "--json", "--show", "3")
    assert code == 2 and "--show does nothing with --json" in err
