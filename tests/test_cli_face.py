"""The command line as a terminal and a program see it (issue 14, "Terminal" and "Progress").

* 80 columns: every table-printing command, run with an 80-column console, prints no line longer than 80
  characters and no cell cut (``…``) or wrapped: each table renders at 80 columns in exactly as many lines as
  it does with unlimited width (a wrapped cell adds lines).
* ``--json`` on every command of ``planner --help`` (walked, with its groups): one JSON object on stdout.
* ``--csv``: the rows of a command's main table (or ``--table``'s) as CSV.
* Help: choices listed, no ``<bool>`` / ``<str>`` metavars, no stray `` .``, ``--tokens`` default ``1T``.
* Shell completion, Hugging Face ids of variants, progress that covers the whole search.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer.main
from rich.console import Console

import planner
from cli_in_process import cli
from planner.cli import app
from planner.cli.render import output, polish_help, progress

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"
WIDTH = 80

TRAIN = ("train", "-m", "llama-3.1-8b", "-g", "h100", "-n", "64", "--seq", "8192", "--gbs", "256")
SERVE = ("serve", "-m", "qwen3-8b", "-g", "h100", "-n", "8", "--isl", "1024", "--osl", "128", "--ttft", "500ms",
         "--tpot", "50ms")


# ---------------------------------------------------------------------------------------------------------------
# inputs shared by the tests (small, fast)
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("face")
    hist = d / "hist.csv"
    hist.write_text("isl,osl,weight\n512,128,3\n4096,256,1\n")
    grid = d / "grid.yaml"
    grid.write_text("models: [llama-3.1-8b]\ngpus: [h100]\ncounts: [8]\nseq_lens: [2048]\nobjectives: [time]\n"
                    "global_batch: 64\n")
    gpu = d / "gpu.yaml"
    gpu.write_text((ROOT / "hardware_specs" / "h100-sxm.yaml").read_text())
    code, out, err = cli("estimate", "train", "-m", "llama-3.1-8b", "-g", "h100", "-n", "8", "--gbs", "64", "--seq",
                         "2048", "--json")
    assert code == 0, err
    plan = d / "plan.json"
    plan.write_text(out)
    code, out, err = cli("mix", "-m", "llama-3.1-8b", "--gpus", "a100,h100", "--histogram", str(hist), "--rate", "4",
                         "--ttft", "1s", "--tpot", "50ms", "--json")
    assert code == 0, err
    fleet = d / "fleet.json"
    fleet.write_text(out)
    return {"hist": str(hist), "grid": str(grid), "gpu": str(gpu), "plan": str(plan), "fleet": str(fleet),
            "dir": str(d)}


def _leaves(command, path=()) -> list[tuple[str, ...]]:
    subs = getattr(command, "commands", None)
    if not subs:
        return [path]
    return [leaf for name, sub in sorted(subs.items()) for leaf in _leaves(sub, (*path, name))]


def _help_commands(*path: str) -> set[str]:
    """The command names the Commands panel of ``planner [path] --help`` lists."""
    code, out, _ = cli(*path, "--help")
    assert code == 0
    names, inside = set(), False
    for line in out.splitlines():
        if "Commands" in line and line.lstrip().startswith("╭"):
            inside = True
        elif inside and line.lstrip().startswith("╰"):
            break
        elif inside:
            m = re.match(r"\s*│\s(\S+)\s{2,}", line)
            if m:
                names.add(m.group(1))
    return names


#: The smallest valid input of each command (``{name}`` for a file of :func:`files`).
ARGS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("check",): ("{plan}",),
    ("estimate", "serve"): ("-m", "qwen3-8b", "-g", "h100", "--isl", "1024", "--osl", "128", "-c", "8"),
    ("estimate", "train"): ("-m", "llama-3.1-8b", "-g", "h100", "-n", "8", "--gbs", "64", "--seq", "2048"),
    ("experts",): ("-m", "mixtral-8x7b", "--synthetic", "--tokens", "256", "--gpus", "4", "--time-limit", "0.3"),
    ("export",): ("{plan}", "--to", "megatron"),
    ("mix",): ("-m", "llama-3.1-8b", "--gpus", "a100,h100", "--histogram", "{hist}", "--rate", "4", "--ttft", "1s",
               "--tpot", "50ms"),
    ("serve",): SERVE[1:],
    ("simulate",): ("-m", "qwen3-8b", "-g", "h100", "--rate", "4", "--requests", "60"),
    ("specs", "list"): (),
    ("specs", "show"): ("meta-llama/Llama-3.1-70B-Instruct",),
    ("specs", "validate"): ("{gpu}",),
    ("sweep",): ("{grid}", "--workers", "1", "--out", "{dir}/rows.csv"),
    ("train",): ("-m", "llama-3.1-8b", "-g", "h100", "-n", "8", "--seq", "2048", "--gbs", "64"),
    ("validate", "serving"): ("--reference", str(REFERENCE)),
    ("validate", "training"): ("--reference", str(REFERENCE)),
}


def _argv(path: tuple[str, ...], files: dict[str, str], *extra: str) -> list[str]:
    return [*path, *(a.format(**files) for a in ARGS[path]), *extra]


def test_every_command_of_the_help_prints_one_json_object(files):
    """Walk ``planner --help`` (and each group's help): every command takes ``--json`` and prints exactly one
    JSON object on stdout, nothing on stderr."""
    command = polish_help(typer.main.get_command(app))
    leaves = _leaves(command)
    top = _help_commands()
    assert top == set(command.commands) and {"train", "serve", "experts", "specs", "estimate"} <= top
    for group in ("specs", "estimate", "validate"):
        assert _help_commands(group) == set(command.commands[group].commands), group
    assert set(leaves) == set(ARGS), f"commands without a test input: {set(leaves) ^ set(ARGS)}"
    for path in leaves:
        if path[0] == "validate" and not REFERENCE.is_dir():
            continue  # the reference data is not beside the checkout
        sub = command
        for name in path:
            sub = sub.commands[name]
        assert any("--json" in p.opts for p in sub.params), f"planner {' '.join(path)} has no --json"
        code, out, err = cli(*_argv(path, files, "--json"))
        assert code == 0 and err == "", (path, code, err)
        obj = json.loads(out)  # the whole of stdout is one JSON document
        assert isinstance(obj, dict) and obj, path
    assert json.loads(cli(*_argv(("specs", "show"), files, "--json"))[1])["name"] == "llama-3.1-70b"
    export = json.loads(cli(*_argv(("export",), files, "--json"))[1])
    assert export["target"] == "megatron" and "--tensor-model-parallel-size" in export["text"]


# ---------------------------------------------------------------------------------------------------------------
# 80 columns
# ---------------------------------------------------------------------------------------------------------------

TABLE_COMMANDS: dict[str, tuple[str, ...]] = {
    "specs list": ("specs", "list"),
    "specs show gpu": ("specs", "show", "a100"),
    "specs show model": ("specs", "show", "deepseek-v3"),
    "estimate train": ("estimate", "train", "-m", "llama-3.1-70b", "-g", "h100", "-n", "64", "--tp", "8", "--pp", "2",
                       "--gbs", "512", "--seq", "8192"),
    "estimate serve": ("estimate", "serve", "-m", "qwen3-32b", "-g", "h200", "--tp", "4", "--isl", "4000", "--osl",
                       "500", "-c", "32", "--precision", "fp8"),
    "train": TRAIN,
    "train cost pareto": (*TRAIN, "--objective", "cost", "--pareto", "--tokens", "15T"),
    "train moe": ("train", "-m", "mixtral-8x7b", "-g", "h100", "-n", "128", "--seq", "4096", "--gbs", "512",
                  "--dtype", "auto"),
    "train gpu types": ("train", "-m", "llama-3.1-8b", "-g", "h100,h200", "-n", "32", "--seq", "4096", "--gbs", "128",
                        "--tokens", "1T"),
    "serve": ("serve", "-m", "deepseek-v3", "-g", "h200", "-n", "64", "--isl", "4000", "--osl", "500", "--ttft", "2s",
              "--tpot", "50ms", "--rate", "20"),
    "simulate": ("simulate", "-m", "qwen3-32b", "-g", "h200", "--tp", "2", "--rate", "5", "--requests", "200"),
    "simulate fleet": ("simulate", "--plan", "{fleet}", "--requests", "300"),
    "experts": ("experts", "-m", "qwen3-30b-a3b", "--synthetic", "--tokens", "256", "--gpus", "16",
                "--time-limit", "0.3"),
    "mix": ("mix", "-m", "llama-3.1-8b", "--gpus", "a100,h100", "--histogram", "{hist}", "--rate", "4", "--ttft", "1s",
            "--tpot", "50ms"),
    "validate training": ("validate", "training", "--search", "--reference", str(REFERENCE)),
    "validate serving": ("validate", "serving", "--reference", str(REFERENCE)),
    "sweep": ("sweep", "{grid}", "--workers", "1", "--out", "{dir}/rows80.csv"),
}


def _lines(t, width: int) -> int:
    c = Console(width=width, file=io.StringIO(), color_system=None)
    c.print(t)
    return len(c.file.getvalue().splitlines())


@pytest.mark.parametrize("name", sorted(TABLE_COMMANDS))
def test_tables_fit_80_columns_without_wrapping_a_cell(name, files, monkeypatch):
    argv = [a.format(**files) for a in TABLE_COMMANDS[name]]
    if "validate" in argv and not REFERENCE.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE}")
    monkeypatch.setattr(output, "console", Console(width=WIDTH, color_system=None))
    shown = []
    real = output.natural_width

    def record(t):
        shown.append(t)
        return real(t)

    monkeypatch.setattr(output, "natural_width", record)
    code, out, err = cli(*argv)
    assert code == 0, err
    assert shown, "no table printed"
    paths = [a for a in argv if "/" in a and Path(a).parent.is_dir()]
    long = [line for line in out.splitlines() if len(line) > WIDTH and not any(p in line for p in paths)]
    assert not long, long  # (a line naming a file given on the command line keeps the path whole)
    assert "…" not in out
    for t in shown:
        assert real(t) <= WIDTH, f"{name}: table {t.key!r} needs {real(t)} columns"
        assert _lines(t, WIDTH) == _lines(t, 10_000), f"{name}: a cell of table {t.key!r} wraps at {WIDTH} columns"


def test_specs_list_piped_keeps_every_alias_whole():
    """``planner specs list | cat`` (no terminal, no $COLUMNS: 80 columns): each alias shown is a whole alias."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["PYTHONPATH"] = str(ROOT)
    r = subprocess.run([sys.executable, "-m", "planner", "specs", "list"], env=env, capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(map(len, lines)) <= WIDTH
    known = {a.replace("_", "-").lower() for n in planner.hardware_names() for a in planner.get_system(n).aliases}
    names = set(planner.hardware_names())
    rows = [line.split() for line in lines if line.split() and line.split()[0] in names]
    assert len(rows) == len(names)
    for cells in rows:
        shown = [w.rstrip(",") for w in cells[1:] if not re.fullmatch(r"[-+\d.,]+", w)]
        assert shown and all(a in known for a in shown), cells
    assert "meta-llama/Llama-3.1-70B" in r.stdout


def test_a_terminal_narrower_than_a_table_gets_one_block_per_row(monkeypatch):
    monkeypatch.setattr(output, "console", Console(width=50, color_system=None))
    code, out, err = cli(*TRAIN)
    assert code == 0, err
    assert max(map(len, out.splitlines())) <= 50 and "…" not in out
    assert "  step s: " in out and "  MFU %: " in out  # the top plans, one block per plan


# ---------------------------------------------------------------------------------------------------------------
# --csv
# ---------------------------------------------------------------------------------------------------------------

def test_csv_prints_the_rows_of_the_main_table_or_the_one_asked_for():
    code, out, err = cli(*TRAIN, "--top", "3", "--csv")
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:3] == ["#", "layout", "mbs"] and len(rows) == 4
    best = json.loads(cli(*TRAIN, "--top", "3", "--json")[1])["best"]
    assert float(rows[1][rows[0].index("step s")]) == pytest.approx(best["step_time_s"], rel=1e-3)
    code, out, _ = cli(*TRAIN, "--objective", "cost", "--pareto", "--csv", "--table", "pareto")
    pareto = list(csv.reader(io.StringIO(out)))
    assert code == 0 and pareto[0] == ["GPUs", "layout", "tokens/s", "days", "$/M tok"]
    assert all(float(r[2]) > 0 for r in pareto[1:])  # thousands separators dropped: 722,053 -> 722053
    code, out, _ = cli("estimate", "train", "-m", "llama-3.1-8b", "-g", "h100", "-n", "8", "--gbs", "64", "--seq",
                       "2048", "--csv", "--table", "memory")
    memory = list(csv.reader(io.StringIO(out)))
    assert code == 0 and memory[0] == ["kind", "GB", "% of capacity"] and memory[1][0] == "weights"
    code, out, _ = cli("specs", "list", "--csv")
    gpus = list(csv.reader(io.StringIO(out)))
    assert len(gpus) == 1 + len(planner.hardware_names())
    h100 = next(r for r in gpus if r[0] == "h100-sxm")
    assert set(h100[1].split()) == set(planner.get_system("h100").aliases)  # every alias in the CSV


@pytest.mark.parametrize("argv, expect", [
    ((*TRAIN, "--csv", "--json"), "--csv and --json each replace the output"),
    ((*TRAIN, "--table", "top"), "--table does nothing without --csv"),
    ((*TRAIN, "--csv", "--table", "pareto"), "--table pareto: this command printed no pareto table"),
    ((*TRAIN, "--csv", "--table", "nope"), "--table 'nope': unknown table"),
])
def test_csv_refusals_are_one_line(argv, expect):
    code, out, err = cli(*argv)
    lines = [x for x in err.strip().splitlines() if not x.startswith("warning: ")]  # the plan's own warnings
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], err


# ---------------------------------------------------------------------------------------------------------------
# help, choices, units, completion, names
# ---------------------------------------------------------------------------------------------------------------

CHOICES = {
    ("train",): {"--objective": "time|cost|deadline", "--export": "megatron|torchtitan|deepspeed|slurm",
                 "--dtype": "bf16|fp8|auto"},
    ("serve",): {"--objective": "throughput|cost", "--disagg": "auto|on|off", "--backend": "trtllm|vllm|sglang",
                 "--export": "vllm|sglang|trtllm|k8s"},
    ("estimate", "serve"): {"--precision": "bf16|fp16|fp8|int4|fp4", "--backend": "trtllm|vllm|sglang"},
    ("simulate",): {"--router": "bucket|round-robin|least-outstanding", "--precision": "bf16|fp16|fp8|int4|fp4"},
    ("mix",): {"--disagg": "off|auto|on", "--price-tier": "on_demand|reserved|spot", "--export": "vllm|sglang"},
    ("export",): {"--to": "megatron|torchtitan|deepspeed|slurm|vllm|sglang|trtllm|k8s|json"},
    ("validate", "serving"): {"--split": "report|calibration"},
}


def test_help_lists_choices_and_units_without_type_placeholders(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # wide enough that no cell of the help wraps
    command = typer.main.get_command(app)
    for path in _leaves(command):
        code, out, _ = cli(*path, "--help")
        assert code == 0, path
        for bad in ("<bool>", "<str>", "<float>", "<int range>"):
            assert bad not in out, (path, bad)
        assert not re.search(r"(?<=\s)\.(?=\s|$)", out, re.M), (path, "a stray ' .' (rich ate a bracketed default)")
        for flag, values in CHOICES.get(path, {}).items():
            line = next(x for x in out.splitlines() if re.match(rf"│\s+(\*\s+)?{flag}\s", x))
            assert values in line, (path, flag, line)
    out = cli("train", "--help")[1]
    assert re.search(r"--tokens\s+TOKENS .*\[default: 1T\]", out) and "1000000000000" not in out
    assert re.search(r"--rate\s+REQ/S", cli("serve", "--help")[1])
    assert re.search(r"--time-limit\s+SECONDS", cli("experts", "--help")[1])
    assert "[default: 1T]" in cli("estimate", "train", "--help")[1]


def test_the_choices_are_the_planner_s_own():
    from planner.cli.render import options
    from planner.cost.serving import BACKENDS
    from planner.export import EXPORTERS
    from planner.simulate_fleet import ROUTERS

    assert options.ROUTER_NAMES == tuple(ROUTERS)
    assert set(options.BACKENDS) == set(BACKENDS) and options.TRAINING_TARGETS == tuple(EXPORTERS)


def test_deadline_without_a_unit_is_refused_with_the_units_it_takes():
    code, _, err = cli(*TRAIN, "--objective", "deadline", "--tokens", "1T", "--deadline", "60")
    assert code == 2 and err.strip() == "error: --deadline '60' needs a unit (e.g. 60d, 720h)"
    code, out, err = cli(*TRAIN, "--objective", "deadline", "--tokens", "1T", "--deadline", "60d", "--json")
    assert code == 0, err
    assert json.loads(out)["best"]["time_to_train_s"] <= 60 * 86400


def test_an_unknown_choice_names_the_flag_the_closest_value_and_all_of_them():
    code, _, err = cli(*SERVE, "--objective", "cots")
    assert code == 2
    assert err.startswith("error: --objective 'cots': unknown objective; did you mean cost? (choose throughput or "
                          "cost)"), err
    code, out, _ = cli(*SERVE, "--backend", "VLLM", "--json")  # choices ignore case
    assert code == 0 and json.loads(out)["aggregated"]["estimate"]["plan"]["backend"] == "vllm"


def test_shell_completion_script_and_choices():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "planner", "--show-completion", "bash"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "_PLANNER_COMPLETE" in r.stdout and "complete " in r.stdout, r.stderr
    env.update({"_PLANNER_COMPLETE": "complete_bash", "COMP_WORDS": "planner serve --backend ", "COMP_CWORD": "3"})
    r = subprocess.run([sys.executable, "-m", "planner"], env=env, capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["trtllm", "vllm", "sglang"], (r.stdout, r.stderr)


@pytest.mark.parametrize("name, model", [
    ("meta-llama/Llama-3.1-70B-Instruct", "llama-3.1-70b"),
    ("RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8", "llama-3.1-8b"),
    ("meta-llama/Llama-2-70b-chat-hf", "llama-2-70b"),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", "mixtral-8x7b"),
    ("Qwen/Qwen3-235B-A22B-Instruct-2507", "qwen3-235b-a22b"),
    ("moonshotai/Kimi-K2-Instruct-0905", "kimi-k2-instruct"),
])
def test_hugging_face_ids_of_variants_resolve_to_the_catalog_model(name, model):
    assert planner.get_model(name).name == model


def test_an_unknown_hugging_face_id_says_which_model_is_closest():
    code, _, err = cli("estimate", "train", "-m", "meta-llama/Llama-3.3-70B-Instruct", "-g", "h100", "-n", "8",
                       "--gbs", "8", "--seq", "2048")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("error: unknown model 'meta-llama/Llama-3.3-70B-Instruct'; did you mean "
                               "llama-3.1-70b"), lines[0]


# ---------------------------------------------------------------------------------------------------------------
# progress
# ---------------------------------------------------------------------------------------------------------------

def test_the_training_search_reports_progress_over_every_gpu_count():
    """The bar covers all GPU counts (the issue: it jumped to N/N for the last count only): one total, done
    never moves back, each count's share is reported, and the end is total / total."""
    calls: list[tuple[int, int]] = []
    res = planner.search_train("llama-3.1-8b", "h100", 64, 8192, 256, objective="cost", pareto=True,
                               progress=lambda d, t: calls.append((d, t)))
    counts = len(res.gpu_counts)
    assert counts >= 5
    totals = {t for _, t in calls}
    assert len(totals) == 1
    total = totals.pop()
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == total
    shares = {d * counts // total for d in done if d < total}
    assert len(shares) >= counts - 1, (shares, counts)  # every count's share is reported, not only the last


class _FakeBar:
    def __init__(self, *columns, **kwargs) -> None:
        self.started = self.stopped = False
        self.updates: list[float] = []
        BARS.append(self)

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def add_task(self, *args, **kwargs) -> int:
        return 0

    def update(self, task, completed=0, **kwargs) -> None:
        self.updates.append(completed)


BARS: list[_FakeBar] = []


@pytest.fixture()
def fake_terminal(monkeypatch):
    BARS.clear()
    monkeypatch.setattr(progress, "_terminal", lambda: True)
    monkeypatch.setattr(progress, "_progress", _FakeBar)
    monkeypatch.setattr(progress, "DELAY_S", 0.05)
    return BARS


def test_the_bar_stitches_searches_and_never_moves_back(fake_terminal):
    p = progress.LazyProgress(quiet=False, segments=2)
    time.sleep(0.06)
    for done, total in [(1, 10), (5, 10), (10, 10), (2, 8), (4, 8), (8, 8)]:
        p(done, total)
    p.close()
    bar = fake_terminal[0]
    assert bar.started and bar.stopped
    assert bar.updates == sorted(bar.updates) and bar.updates[0] == 50 and bar.updates[-1] == 1000
    assert 500 in bar.updates and 750 in bar.updates  # the first search is half the bar; the second the rest


def test_progress_is_silent_under_json_off_a_terminal_and_for_quick_work(fake_terminal, monkeypatch):
    quick = progress.LazyProgress(quiet=False)
    quick(1, 2)  # within the first DELAY_S: nothing yet
    with progress.Activity(quiet=True, label="x"):
        time.sleep(0.15)
    assert not fake_terminal
    with progress.Activity(quiet=False, label="x"):  # done within DELAY_S: created, never shown
        pass
    assert fake_terminal and not fake_terminal[0].started
    fake_terminal.clear()
    monkeypatch.setattr(progress, "_terminal", lambda: False)
    with progress.Activity(quiet=False, label="x"):
        time.sleep(0.15)
    assert progress.LazyProgress(quiet=False).quiet and not fake_terminal


def test_a_solver_shows_a_spinner_with_its_limit_until_it_ends(fake_terminal):
    with progress.Activity(quiet=False, label="placing experts", limit_s=60) as a:
        assert fake_terminal and not fake_terminal[0].started  # the clock runs; the display waits DELAY_S
        time.sleep(0.3)
        assert fake_terminal[0].started and not fake_terminal[0].stopped
        assert a.limit == "(CP-SAT limit 60 deterministic s)"
    assert fake_terminal[0].stopped


def test_commands_show_progress_on_a_terminal_only_outside_json(fake_terminal):
    code, out, err = cli("experts", "-m", "mixtral-8x7b", "--synthetic", "--tokens", "256", "--gpus", "4",
                         "--time-limit", "1")
    assert code == 0, err
    shown = [b for b in fake_terminal if b.started]
    assert shown and all(b.stopped for b in shown)  # the solver's spinner came and went
    fake_terminal.clear()
    code, out, err = cli("experts", "-m", "mixtral-8x7b", "--synthetic", "--tokens", "256", "--gpus", "4",
                         "--time-limit", "1", "--json")
    assert code == 0 and not fake_terminal and err == ""
