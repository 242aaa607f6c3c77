"""Fuzz suite (issue 10): hostile input to every command, spec file, trace, plan document and API call.

Every case runs the CLI in this process (``planner.cli.main``, see :mod:`fuzz_support`) under a time limit and
is classified: exit 0 (accepted) or 2 (one ``error:`` line) are fine; exit 1 (an internal error), a traceback,
a Python warning on stderr, an exception escaping ``main`` or a hang are failures; so is exit 0 for an input
the case knows is invalid ("bad input accepted"). Hypothesis generates the cases, seeded and derandomized
(the same cases every run) and without shrinking; each test collects all its problems and fails once, listing
them with a one-line reproducer. The explicit regression cases at the end replay every failure reported in
issue 10, each with its expected exit code. The session prints the number of cases and the time they took.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import math
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from fuzz_support import (
    ANY, REJECT, STATS, Num, Recorder, deep_json, delete_at, drop_flag, finite, get_at, is_number, known_names,
    leaf_paths, mapping_paths, name_expect, number_expect, path_text, read_number, replace_flag, reproducer, run_cli,
    set_at,
)
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

import planner
from planner import limits as L

ROOT = Path(__file__).resolve().parents[1]
NAN, INF = float("nan"), float("inf")
MEMORY_LIMIT_BYTES = 6 * 2**30  # address space of this process while the fuzz runs: a runaway allocation fails


def fuzz_settings(examples: int):
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None, print_blob=False,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example])


# ---------------------------------------------------------------------------
# session: scratch directory, memory bound, summary
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scratch(tmp_path_factory, request):
    """The working directory of every case (hostile input must never create files in it), under a memory
    bound; the heavy modules are imported first so that a time limit never interrupts an import."""
    import planner.cli  # the app
    import planner.moe.solver  # ortools
    import planner.search.partition  # noqa: F401  (pulp)

    path = tmp_path_factory.mktemp("fuzz")
    old_cwd = os.getcwd()
    old_limit = resource.getrlimit(resource.RLIMIT_AS)
    hard = old_limit[1]
    soft = MEMORY_LIMIT_BYTES if hard == resource.RLIM_INFINITY else min(MEMORY_LIMIT_BYTES, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    os.chdir(path)
    yield path
    os.chdir(old_cwd)
    resource.setrlimit(resource.RLIMIT_AS, old_limit)
    request.config.add_cleanup(lambda: _print_summary(request.config))  # after the run, outside output capture


def _print_summary(config) -> None:
    tests = ", ".join(f"{k} {v}" for k, v in sorted(STATS["by_test"].items()))
    lines = [f"fuzz: {STATS['cases']} cases in {STATS['seconds']:.1f} s ({tests}); {len(STATS['problems'])} problems"]
    lines += [f"fuzz: slow case {s}" for s in STATS["slow"][:20]]
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    for line in lines:
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line)
    out = os.environ.get("PLANNER_FUZZ_REPORT")
    if out:
        Path(out).write_text(json.dumps(STATS, indent=1, default=str))


_counter = itertools.count()


def case_file(scratch: Path, suffix: str, content: str | bytes) -> Path:
    """A fresh file for one case (a new name each time: nothing cached by path can leak between cases)."""
    folder = scratch / "cases"
    folder.mkdir(exist_ok=True)
    p = folder / f"c{next(_counter)}{suffix}"
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content)
    return p


@pytest.fixture(scope="module")
def names() -> set[str]:
    return known_names()


# ---------------------------------------------------------------------------
# numeric flags
# ---------------------------------------------------------------------------

ET = ["estimate", "train", "-m", "llama-3.1-8b", "-g", "h100", "-n", "8", "--gbs", "8", "--seq", "2048"]
ES = ["estimate", "serve", "-m", "qwen3-8b", "-g", "h100", "--isl", "1024", "--osl", "128", "-c", "8"]
TR = ["train", "-m", "llama-3.1-8b", "-g", "h100", "-n", "8", "--seq", "2048", "--gbs", "64"]
TR_COST = TR + ["--objective", "cost", "--tokens", "1T"]
TR_DEADLINE = TR + ["--objective", "deadline", "--tokens", "1T", "--deadline", "300d"]
TR_BATCH_TOKENS = drop_flag(TR, "--gbs") + ["--batch-tokens", "1M"]
SV = ["serve", "-m", "qwen3-8b", "-g", "h100", "-n", "8", "--ttft", "1s", "--tpot", "50ms", "--isl", "1024",
      "--osl", "128"]
SIM = ["simulate", "-m", "qwen3-8b", "-g", "h100", "--rate", "2", "--requests", "50"]
EXP = ["experts", "-m", "gpt-oss-20b", "--gpus", "8", "--synthetic", "--tokens", "256", "--time-limit", "0.5",
       "--no-holdout"]

DURATION = (("ms", 1e-3), ("s", 1.0))
DAYS = (("d", 86400.0), ("h", 3600.0), ("s", 1.0))
TOKENS = (("", 1.0), ("T", 1e12), ("B", 1e9), ("M", 1e6))
BATCH_TOKENS = (("", 1.0), ("M", 2.0**20), ("K", 2.0**10))
DOLLARS = (("", 1.0), ("M", 1e6), ("K", 1e3))


def _int(flag: str, hi: float | None, cheap: float, lo: float = 1) -> Num:
    return Num(flag, "int", lo=lo, lo_open=False, hi=hi, cheap=cheap)


NUMERIC: list[tuple[list[str], Num]] = [
    (ET, _int("-n", L.MAX_GPUS, 4096)), (ET, _int("--gbs", L.MAX_BATCH, 65536)),
    (ET, _int("--seq", L.MAX_POSITIONS, 1e6)), (ET, _int("--mbs", L.MAX_BATCH, 64)),
    *[(ET, _int(f, L.MAX_GPUS, 64)) for f in ("--tp", "--pp", "--vpp", "--cp", "--ep", "--etp")],
    (ET, _int("--zero", 3, 3, lo=0)), (ET, Num("--tokens", lo=0, lo_open=False, hi=L.MAX_TOKENS, cheap=1e15)),
    *[(ES, _int(f, L.MAX_GPUS, 64)) for f in ("--tp", "--pp", "--dp", "--ep")],
    (ES, _int("--isl", L.MAX_REQUEST_TOKENS, 1e6)), (ES, _int("--osl", L.MAX_REQUEST_TOKENS, 1e6)),
    (ES, _int("-c", L.MAX_CONCURRENCY, 1e5)),
    (TR, _int("-n", L.MAX_GPUS, 64)), (TR, _int("--seq", L.MAX_POSITIONS, 32768)),
    (TR, _int("--gbs", L.MAX_BATCH, 4096)), (TR, _int("--top", None, 100, lo=0)),
    (TR, Num("--max-memory", hi=1.0, cheap=1.0)), (TR, Num("--price", lo_open=False, hi=L.MAX_USD, cheap=1e3)),
    (TR, Num("--tokens", "unit", lo_open=False, hi=L.MAX_TOKENS, cheap=1e4, units=TOKENS)),
    (TR_COST, Num("--budget", "unit", hi=L.MAX_USD, cheap=1e4, units=DOLLARS)),
    (TR_DEADLINE, Num("--deadline", "unit", hi=L.MAX_DEADLINE_S, cheap=1e4, units=DAYS)),
    (TR_BATCH_TOKENS, Num("--batch-tokens", "unit", hi=L.MAX_BATCH * 2048, cheap=1e4, units=BATCH_TOKENS)),
    (SV, _int("-n", L.MAX_GPUS, 64)), (SV, _int("--isl", L.MAX_REQUEST_TOKENS, 131072)),
    (SV, _int("--osl", L.MAX_REQUEST_TOKENS, 131072)), (SV, Num("--rate", hi=L.MAX_RATE, cheap=1e4)),
    (SV, Num("--ttft", "unit", hi=L.MAX_SLO_S, cheap=1e4, units=DURATION)),
    (SV, Num("--tpot", "unit", hi=L.MAX_SLO_S, cheap=1e4, units=DURATION)),
    (SIM, Num("--rate", hi=L.MAX_RATE, cheap=1e4)), (SIM, _int("--isl", L.MAX_REQUEST_TOKENS, 32768)),
    (SIM, _int("--osl", L.MAX_REQUEST_TOKENS, 32768)), (SIM, _int("--requests", L.MAX_REQUESTS, 300)),
    (SIM, Num("--seed", "int", lo=None, cheap=1e6)),
    *[(SIM, _int(f, L.MAX_GPUS, 8)) for f in ("--tp", "--dp", "--ep")],
    (SIM, Num("--ttft", "unit", hi=L.MAX_SLO_S, cheap=1e4, units=DURATION)),
    (SIM, Num("--tpot", "unit", hi=L.MAX_SLO_S, cheap=1e4, units=DURATION)),
    (SIM, Num("--percentile", hi=100.0, cheap=100.0)),
]

NUMERIC_EXPERTS: list[tuple[list[str], Num]] = [
    (EXP, _int("--gpus", L.MAX_GPUS, 16)), (EXP, _int("--tokens", L.MAX_ROUTING_TOKENS, 2048, lo=2)),
    (EXP, Num("--seed", "int", lo=None, cheap=1e6)), (EXP, _int("--gpus-per-node", L.MAX_GPUS, 16)),
    (EXP, _int("--redundant", L.MAX_EXPERTS, 16, lo=0)), (EXP, Num("--time-limit", hi=L.MAX_TIME_LIMIT_S, cheap=1.0)),
    (EXP, Num("--max-imbalance", hi=1e12, cheap=100.0)), (EXP, Num("--node-cost", hi=1e12, cheap=100.0)),
    (EXP, Num("--weight-bytes", hi=1e12, cheap=100.0)),
]

SPECIAL_NUMBERS = [
    "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e400", "-1e400", "-1", "0", "-0", "0.0", "1e-30", "1e30",
    "1e300", str(10**30), str(-(10**30)), str(2**63), str(2**64 + 1), "0.5", "1.5", "1", "2", "3", "7", "abc", "",
    " ", "1,5", "0x10", "1e", "1.2.3", "--1", "\u0661\u0662",
]


def number_texts(cheap: float):
    """Text for a numeric flag: special values, small valid-looking numbers (at most ``cheap``), huge ones."""
    return st.one_of(
        st.sampled_from(SPECIAL_NUMBERS),
        st.integers(-10, int(cheap)).map(str),
        st.floats(-10, cheap, allow_nan=False).map(repr),
        st.floats(1e20, 1e300).map(repr),
        st.integers(10**20, 10**400).map(str),
    )


@st.composite
def numeric_case(draw, table):
    base, spec = draw(st.sampled_from(table))
    number = draw(number_texts(spec.cheap))
    if spec.kind == "unit":
        unit, scale = draw(st.sampled_from(spec.units))
        text = number + unit
        expect = number_expect(spec, text, number_text=number, scale=scale)
    else:
        text = number
        expect = number_expect(spec, text)
    return replace_flag(base, spec.flag, text), expect


@pytest.mark.parametrize("name, specs, examples", [("numeric", NUMERIC, 600), ("numeric-experts", NUMERIC_EXPERTS, 50)],
                         ids=["numeric", "experts"])
def test_numeric_flags(scratch, name, specs, examples):
    rec = Recorder(name, scratch)

    @fuzz_settings(examples)
    @given(numeric_case(specs))
    def run(case):
        argv, expect = case
        rec.cli(argv, expect)

    run()
    rec.check()


# ---------------------------------------------------------------------------
# string flags
# ---------------------------------------------------------------------------

HOSTILE_STRINGS = [
    "", " ", "zz-unknown", "h10", "qwen3-8", "llama", "x" * 5000, "../../../../etc/passwd", "/etc/passwd", "/", ".",
    "/dev/null", "/nonexistent/config.json", "$(echo pwned>PWNED)", "`echo pwned>PWNED1`", "x; echo pwned>PWNED2",
    "x\necho pwned>PWNED3", "\u540d\u524d", "\x1b[2J", "\t", "-", "None", "null", "0", "-1", "nan", "1e400",
    "%s%s%n", "{0}", "\\", "'", '"', "h100 ", "H100", "QWEN3-8B", "h100\n", "a,b", ",", "1,,2", "0,1", "1,2,4",
    "selective,full", "none", "bf16", "fp8", "auto", "cost", "on", "vllm", "k8s", "slurm", "gpu", "model",
    "\u202eevil", "h100\u2028", "1,999999999999999999999", "3,5", "-1,2", "full,bogus",
]

PRECISIONS = {"bf16", "fp16", "fp8", "int4", "fp4", "nvfp4"}
BACKENDS = {"trtllm", "vllm", "sglang"}

#: (base argv, flag or None for a positional argument, kind)
STRING_FLAGS: list[tuple[list[str], str | None, Any]] = [
    (ET, "-m", "model"), (ET, "-g", "gpu"), (ET, "--recompute", {"none", "selective", "full"}),
    (ET, "--dtype", {"bf16", "fp16", "fp8"}),
    (ES, "-m", "model"), (ES, "-g", "gpu"), (ES, "--precision", PRECISIONS), (ES, "--backend", BACKENDS),
    (TR, "-m", "model"), (TR, "-g", "gpu"), (TR, "--objective", {"time", "cost", "deadline"}),
    (TR, "--dtype", {"bf16", "fp8", "auto"}), (TR, "--mbs", "int-list"),
    (TR, "--recompute", ("list", {"none", "selective", "full"})), (TR, "--zero", ("list", {"0", "1", "2", "3"})),
    (TR, "--export", {"megatron", "torchtitan", "deepspeed", "slurm"}),
    (SV, "-m", "model"), (SV, "-g", "gpu"), (SV, "--objective", {"throughput", "cost"}),
    (SV, "--disagg", {"auto", "on", "off"}), (SV, "--backend", BACKENDS),
    (SV, "--export", {"vllm", "sglang", "trtllm", "k8s"}), (SV, "--trace", "input"),
    (SIM, "-m", "model"), (SIM, "-g", "gpu"), (SIM, "--precision", PRECISIONS), (SIM, "--backend", BACKENDS),
    (drop_flag(SIM, "--rate"), "--trace", "input"),
    (EXP, "-g", "gpu"), (drop_flag(EXP, "--synthetic"), "--trace", "input"),
    (["specs", "show"], None, "model"), (["specs", "validate"], None, "input"),
    (["specs", "list"], "--kind", {"gpu", "model"}),
    (["export", "--to", "megatron"], None, "input"),
]


def string_expect(kind: Any, value: str, names: set[str]) -> str:
    if kind in ("model", "gpu"):
        return name_expect(value, names)
    if kind == "input":
        return name_expect(value, set())
    entries = [e.strip().lower() for e in value.split(",") if e.strip()]
    if kind == "int-list":
        if not entries:
            return ANY
        ok = all(e.isascii() and e.isdigit() and 1 <= int(e) <= L.MAX_BATCH for e in entries)
        return ANY if ok else REJECT
    if isinstance(kind, tuple):
        return ANY if all(e in kind[1] for e in entries) else REJECT
    return ANY if value.strip().lower() in kind else REJECT


@st.composite
def string_case(draw):
    base, flag, kind = draw(st.sampled_from(STRING_FLAGS))
    value = draw(st.one_of(
        st.sampled_from(HOSTILE_STRINGS),
        st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
        .map(lambda s: "zz" + s),
    ))
    argv = base + [value] if flag is None else replace_flag(base, flag, value)
    return argv, kind, value


def test_string_flags(scratch, names):
    rec = Recorder("strings", scratch)

    @fuzz_settings(300)
    @given(string_case())
    def run(case):
        argv, kind, value = case
        if kind == "input" and value.startswith("-") and argv[-1] == value:
            return  # a positional argument starting with "-" is an option to click: not a path
        rec.cli(argv, string_expect(kind, value, names))

    run()
    rec.check()


# ---------------------------------------------------------------------------
# hardware YAML
# ---------------------------------------------------------------------------

HW_BASES = {name: yaml.safe_load((ROOT / "hardware_specs" / f"{name}.yaml").read_text()) for name in
            ("h100-sxm", "mi300x")}
HW_POSITIVE = {"memory_bytes", "hbm_bandwidth_bytes_per_s", "scale_up_bandwidth_bytes_per_s",
               "nic_bandwidth_bytes_per_s", "pcie_bandwidth_bytes_per_s"}
HW_NONNEG = {"tdp_w", "price_per_hour_usd", "scale_up_latency_s", "network_latency_s", "host_memory_bytes"}
HW_COUNT = {"accelerators_per_node", "scale_up_domain"}
HW_VALUES: list[Any] = [
    NAN, INF, -INF, -1, 0, 1e-30, 1e30, 10**30, 1.5, 4, 8, 16, "abc", "x\ny", [1, 2], {"a": {"b": 1}}, None, True,
    "nan GB", "inf TFLOPS", "-1 GB", "1e-30 GB", "0 GB", "1e400 GB", "80 GB", "1e-30 TFLOPS", "100 TFLOPS",
    "H100 SXM", "h100-zz", "-5 us", "nan W", "1e30 GB/s",
]
HW_RAW: list[str | bytes] = [
    "!!python/object/apply:os.system ['echo pwned > PWNED']\n",
    "name: !!python/object/apply:os.system ['echo pwned > PWNED']\n",
    ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"),
    "name: " + "[" * 20000 + "]" * 20000 + "\n",
    "", "- a\n- list\n", "null\n", "name: [unclosed\n", "\t\tname: tabs\n",
    bytes(range(256)) * 16, b"\xef\xbb\xbfname: h100\n\x00\x00",
]


def _unit_number(value: Any) -> float | None:
    """The number a YAML value says: the value itself, or the leading number of a ``"80 GB"`` string."""
    if is_number(value):
        return float(value)
    if isinstance(value, str) and value.strip():
        return read_number(value.split()[0])
    return None


def hardware_expect(path: tuple, value: Any, op: str) -> str:
    if op == "raw":
        return REJECT
    if op == "add":  # strict models refuse unknown fields; peak_flops maps dtypes
        return ANY if path and path[-1] == "peak_flops" else REJECT
    if op == "delete":
        return ANY
    key = path[-1] if isinstance(path[-1], str) else path[-2]
    kind = ("count" if key in HW_COUNT else "positive" if key in HW_POSITIVE else "nonneg" if key in HW_NONNEG
            else "flops" if len(path) >= 2 and path[-2] == "peak_flops" else "name" if key in ("name", "aliases")
            and path[0] in ("name", "aliases") else "other")
    if kind in ("other", "name"):
        if isinstance(value, (list, dict)):
            return REJECT
        if kind == "name" and isinstance(value, str):
            import re
            return ANY if re.fullmatch(r"[a-z0-9][a-z0-9._-]*", value) else REJECT
        return ANY
    if value is None or isinstance(value, bool):
        return ANY
    if isinstance(value, (list, dict)):
        return REJECT
    if kind == "count" and isinstance(value, str):
        return REJECT
    v = _unit_number(value)
    if v is None or not math.isfinite(v) or v < 0:
        return REJECT
    if kind == "count" and (v < 1 or v != int(v) or v > L.MAX_GPUS):
        return REJECT
    if kind == "positive" and (v == 0 or (key == "memory_bytes" and v < 1e-6)):
        return REJECT
    if kind == "flops" and key in ("bf16", "fp16") and v == 0:
        return REJECT
    return ANY


@st.composite
def hardware_case(draw):
    name = draw(st.sampled_from(sorted(HW_BASES)))
    doc = copy.deepcopy(HW_BASES[name])
    op = draw(st.sampled_from(["set"] * 6 + ["delete", "add", "raw"]))
    if op == "raw":
        raw = draw(st.sampled_from(HW_RAW))
        return raw, "raw", (), None, f"{name}: raw {str(raw)[:40]!r}"
    if op == "add":
        path = draw(st.sampled_from(mapping_paths(doc)))
        get_at(doc, path)["zz_unknown"] = 1
        return yaml.safe_dump(doc), op, path, None, f"{name}: add {path_text(path)}.zz_unknown"
    path = draw(st.sampled_from(leaf_paths(doc)))
    if op == "delete":
        delete_at(doc, path)
        return yaml.safe_dump(doc), op, path, None, f"{name}: delete {path_text(path)}"
    value = draw(st.sampled_from(HW_VALUES))
    set_at(doc, path, value)
    return yaml.safe_dump(doc, allow_unicode=True), op, path, value, f"{name}: {path_text(path)} = {value!r}"


def test_hardware_yaml(scratch):
    rec = Recorder("hardware-yaml", scratch)

    @fuzz_settings(200)
    @given(hardware_case())
    def run(case):
        text, op, path, value, note = case
        expect = hardware_expect(path, value, op)
        f = str(case_file(scratch, ".yaml", text))
        rec.cli(["specs", "validate", f], expect, note)
        rec.cli(["estimate", "train", "-m", "llama-3.1-8b", "-g", f, "-n", "8", "--gbs", "8", "--seq", "2048"],
                expect, note)

    run()
    rec.check()


# ---------------------------------------------------------------------------
# config.json
# ---------------------------------------------------------------------------

CFG_BASES = {name: json.loads((ROOT / "model_specs" / f"{name}.json").read_text()) for name in
             ("llama-3.1-8b", "qwen3-8b", "qwen3-30b-a3b", "mistral-7b-v0.1", "gpt2", "mixtral-8x7b")}
CFG_WHOLE = {"num_attention_heads", "hidden_size", "num_hidden_layers", "num_key_value_heads", "head_dim",
             "max_position_embeddings", "vocab_size", "num_experts", "num_experts_per_tok", "moe_intermediate_size",
             "num_local_experts", "intermediate_size", "n_embd", "n_head", "n_layer", "n_positions", "n_inner",
             "sliding_window", "decoder_sparse_step"}
CFG_REQUIRED = {"num_attention_heads", "hidden_size", "num_hidden_layers", "vocab_size", "n_embd", "n_head",
                "n_layer", "num_experts", "num_experts_per_tok", "num_local_experts", "moe_intermediate_size"}
CFG_VALUES: list[Any] = [NAN, INF, -INF, -1, 0, 1e-30, 1.5, 10**9, 10**30, 1e30, "8", "abc", [1, 2], {"a": 1}, None,
                         True, 4097, 7, 3, [999, -1], [0, 1], "Qwen/Qwen3-8B\ntouch /tmp/x\n#", "x" * 300]
CFG_RAW: list[str | bytes] = [deep_json(100_000), "[]", "null", "{}", "{", "", "NaN", '"text"',
                              '{"model_type": "llama"}', bytes(range(256)) * 8, '{"hidden_size": 1e999}']


def _whole(v: Any) -> bool:
    return is_number(v) and math.isfinite(v) and v == int(v)


def config_consistent(cfg: dict) -> bool:
    """The relations between the fields a loader must check (when each field is a positive whole number)."""
    def get(*keys):
        for k in keys:
            if cfg.get(k) is not None:
                return cfg[k]
        return None

    heads, hidden = get("num_attention_heads", "n_head"), get("hidden_size", "n_embd")
    kv, head_dim = get("num_key_value_heads") or heads, cfg.get("head_dim")
    layers = get("num_hidden_layers", "n_layer")
    if not all(_whole(x) and x >= 1 for x in (heads, hidden, kv, layers)):
        return True  # judged by the field rules
    if heads % kv:
        return False
    if head_dim is None and hidden % heads:
        return False
    experts, k = get("num_experts", "num_local_experts"), get("num_experts_per_tok")
    if _whole(experts) and _whole(k) and experts >= 1 and k > experts:
        return False
    mlp_only = cfg.get("mlp_only_layers")
    return not (isinstance(mlp_only, list) and any(not _whole(i) or not 0 <= i < layers for i in mlp_only))


def config_expect(cfg: dict, key: Any, value: Any, op: str) -> str:
    if op == "raw":
        return REJECT
    if op == "add":
        return ANY
    if op == "delete":
        return REJECT if key in CFG_REQUIRED else ANY
    if key in CFG_WHOLE:
        if value is None:
            return ANY
        if not _whole(value) or value < 1 or value >= 10**9:
            return REJECT
        return ANY if config_consistent(cfg) else REJECT
    if key == "mlp_only_layers":
        if value is None:
            return ANY
        if not isinstance(value, list):
            return REJECT
        return ANY if config_consistent(cfg) else REJECT
    if key == "tie_word_embeddings":
        return ANY if value is None or isinstance(value, bool) else REJECT
    return ANY


def _config_consumers(f: str, moe: bool) -> list[list[str]]:
    out = [
        ["estimate", "serve", "-m", f, "-g", "h100", "--tp", "8", "--isl", "512", "--osl", "64", "-c", "4"],
        ["estimate", "train", "-m", f, "-g", "h100", "-n", "8", "--gbs", "8", "--seq", "512"],
        ["simulate", "-m", f, "-g", "h100", "--tp", "8", "--rate", "2", "--requests", "20", "--isl", "512",
         "--osl", "64"],
        ["serve", "-m", f, "-g", "h100", "-n", "8", "--ttft", "5s", "--tpot", "200ms", "--isl", "512", "--osl", "64"],
        ["train", "-m", f, "-g", "h100", "-n", "8", "--seq", "512", "--gbs", "16", "--no-refine"],
    ]
    if moe:
        out.append(["experts", "-m", f, "--gpus", "8", "--synthetic", "--tokens", "128", "--time-limit", "0.3",
                    "--no-holdout"])
    return out


@st.composite
def config_case(draw):
    name = draw(st.sampled_from(sorted(CFG_BASES)))
    cfg = copy.deepcopy(CFG_BASES[name])
    moe = any(k in cfg for k in ("num_experts", "num_local_experts"))
    op = draw(st.sampled_from(["set"] * 8 + ["delete", "add", "raw"]))
    consumer = draw(st.integers(0, 5 if moe else 4))
    if op == "raw":
        raw = draw(st.sampled_from(CFG_RAW))
        return raw, op, None, None, REJECT, moe, consumer, f"{name}: raw {str(raw)[:40]!r}"
    if op == "add":
        cfg["zz_unknown"] = {"a": [1, 2]}
        return json.dumps(cfg), op, None, None, ANY, moe, consumer, f"{name}: add zz_unknown"
    key = draw(st.sampled_from(sorted(cfg)))
    if op == "delete":
        del cfg[key]
        return json.dumps(cfg), op, key, None, config_expect(cfg, key, None, op), moe, consumer, \
            f"{name}: delete {key}"
    value = draw(st.sampled_from(CFG_VALUES + ([2 * cfg[key], cfg[key] + 1] if _whole(cfg[key]) else [])))
    assume(not (type(value) is type(cfg[key]) and value == cfg[key]))
    cfg[key] = value
    return (json.dumps(cfg), op, key, value, config_expect(cfg, key, value, op), moe, consumer,
            f"{name}: {key} = {value!r}"[:200])


def test_config_json(scratch):
    rec = Recorder("config-json", scratch)

    @fuzz_settings(250)
    @given(config_case())
    def run(case):
        text, _op, _key, _value, expect, moe, consumer, note = case
        f = str(case_file(scratch, ".json", text))
        rec.cli(["specs", "validate", f], expect, note)
        rec.cli(_config_consumers(f, moe)[consumer], expect, note)

    run()
    rec.check()


# ---------------------------------------------------------------------------
# request traces (CSV)
# ---------------------------------------------------------------------------

TRACE_HEADER = ["arrived_at", "num_prefill_tokens", "num_decode_tokens"]
TRACE_ROWS = [[f"{0.25 * i:.2f}", str(200 + 97 * i % 1500), str(20 + 31 * i % 180)] for i in range(30)]
BIG_FIELD = "9" * 131072
TRACE_CELL_BAD = ["nan", "inf", "-inf", "abc", "", "1e400", BIG_FIELD, "\x00", "1,5"]
TRACE_TOKENS_BAD = ["-5", "1e9", "1000000000", "1e30", str(10**30)]
TRACE_CELL_OK = ["0", "1", "1.5", "-0", "17", "100.0"]


def _csv(rows: list[list[str]]) -> str:
    return "\n".join(",".join(r) for r in rows) + "\n"


@st.composite
def request_trace_case(draw):
    rows = [list(r) for r in TRACE_ROWS]
    op = draw(st.sampled_from(["cell"] * 6 + ["ragged", "header", "raw", "reorder"]))
    if op == "cell":
        r, c = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, 2))
        value = draw(st.sampled_from(TRACE_CELL_BAD + TRACE_TOKENS_BAD + TRACE_CELL_OK + ["-5", "1e9"]))
        rows[r][c] = value
        if c == 0:  # an arrival time: finite numbers are fine (the trace is shifted to start at 0)
            expect = ANY if (read_number(value) is not None and math.isfinite(read_number(value))
                             and len(value) < 4096) else REJECT
        else:
            expect = ANY if value in TRACE_CELL_OK else REJECT
        if value == "1,5":  # an extra column in one row: ragged
            expect = REJECT
        return _csv([TRACE_HEADER] + rows), expect, f"row {r} column {TRACE_HEADER[c]} = {value[:20]!r}"
    if op == "ragged":
        r = draw(st.integers(0, len(rows) - 1))
        rows[r] = rows[r][:2] if draw(st.booleans()) else rows[r] + ["7"]
        return _csv([TRACE_HEADER] + rows), REJECT, f"row {r} has {len(rows[r])} fields"
    if op == "header":
        header = draw(st.sampled_from([[], ["a", "b", "c"], ["arrived_at", "num_prefill_tokens"],
                                       ["arrived_at", "num_prefill_tokens", "num_decode_tokens", "extra"]]))
        if len(header) == 4:
            return _csv([header] + [r + ["x"] for r in rows]), ANY, "an extra column"
        return _csv(([header] if header else []) + rows), REJECT, f"header {header}"
    if op == "reorder":
        rows.reverse()
        return _csv([TRACE_HEADER] + rows), ANY, "arrival times decreasing"
    raw = draw(st.sampled_from(["", _csv([TRACE_HEADER]), bytes(range(256)) * 4, "\ufeff" + _csv([TRACE_HEADER]),
                                deep_json(1000)]))
    return raw, REJECT, f"raw {str(raw)[:30]!r}"


def test_request_traces(scratch):
    rec = Recorder("request-traces", scratch)

    @fuzz_settings(150)
    @given(request_trace_case())
    def run(case):
        content, expect, note = case
        f = str(case_file(scratch, ".csv", content))
        rec.cli(["simulate", "-m", "qwen3-8b", "-g", "h100", "--trace", f, "--requests", "30"], expect, note)
        rec.cli(["serve", "-m", "qwen3-8b", "-g", "h100", "-n", "8", "--ttft", "2s", "--tpot", "100ms",
                 "--trace", f], expect, note)

    run()
    rec.check()


# ---------------------------------------------------------------------------
# routing traces (.json, .npz)
# ---------------------------------------------------------------------------

ROUTING_MODEL = "gpt-oss-20b"  # 24 MoE layers, 32 experts, top-4


@pytest.fixture(scope="module")
def routing_docs(scratch) -> dict[str, dict]:
    from planner.moe.trace import save_routing

    trace = planner.moe.synthetic_trace(planner.get_model(ROUTING_MODEL), tokens=32, seed=1)
    out = {}
    for kind, obj in (("tokens", trace), ("stats", trace.stats())):
        p = scratch / f"routing-{kind}.json"
        save_routing(obj, p)
        out[kind] = json.loads(p.read_text())
    return out


ROUTING_VALUES: list[Any] = [-5, 0, -8, 1.5, NAN, INF, "abc", [3, 4], None, 10**30, 3, 5, 64, [[1]], {"a": 1}]


def routing_expect(kind: str, key: str, value: Any, op: str) -> str:
    """Per-token trace (``experts``, ``num_experts``, ``top_k``) or aggregated (``load``, ``transitions``, ``top_k``,
    ``tokens``, ``num_experts``) of gpt-oss-20b (32 experts, top-4)."""
    if op in ("raw", "ragged"):
        return REJECT
    if op == "delete":
        return REJECT if key in ("experts", "load", "transitions", "top_k") and not (kind == "tokens" and
                                                                                     key == "top_k") else ANY
    if key in ("model",):
        return ANY
    if key == "format":
        return REJECT
    # A malformed declaration (not a positive whole number) is always refused; a well-formed one that the
    # arrays contradict must be refused where the reader relies on it (per-token ids against num_experts, the
    # aggregated top_k against the model), and may be ignored where the arrays say it (their shapes).
    if key == "num_experts":
        if value is None:
            return ANY
        if not _whole(value) or value < 1:
            return REJECT
        return ANY if value == 32 or kind == "stats" else REJECT
    if key == "top_k":
        if kind == "tokens" and value is None:
            return ANY
        if not _whole(value) or value < 1:
            return REJECT
        return ANY if value == 4 or kind == "tokens" else REJECT
    if key == "tokens":
        if value is None:
            return ANY
        return ANY if _whole(value) and 1 <= value <= L.MAX_ROUTING_TOKENS else REJECT
    if key == "expert_id":  # one id in the per-token array
        return ANY if _whole(value) and 0 <= value < 32 else REJECT
    if key == "load_value":
        return ANY if finite(value) and value >= 0 else REJECT
    return ANY


@st.composite
def routing_case(draw, docs):
    kind = draw(st.sampled_from(["tokens", "stats"]))
    doc = copy.deepcopy(docs[kind])
    suffix = draw(st.sampled_from([".json", ".npz"]))
    op = draw(st.sampled_from(["set"] * 5 + ["cell", "delete", "raw", "ragged"]))
    key, value = "", None
    if op == "set":
        key = draw(st.sampled_from(sorted(k for k in doc if k not in ("experts", "load", "transitions"))))
        value = draw(st.sampled_from(ROUTING_VALUES))
        doc[key] = value
    elif op == "cell":
        value = draw(st.sampled_from([-1, 32, 1000, 1.5, NAN, -0.5, 3]))
        if kind == "tokens":
            key = "expert_id"
            doc["experts"][draw(st.integers(0, 31))][draw(st.integers(0, 23))][0] = value
        else:
            key = "load_value"
            doc["load"][draw(st.integers(0, 23))][draw(st.integers(0, 31))] = value
    elif op == "delete":
        key = draw(st.sampled_from(sorted(doc)))
        del doc[key]
    elif op == "ragged":
        arr = "experts" if kind == "tokens" else "load"
        doc[arr][0] = doc[arr][0][:-1]
    note = f"{kind} trace{suffix}: {op} {key} = {value!r}"
    if op == "raw":
        raw = draw(st.sampled_from([b"", b"PK\x03\x04junk", bytes(range(256)), deep_json(100_000).encode(),
                                    b"[]", b'{"format": "planner.routing.v1"}']))
        return kind, suffix, raw, REJECT, f"raw {raw[:30]!r}{suffix}"
    expect = routing_expect(kind, key, value, op)
    if suffix == ".json":
        return kind, suffix, json.dumps(doc).encode(), expect, note
    # .npz: the same content as arrays (an object array is refused: np.load never unpickles)
    arrays = {}
    for k, v in doc.items():
        if k == "format":
            continue
        if v is None:
            continue
        try:
            arrays[k] = np.asarray(v)
        except ValueError:  # ragged: an object array
            arrays[k] = np.asarray(v, dtype=object)
    if op == "set" and key == "format":
        expect = ANY  # .npz files carry no format field
    if op == "set" and value is None:  # no array is written: as if deleted
        expect = routing_expect(kind, key, None, "delete")
    if any(a.dtype == object for a in arrays.values()):  # a ragged array: np.load refuses it (no pickles)
        expect = REJECT
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return kind, suffix, buf.getvalue(), expect, note


def test_routing_traces(scratch, routing_docs):
    rec = Recorder("routing-traces", scratch)

    @fuzz_settings(60)
    @given(routing_case(routing_docs))
    def run(case):
        kind, suffix, content, expect, note = case
        f = str(case_file(scratch, suffix, content))
        holdout = ["--no-holdout"] if kind == "tokens" else []  # an aggregated trace cannot be split
        rec.cli(["experts", "-m", ROUTING_MODEL, "--gpus", "8", "--trace", f, "--time-limit", "0.5", *holdout],
                expect, note)

    run()
    rec.check()


# ---------------------------------------------------------------------------
# plan documents
# ---------------------------------------------------------------------------

TRAIN_PLAN_ARGV = ["train", "-m", "llama-3.1-8b", "-g", "h100", "-n", "16", "--seq", "2048", "--gbs", "64", "--json"]
SERVE_PLAN_ARGVS = [
    ["serve", "-m", "qwen3-8b", "-g", "h100", "-n", "8", "--ttft", "1s", "--tpot", "50ms", "--isl", "1024", "--osl",
     "128", "--rate", "5", "--json"],
    ["serve", "-m", "qwen3-8b", "-g", "h100", "-n", "16", "--ttft", "2s", "--tpot", "50ms", "--isl", "2048", "--osl",
     "256", "--disagg", "on", "--json"],
]


def find_documents(obj: Any, schema: str) -> list[dict]:
    """Every object in ``obj`` whose ``schema`` is ``schema`` (outermost first)."""
    if isinstance(obj, dict):
        if obj.get("schema") == schema:
            return [obj]
        return [d for v in obj.values() for d in find_documents(v, schema)]
    if isinstance(obj, list):
        return [d for v in obj for d in find_documents(v, schema)]
    return []


@pytest.fixture(scope="module")
def training_document(scratch) -> dict:
    run = run_cli(TRAIN_PLAN_ARGV)
    assert run.code == 0, run.stderr
    return json.loads(run.stdout)["best"]["plan_document"]


@pytest.fixture(scope="module")
def serving_documents(scratch) -> list[dict]:
    docs = []
    for argv in SERVE_PLAN_ARGVS:
        run = run_cli(argv)
        assert run.code == 0, run.stderr
        found = find_documents(json.loads(run.stdout), "planner.serving-plan")
        assert found, f"`planner {' '.join(argv)}` prints no plan document (schema planner.serving-plan)"
        docs.append(found[0])
    return docs


def export_targets() -> list[str]:
    """The ``--to`` choices of ``planner export``."""
    import typer.main

    from planner.cli import app

    command = typer.main.get_command(app)
    for p in command.commands["export"].params:
        choices = getattr(getattr(p, "type", None), "choices", None)
        if p.name == "to" and choices:
            return [str(c) for c in choices]
    return ["megatron", "torchtitan", "deepspeed", "slurm", "vllm", "sglang", "trtllm", "k8s"]


DOC_VALUES: list[Any] = [NAN, INF, -1, 0, 1e-30, 1.5, 2.0, 3, 7, 15, 1e15, 10**30, "8", "abc", "x\ny", "1.x", "1",
                         "1.0.1", [], [999, -1], {"a": {"b": 1}}, None, True, False]
DOC_RAW: list[str | bytes] = [deep_json(100_000), "[]", "null", '"text"', "1", "{", "", "NaN",
                              '{"schema": "planner.training-plan"}', '{"best": {"plan_document": 5}}',
                              bytes(range(256)) * 4]


def same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _bad_type(old: Any, value: Any) -> bool:
    """``value`` cannot stand where ``old`` stood (strict types: no "8" for 8, no 2.0 for an int, no 1 for true)."""
    if isinstance(old, bool):
        return not isinstance(value, bool)
    if isinstance(old, int):
        return not (isinstance(value, int) and not isinstance(value, bool))
    if isinstance(old, float):
        return not is_number(value)
    if isinstance(old, str):
        return not isinstance(value, str)
    return False


SPEC_NONZERO = {"num_layers", "hidden_size", "num_heads", "num_kv_heads", "vocab_size", "max_seq_len", "head_dim",
                "memory_bytes", "hbm_bandwidth_bytes_per_s", "accelerators_per_node", "scale_up_domain"}
SPEC_LABELS = {"name", "model_type", "hf_id", "aliases"}


def embedded_spec_expect(path: tuple, old: Any, value: Any) -> str:
    """A field of the model or system spec a document embeds (``model.spec.*``, ``system.spec.*``): re-validated
    on import as the spec files are."""
    key = path[-1] if isinstance(path[-1], str) else path[-2]
    if isinstance(value, (list, dict)) and not isinstance(old, (list, dict)):
        return REJECT
    if isinstance(value, str) and is_number(old) and read_number(value) is None:
        return REJECT
    if is_number(old) and is_number(value) and value < 0:
        return REJECT
    if is_number(value) and value == 0 and key in SPEC_NONZERO:
        return REJECT
    if isinstance(value, str) and key in SPEC_LABELS and any(ord(c) < 32 for c in value):
        return REJECT
    return ANY


TRAIN_DEGREES = {("plan", "tp"), ("plan", "pp"), ("plan", "cp"), ("plan", "dp"), ("system", "num_gpus")}
TRAIN_REQUIRED = TRAIN_DEGREES | {("schema",), ("schema_version",), ("model", "name"), ("system", "name")}


def training_doc_expect(doc0: dict, path: tuple, value: Any, op: str) -> str:
    if op == "raw":
        return REJECT
    if op == "add":  # the documents are strict: an unknown field is refused (but in a mapping by name)
        return ANY if path[-1:] in (("peak_flops",), ("breakdown",)) else REJECT
    if op == "delete":
        return REJECT if path in TRAIN_REQUIRED else ANY
    if isinstance(value, float) and not math.isfinite(value):
        return REJECT  # NaN / Infinity are not JSON
    old = get_at(doc0, path)
    if len(path) >= 2 and path[0] in ("model", "system") and path[1] == "spec":
        return embedded_spec_expect(path, old, value)
    if path in {("schema",), ("schema_version",)} or path in TRAIN_DEGREES:
        return REJECT  # the version is exact; a degree or the GPU count no longer multiplies
    if old is None:
        return ANY
    if _bad_type(old, value) and (path[0] in ("plan", "system") or is_number(old) or isinstance(old, bool)):
        return REJECT
    if _bad_type(old, value):
        return ANY if value is None else REJECT
    if path == ("estimate", "fits"):
        return REJECT if value is False else ANY
    if path[:2] == ("estimate", "memory") and path[2] != "capacity_bytes":  # no part of the memory beyond it
        return REJECT if value > doc0["estimate"]["memory"]["capacity_bytes"] or value < 0 else ANY
    if is_number(old):
        if value < 0:
            return REJECT
        if path[0] == "plan" and (value > 10**12 or (value < 1 and path[1] not in ("zero",))):
            return REJECT
        if path == ("plan", "zero") and value > 3:
            return REJECT
        if path[0] == "system" and path[1] != "price_per_gpu_hour_usd" and value == 0:
            return REJECT
    return ANY


SERVE_OPTIONAL_DELETE = {("traffic", "rate_rps"), ("traffic", "source"), ("prediction", "cost_per_hour_usd"),
                         ("prediction", "cost_per_million_tokens_usd"), ("model", "hf_id"), ("schema",),
                         ("schema_version",)}
SERVE_LITERALS = {"precision": {"bf16", "fp16", "fp8", "int4", "fp4"}, "kv_dtype": {"auto", "bf16", "fp16", "fp8"},
                  "backend": BACKENDS, "name": BACKENDS}


def serving_doc_expect(doc0: dict, path: tuple, value: Any, op: str) -> str:
    in_spec = len(path) >= 2 and path[0] in ("model", "system") and path[1] == "spec"
    if op == "raw":
        return REJECT
    if op == "add":
        return ANY if path[-1:] == ("peak_flops",) or path[:1] == ("solver",) else REJECT
    if op == "delete":
        if in_spec or path in SERVE_OPTIONAL_DELETE or (path[0] == "pools" and path[2] == "plan"):
            return ANY
        return REJECT
    if isinstance(value, float) and not math.isfinite(value):
        return REJECT
    if value is None and path in SERVE_OPTIONAL_DELETE:
        return ANY
    old = get_at(doc0, path)
    if in_spec:
        return embedded_spec_expect(path, old, value)
    if path in {("schema",), ("schema_version",), ("mode",), ("gpus",)}:
        return REJECT
    if path[0] == "pools" and path[2] in ("workers", "gpus_per_worker", "gpus", "role"):
        return REJECT
    if path[0] == "pools" and path[2] == "plan" and path[3] in ("tp", "dp", "pp"):
        return REJECT
    if old is None:
        return ANY if value is None or (is_number(value) and value > 0 and value < 1e6) else REJECT
    if _bad_type(old, value):
        return REJECT
    if isinstance(old, str):
        lit = SERVE_LITERALS.get(path[-1]) if path[-1] != "name" or path[0] == "engine" else None
        if lit is not None:
            return ANY if value in lit else REJECT
        if path == ("engine", "version"):
            return REJECT if not value or len(value) > 40 else ANY
        return ANY
    if isinstance(old, bool):
        return ANY
    if value < 0:
        return REJECT
    if path == ("gpu_budget",):
        return REJECT if value < doc0["gpus"] or value > L.MAX_GPUS else ANY
    if path[0] == "slo":
        predicted = doc0["prediction"][path[1]]
        return REJECT if value <= 0 or value < predicted or value > L.MAX_SLO_S * 1e3 else ANY
    if path[0] == "pools" and path[2] == "max_model_len":
        return REJECT if value < doc0["traffic"]["max_request_tokens"] else ANY
    if path[0] == "pools" and path[2] == "predicted":
        pool = doc0["pools"][path[1]]["predicted"]
        if path[3] == "peak_bytes" and value > pool["capacity_bytes"]:
            return REJECT
        if path[3] == "capacity_bytes" and (value <= 0 or value < pool["peak_bytes"]):
            return REJECT
        return ANY
    if path[0] == "pools" and path[2] in ("concurrency",) and (value < 1 or value > L.MAX_CONCURRENCY):
        return REJECT
    if path[0] == "pools" and path[2] == "plan" and (value < 1 or value > L.MAX_GPUS):
        return REJECT
    if path[0] == "traffic":
        if path[1] == "rate_rps" and (value <= 0 or value > L.MAX_RATE):
            return REJECT
        if path[1] in ("isl", "osl") and (value < 1 or value > L.MAX_REQUEST_TOKENS):
            return REJECT
        if path[1] == "max_request_tokens" and (value < 2 or value > min(p["max_model_len"] for p in doc0["pools"])):
            return REJECT
    return ANY


@st.composite
def document_case(draw, doc0: dict, expect_fn):
    doc = copy.deepcopy(doc0)
    op = draw(st.sampled_from(["set"] * 7 + ["delete", "add", "raw"]))
    if op == "raw":
        raw = draw(st.sampled_from(DOC_RAW))
        return raw, REJECT, f"raw {str(raw)[:40]!r}"
    if op == "add":
        path = draw(st.sampled_from(mapping_paths(doc)))
        get_at(doc, path)["zz_unknown"] = 1
        return json.dumps(doc), expect_fn(doc0, path, None, op), f"add {path_text(path)}.zz_unknown"
    path = draw(st.sampled_from(leaf_paths(doc)))
    if op == "delete":
        delete_at(doc, path)
        return json.dumps(doc), expect_fn(doc0, path, None, op), f"delete {path_text(path)}"
    old = get_at(doc, path)
    derived = [str(old), old + 1, old * 2] if is_number(old) else []
    value = draw(st.sampled_from(DOC_VALUES + derived))
    assume(not same(value, old))
    set_at(doc, path, value)
    return json.dumps(doc), expect_fn(doc0, path, value, op), f"{path_text(path)} = {value!r}"[:160]


def test_training_documents(scratch, training_document):
    """Mutated training plan documents through ``planner check`` and ``planner export`` to two of its targets."""
    rec = Recorder("training-docs", scratch)
    targets = export_targets()

    @fuzz_settings(130)
    @given(document_case(training_document, training_doc_expect), st.permutations(targets))
    def run(case, order):
        content, expect, note = case
        f = str(case_file(scratch, ".json", content))
        for argv in [["check", f]] + [["export", f, "--to", t] for t in order[:2]]:
            rec.cli(argv, expect, note)

    run()
    rec.check()


def test_serving_documents(scratch, serving_documents):
    """Mutated serving plan documents (aggregated and disaggregated) through ``planner check`` and ``planner
    export`` to two of its targets."""
    rec = Recorder("serving-docs", scratch)
    targets = export_targets()

    @fuzz_settings(110)
    @given(st.integers(0, len(serving_documents) - 1).flatmap(
        lambda i: document_case(serving_documents[i], serving_doc_expect)), st.permutations(targets))
    def run(case, order):
        content, expect, note = case
        f = str(case_file(scratch, ".json", content))
        for argv in [["check", f]] + [["export", f, "--to", t] for t in order[:2]]:
            rec.cli(argv, expect, note)

    run()
    rec.check()


# ---------------------------------------------------------------------------
# special files (a folder, a FIFO, /dev/zero, empty, 70 MB, binary, deep nesting)
# ---------------------------------------------------------------------------

#: (the suffix a reader expects, argv with {f} for the file)
SPECIAL_CONSUMERS: list[tuple[str, list[str]]] = [
    (".json", ["specs", "validate", "{f}"]),
    (".yaml", ["specs", "validate", "{f}"]),
    (".json", ["estimate", "train", "-m", "{f}", "-g", "h100", "-n", "8", "--gbs", "8", "--seq", "2048"]),
    (".yaml", ["estimate", "train", "-m", "llama-3.1-8b", "-g", "{f}", "-n", "8", "--gbs", "8", "--seq", "2048"]),
    (".csv", ["simulate", "-m", "qwen3-8b", "-g", "h100", "--trace", "{f}", "--requests", "20"]),
    (".csv", ["serve", "-m", "qwen3-8b", "-g", "h100", "-n", "8", "--ttft", "2s", "--tpot", "100ms", "--trace", "{f}"]),
    (".csv", ["estimate", "serve", "--from-csv", "{f}"]),
    (".json", ["experts", "-m", ROUTING_MODEL, "--gpus", "8", "--trace", "{f}", "--time-limit", "0.5"]),
    (".npz", ["experts", "-m", ROUTING_MODEL, "--gpus", "8", "--trace", "{f}", "--time-limit", "0.5"]),
    (".json", ["export", "{f}", "--to", "megatron"]),
    (".json", ["check", "{f}"]),
]


def _make_special(folder: Path, kind: str, suffix: str) -> Path:
    p = folder / f"{kind}{suffix}"
    if kind == "folder":
        p.mkdir()
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "devzero":
        p.symlink_to("/dev/zero")
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "big":  # 70 MB, sparse: larger than any input may be
        with p.open("wb") as f:
            f.truncate(70 * 10**6)
    elif kind == "binary":
        p.write_bytes(bytes(range(256)) * 64)
    elif kind == "nested":
        p.write_text(deep_json(200_000))
    return p


SPECIAL_KINDS = ["folder", "fifo", "devzero", "empty", "big", "binary", "nested"]


def test_special_files(scratch):
    """Every reader refuses special, empty, oversized, binary and deeply nested files with one line. The cases run
    in a child process (a reader that waits on a FIFO or reads /dev/zero must not take this process down)."""
    folder = scratch / "special"
    folder.mkdir()
    cases = []
    for kind in SPECIAL_KINDS:
        for suffix in (".json", ".yaml", ".csv", ".npz"):
            f = str(_make_special(folder, kind, suffix))
            cases += [([a.replace("{f}", f) for a in argv], kind) for want, argv in SPECIAL_CONSUMERS if want == suffix]
    runner = Path(__file__).with_name("fuzz_support.py")
    limit = str(2 * 2**30)
    proc = subprocess.run([sys.executable, str(runner), limit], input=json.dumps([a for a, _ in cases]),
                          capture_output=True, text=True, timeout=600, cwd=scratch, check=False)
    assert proc.returncode == 0, f"runner died: {proc.returncode} {proc.stderr[-2000:]}"
    results = json.loads(proc.stdout)
    rec = Recorder("special-files", scratch)
    assert len(results) == len(cases)
    for (argv, kind), res in zip(cases, results):
        rec.record(res["problem"], reproducer(argv, kind), res["seconds"], res["outcome"])
    rec.check()


# ---------------------------------------------------------------------------
# the Python API
# ---------------------------------------------------------------------------

API_NUMBERS: list[Any] = [NAN, INF, -INF, -1, 0, 1e-30, 0.5, 1.5, 2, 8, 64, 10**30, 1e30, -(10**30)]


def _bad_count(hi: float):
    return lambda v: not finite(v) or v < 1 or v != int(v) or v > hi


def _bad_positive(hi: float | None = None):
    return lambda v: not finite(v) or v <= 0 or (hi is not None and v > hi)


def _bad_nonneg(hi: float | None = None):
    return lambda v: not finite(v) or v < 0 or (hi is not None and v > hi)


def _bad_fraction(v):
    return not finite(v) or v <= 0 or v > 1


def _bad_nonfinite(v):
    return not finite(v)


@pytest.fixture(scope="module")
def api_targets(scratch):
    """(label, argument, is-bad predicate, call taking the value): one argument of one API function at a time."""
    from planner import simulation as sim
    from planner.cost.serving import ServingPlan, estimate_serving
    from planner.moe.placement import ExpertCluster

    qwen, h100 = planner.get_model("qwen3-8b"), planner.get_system("h100")
    moe = planner.get_model(ROUTING_MODEL)
    stats = planner.moe.synthetic_trace(moe, tokens=64, seed=3).stats()
    plan = ServingPlan(tp=1, backend="vllm")
    requests = sim.poisson_requests(2.0, 20, 512, 64)
    train_kw = {"gpus": 8, "tp": 1, "pp": 1, "cp": 1, "micro_batch": 1, "global_batch": 8, "seq_len": 2048}
    search_kw: dict[str, Any] = {"gpus": 8, "seq_len": 2048, "global_batch": 64, "refine": False}
    synth_kw: dict[str, Any] = {"tokens": 64, "seed": 0}
    cluster_kw: dict[str, Any] = {"gpus": 8, "gpus_per_node": 8, "num_experts": 32}
    serve_kw: dict[str, Any] = {"isl": 512, "osl": 64, "concurrency": 4}
    poisson_kw: dict[str, Any] = {"rate": 2.0, "n": 20, "isl": 512, "osl": 64}

    def search(**kw):
        args = {**search_kw, **kw}
        return planner.search_train("llama-3.1-8b", "h100", args.pop("gpus"), args.pop("seq_len"),
                                    args.pop("global_batch"), **args)

    targets = []
    for arg, hi in (("gpus", L.MAX_GPUS), ("tp", L.MAX_GPUS), ("pp", L.MAX_GPUS), ("cp", L.MAX_GPUS),
                    ("micro_batch", L.MAX_BATCH), ("global_batch", L.MAX_BATCH), ("seq_len", L.MAX_POSITIONS)):
        targets.append((f"estimate_train({arg}=...)", _bad_count(hi),
                        lambda v, arg=arg: planner.estimate_train("llama-3.1-8b", "h100", **{**train_kw, arg: v})))
    for arg, bad, extra in (
            ("gpus", _bad_count(L.MAX_GPUS), {}), ("seq_len", _bad_count(L.MAX_POSITIONS), {}),
            ("global_batch", _bad_count(L.MAX_BATCH), {}),
            ("price_per_gpu_hour", _bad_nonneg(L.MAX_USD), {}), ("tokens", _bad_nonneg(L.MAX_TOKENS), {}),
            ("budget_usd", _bad_positive(L.MAX_USD), {"objective": "cost", "tokens": 1e12}),
            ("deadline_s", _bad_positive(L.MAX_DEADLINE_S), {"objective": "deadline", "tokens": 1e12}),
            ("max_memory_fraction", _bad_fraction, {})):
        targets.append((f"search_train({arg}=..., {extra})", bad, lambda v, arg=arg, extra=extra: search(
            **{**extra, arg: v})))
    for arg, bad in (("tokens", lambda v: not finite(v) or v < 2 or v != int(v) or v > L.MAX_ROUTING_TOKENS),
                     ("skew", _bad_nonfinite), ("drift", _bad_nonfinite), ("topic_boost", _bad_nonfinite),
                     ("affinity", lambda v: not finite(v) or not 0 <= v <= 1),
                     ("shift", lambda v: not finite(v) or not 0 <= v <= 1),
                     ("topics", _bad_count(L.MAX_EXPERTS))):
        targets.append((f"moe.synthetic_trace({ROUTING_MODEL}, {arg}=...)", bad,
                        lambda v, arg=arg: planner.moe.synthetic_trace(moe, **{**synth_kw, arg: v})))
    for arg, bad in (("gpus", _bad_count(L.MAX_GPUS)), ("gpus_per_node", _bad_count(L.MAX_GPUS)),
                     ("num_experts", _bad_count(L.MAX_EXPERTS)), ("redundant", lambda v: not finite(v) or v < 0
                                                                  or v != int(v) or v > L.MAX_EXPERTS),
                     ("c_node", _bad_positive(None)), ("c_gpu", _bad_nonneg(None))):
        targets.append((f"moe.ExpertCluster({arg}=...)", bad,
                        lambda v, arg=arg: ExpertCluster(**{**cluster_kw, arg: v})))
    bad_limit = _bad_positive(L.MAX_TIME_LIMIT_S)
    targets.append(("place_experts(time_limit=...)", bad_limit,  # a valid limit is cut to 0.5 s (a fast case)
                    lambda v: planner.place_experts(stats, ExpertCluster(8, 8, 32), time_limit=v if bad_limit(v)
                                                    else min(v, 0.5))))
    targets.append(("place_experts(max_imbalance=...)", lambda v: not (math.isnan(v) is False and v > 0)
                    if is_number(v) else True,
                    lambda v: planner.place_experts(stats, ExpertCluster(8, 8, 32), time_limit=0.3, max_imbalance=v)))
    for arg, hi in (("isl", L.MAX_REQUEST_TOKENS), ("osl", L.MAX_REQUEST_TOKENS), ("concurrency", L.MAX_CONCURRENCY)):
        targets.append((f"cost.serving.estimate_serving({arg}=...)", _bad_count(hi),
                        lambda v, arg=arg: estimate_serving(qwen, h100, plan, **{**serve_kw, arg: v})))
    for arg, bad in (("rate", _bad_positive(L.MAX_RATE)), ("n", _bad_count(L.MAX_REQUESTS)),
                     ("isl", _bad_count(L.MAX_REQUEST_TOKENS)), ("osl", _bad_count(L.MAX_REQUEST_TOKENS))):
        targets.append((f"simulate.poisson_requests({arg}=...)", bad,
                        lambda v, arg=arg: sim.poisson_requests(**{**poisson_kw, arg: v})))
    for arg in ("ttft_slo_ms", "tpot_slo_ms"):
        targets.append((f"simulate.simulate({arg}=...)", lambda v: not is_number(v) or math.isnan(v) or v <= 0,
                        lambda v, arg=arg: sim.simulate(qwen, h100, plan, requests, **{arg: v})))
    targets.append(("simulate.goodput(percentile=...)", lambda v: not finite(v) or not 0 < v <= 100,
                    lambda v: sim.goodput(qwen, h100, plan, requests, 1000.0, 100.0, percentile=v)))
    if hasattr(planner, "search_serve"):
        serve_search_kw: dict[str, Any] = {"gpus": 8, "isl": 1024, "osl": 128, "ttft_ms": 1000.0, "tpot_ms": 50.0}
        for arg, bad in (("gpus", _bad_count(L.MAX_GPUS)), ("isl", _bad_count(L.MAX_REQUEST_TOKENS)),
                         ("osl", _bad_count(L.MAX_REQUEST_TOKENS)), ("ttft_ms", _bad_positive(L.MAX_SLO_S * 1e3)),
                         ("tpot_ms", _bad_positive(L.MAX_SLO_S * 1e3)), ("rate", _bad_positive(L.MAX_RATE))):
            targets.append((f"search_serve({arg}=...)", bad, lambda v, arg=arg: planner.search_serve(
                "qwen3-8b", "h100", **{**serve_search_kw, arg: v})))
    # the notebook API of issue 14: one worker, a simulation, a mix from rows in memory
    for arg, bad in (("isl", _bad_count(L.MAX_REQUEST_TOKENS)), ("osl", _bad_count(L.MAX_REQUEST_TOKENS)),
                     ("concurrency", _bad_count(L.MAX_CONCURRENCY))):
        targets.append((f"estimate_serve({arg}=...)", bad, lambda v, arg=arg: planner.estimate_serve(
            "qwen3-8b", "h100", **{"isl": 1024, "osl": 128, "concurrency": 8, arg: v})))
    targets.append(("estimate_serve(rate=...)", _bad_positive(L.MAX_RATE),
                    lambda v: planner.estimate_serve("qwen3-8b", "h100", 1024, 128, rate=v)))
    targets.append(("simulate(rate=...)", _bad_positive(L.MAX_RATE),
                    lambda v: planner.simulate("qwen3-8b", "h100", rate=v, requests=20)))
    targets.append(("simulate(requests=...)", _bad_count(L.MAX_REQUESTS),  # a valid count is cut to 30
                    lambda v: planner.simulate("qwen3-8b", "h100", rate=4, requests=v if _bad_count(
                        L.MAX_REQUESTS)(v) else min(int(v), 30))))
    targets.append(("mix(histogram=[(512, 128, weight)])", lambda v: not finite(v) or v <= 0,
                    lambda v: planner.mix("llama-3.1-8b", ["a100"], 1000, 50, histogram=[(512, 128, v)], rate=1)))
    targets.append(("mix(histogram=[(isl, 128, 1)])", _bad_count(L.MAX_REQUEST_TOKENS),
                    lambda v: planner.mix("llama-3.1-8b", ["a100"], 60_000, 50, histogram=[(v, 128, 1)], rate=1)))
    return targets


API_PATHS = ["", "/", "/dev/null", "/nonexistent/x.json", "../../etc/passwd", "zz-unknown", "x\ny", "h10",
             "qwen3-8", "/etc/passwd", "\u202e"]


@pytest.fixture(scope="module")
def api_path_targets(scratch):
    from planner import simulation as sim
    from planner.moe.trace import load_routing

    empty_dir = scratch / "empty-dir"
    empty_dir.mkdir(exist_ok=True)
    binary = scratch / "binary.json"
    binary.write_bytes(bytes(range(256)) * 4)
    paths = API_PATHS + [str(empty_dir), str(binary)]
    answer = planner.simulate("qwen3-8b", "h100", rate=4, requests=10)
    calls = [("get_model", planner.get_model), ("get_system", planner.get_system),
             ("simulate.trace_requests", sim.trace_requests), ("moe.trace.load_routing", load_routing),
             ("write_report", lambda p: planner.write_report(answer, p)),
             ("plot", lambda p: planner.plot(answer, p)),
             ("run_sweep(out=...)", lambda p: planner.run_sweep(
                 {"models": ["llama-3.1-8b"], "gpus": ["h100"], "counts": [8], "seq_lens": [2048],
                  "global_batch": 64}, p, workers=1)),
             ("run_sweep(grid=...)", lambda p: planner.run_sweep(p, str(scratch / "never.csv"), workers=1))]
    return paths, calls


def test_python_api(scratch, api_targets, api_path_targets):
    """Hostile arguments to the public functions: only PlannerError, and never a normal return for a bad value."""
    rec = Recorder("api", scratch)

    @fuzz_settings(300)
    @given(st.sampled_from(api_targets), st.sampled_from(API_NUMBERS))
    def numbers(target, value):
        label, bad, call = target
        rec.api(f"{label} with {value!r}", lambda: call(value), REJECT if bad(value) else ANY)

    paths, calls = api_path_targets

    @fuzz_settings(60)
    @given(st.sampled_from(calls), st.sampled_from(paths))
    def names(target, value):
        label, fn = target
        rec.api(f"{label}({value!r})", lambda: fn(value), REJECT)

    nested: Any = {}
    for _ in range(5000):
        nested = {"plan": nested}
    for i, obj in enumerate([None, [], "plan", 5, {}, {"schema": "planner.training-plan"}, nested,
                             {"schema": "planner.serving-plan", "schema_version": "1.0"}]):
        rec.api(f"check(hostile object {i})", lambda obj=obj: planner.check(obj), REJECT)

    numbers()
    names()
    rec.check()


# ---------------------------------------------------------------------------
# regression cases: every failure reported in issue 10
# ---------------------------------------------------------------------------

INJECTED_NAME = "Qwen/Qwen3-8B\necho pwned > PWNED\n#"


def _write_json(folder: Path, name: str, obj: Any) -> str:
    p = folder / name
    p.write_text(json.dumps(obj))
    return str(p)


def _config(folder: Path, name: str, base: str, **changes: Any) -> str:
    cfg = copy.deepcopy(CFG_BASES[base])
    cfg.update(changes)
    return _write_json(folder, f"{name}.json", cfg)


def _hardware(folder: Path, name: str, path: tuple, value: Any) -> str:
    doc = copy.deepcopy(HW_BASES["h100-sxm"])
    set_at(doc, path, value)
    p = folder / f"{name}.yaml"
    p.write_text(yaml.safe_dump(doc))
    return str(p)


def _trace(folder: Path, name: str, rows: list[str]) -> str:
    p = folder / f"{name}.csv"
    p.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n" + "\n".join(rows) + "\n")
    return str(p)


FROM_CSV_HEADER = ("id,model_path,system,backend,precision,mode,isl,osl,batch_size,tp_size,pp_size,"
                   "attention_dp_size,moe_tp_size,moe_ep_size")


@pytest.fixture(scope="module")
def files(scratch, routing_docs, training_document, serving_documents) -> dict[str, str]:
    """Every input file the regression cases name."""
    d = scratch / "regression"
    d.mkdir()
    f: dict[str, str] = {}
    f["cfg_ok"] = _config(d, "ok", "qwen3-8b")
    f["cfg_inject"] = _config(d, "inject", "qwen3-8b", _name_or_path=INJECTED_NAME)
    f["cfg_heads0"] = _config(d, "heads0", "qwen3-8b", num_attention_heads=0)
    f["cfg_layers1e9"] = _config(d, "layers1e9", "llama-3.1-8b", num_hidden_layers=1_000_000_000)
    f["cfg_hidden4097"] = _config(d, "hidden4097", "llama-3.1-8b", hidden_size=4097)
    f["cfg_kv0"] = _config(d, "kv0", "llama-3.1-8b", num_key_value_heads=0)
    f["cfg_intermediate0"] = _config(d, "intermediate0", "llama-3.1-8b", intermediate_size=0)
    f["cfg_head_dim0"] = _config(d, "head_dim0", "qwen3-8b", head_dim=0)
    f["cfg_positions0"] = _config(d, "positions0", "llama-3.1-8b", max_position_embeddings=0)
    f["cfg_window0"] = _config(d, "window0", "mistral-7b-v0.1", sliding_window=0)
    f["cfg_window-1"] = _config(d, "window-1", "mistral-7b-v0.1", sliding_window=-1)
    f["cfg_mlp_only"] = _config(d, "mlp_only", "qwen3-30b-a3b", mlp_only_layers=[999, -1])
    f["cfg_deep"] = str(d / "deep.json")
    Path(f["cfg_deep"]).write_text(deep_json(100_000))
    f["cfg_binary"] = str(d / "binary.json")
    Path(f["cfg_binary"]).write_bytes(bytes(range(256)) * 8)
    f["hw_ok"] = _hardware(d, "hw_ok", ("name",), "hw-ok")
    f["hw_flops_nan"] = _hardware(d, "hw_flops_nan", ("accelerator", "peak_flops", "bf16"), NAN)
    f["hw_flops_inf"] = _hardware(d, "hw_flops_inf", ("accelerator", "peak_flops", "bf16"), INF)
    f["hw_memory_tiny"] = _hardware(d, "hw_memory_tiny", ("accelerator", "memory_bytes"), "1e-30 GB")
    f["hw_binary"] = str(d / "binary.yaml")
    Path(f["hw_binary"]).write_bytes(bytes(range(256)) * 8)
    ok_rows = [f"{0.5 * i},{300 + i},{40 + i}" for i in range(20)]
    f["trace_ok"] = _trace(d, "trace_ok", ok_rows)
    f["trace_nan"] = _trace(d, "trace_nan", ["nan,100,50"] + ok_rows[1:])
    f["trace_decode1e9"] = _trace(d, "trace_decode1e9", ["0,100,1000000000"] + ok_rows[1:])
    f["trace_inf"] = _trace(d, "trace_inf", ["0,inf,50"] + ok_rows[1:])
    f["trace_short_row"] = _trace(d, "trace_short_row", ["0,100"] + ok_rows[1:])
    f["trace_big_field"] = _trace(d, "trace_big_field", ["0,100," + BIG_FIELD] + ok_rows[1:])
    f["trace_binary"] = str(d / "trace_binary.csv")
    Path(f["trace_binary"]).write_bytes(bytes(range(256)) * 8)
    tokens, stats = routing_docs["tokens"], routing_docs["stats"]
    f["routing_ok"] = _write_json(d, "routing_ok.json", tokens)
    f["routing_stats_ok"] = _write_json(d, "routing_stats_ok.json", stats)
    f["routing_tokens-5"] = _write_json(d, "routing_tokens-5.json", {**stats, "tokens": -5})
    f["routing_experts0"] = _write_json(d, "routing_experts0.json", {**tokens, "num_experts": 0})
    f["routing_experts-8"] = _write_json(d, "routing_experts-8.json", {**tokens, "num_experts": -8})
    f["routing_topk0"] = _write_json(d, "routing_topk0.json", {**stats, "top_k": 0})
    npz = d / "routing_experts_array.npz"
    np.savez(npz, experts=np.asarray(tokens["experts"]), num_experts=np.array([32, 32]))
    f["routing_experts_array"] = str(npz)
    f["routing_binary"] = str(d / "routing_binary.json")
    Path(f["routing_binary"]).write_bytes(bytes(range(256)) * 8)
    rows = [FROM_CSV_HEADER, "r1,Qwen/Qwen3-8B,h100_sxm,vllm,bf16,agg,1024,128,8,1,1,1,1,1",
            "r2,Qwen/Qwen3-8B,h100_sxm,trtllm,fp8,agg,2048,256,16,2,1,1,1,1"]
    f["from_csv_ok"] = str(d / "rows.csv")
    Path(f["from_csv_ok"]).write_text("\n".join(rows) + "\n")
    f["from_csv_ragged"] = str(d / "rows_ragged.csv")
    Path(f["from_csv_ragged"]).write_text("\n".join(rows + ["r3,Qwen/Qwen3-8B,h100_sxm,vllm"]) + "\n")
    f["out_unused"] = str(d / "out_unused.csv")
    doc = training_document
    f["plan_ok"] = _write_json(d, "plan_ok.json", doc)

    def plan_variant(name: str, path: tuple, value: Any, delete: bool = False) -> None:
        v = copy.deepcopy(doc)
        if delete:
            delete_at(v, path)
        else:
            set_at(v, path, value)
        f[f"plan_{name}"] = _write_json(d, f"plan_{name}.json", v)

    plan_variant("tp3", ("plan", "tp"), 3)
    plan_variant("dp7", ("plan", "dp"), 7)
    plan_variant("gpus0", ("system", "num_gpus"), 0)
    plan_variant("gpus15", ("system", "num_gpus"), 15)
    plan_variant("unfit", ("estimate", "fits"), False)
    plan_variant("peak1e15", ("estimate", "memory", "peak_bytes"), 1e15)
    for i, version in enumerate(["1", "1.x", 1.0, "1.0.1"]):
        plan_variant(f"version{i}", ("schema_version",), version)
    plan_variant("no_tp", ("plan", "tp"), None, delete=True)
    plan_variant("tp_string", ("plan", "tp"), "8")
    plan_variant("name_newline", ("model", "name"), "llama-3.1-8b\necho pwned > PWNED\n#")
    serving = serving_documents[0]
    f["serving_ok"] = _write_json(d, "serving_ok.json", serving)
    for name, path, value in (("gpus0", ("gpus",), 0), ("workers3", ("pools", 0, "workers"), 3),
                              ("version", ("schema_version",), "1.x"), ("tp_string", ("pools", 0, "plan", "tp"), "8"),
                              ("slo_unmet", ("slo", "ttft_ms"), 1.0),
                              ("name_newline", ("model", "name"), "qwen3-8b\necho pwned > PWNED\n#")):
        v = copy.deepcopy(serving)
        set_at(v, path, value)
        f[f"serving_{name}"] = _write_json(d, f"serving_{name}.json", v)
    f["plan_deep"] = str(d / "plan_deep.json")
    Path(f["plan_deep"]).write_text(deep_json(100_000))
    return f


SIM_BASE = ["simulate", "-m", "qwen3-8b", "-g", "h100"]
EXPERTS_BASE = ["experts", "-m", ROUTING_MODEL, "--gpus", "8", "--time-limit", "0.5"]
SERVE_BASE = ["serve", "-m", "qwen3-8b", "-g", "h100", "-n", "8", "--ttft", "1s", "--tpot", "50ms", "--isl", "1024",
              "--osl", "128"]
TRAIN_BASE = ["train", "-m", "llama-3.1-8b", "-g", "h100", "-n", "8", "--seq", "2048", "--gbs", "64"]


def _with_model(argv: list[str], model: str) -> list[str]:
    return replace_flag(argv, "-m", model)


def _regressions() -> list[tuple[str, list[str], Any]]:
    """(id, argv with {file} placeholders, expected exit code, or a tuple of acceptable ones)."""
    cases: list[tuple[str, list[str], Any]] = []
    add = lambda name, argv, code=2: cases.append((name, argv, code))
    # plans not checked on re-import (planner export / planner check)
    for v in ("tp3", "dp7", "gpus0", "gpus15", "unfit", "peak1e15", "version0", "version1", "version2", "version3",
              "no_tp", "tp_string", "deep"):
        for to in ("megatron", "slurm"):
            add(f"export-plan-{v}-{to}", ["export", f"{{plan_{v}}}", "--to", to])
        add(f"check-plan-{v}", ["check", f"{{plan_{v}}}"])
    # hangs and unbounded work
    add("simulate-rate-nan", SIM_BASE + ["--rate", "nan", "--requests", "200"])
    add("simulate-trace-nan-row", SIM_BASE + ["--trace", "{trace_nan}"])
    add("simulate-isl-1e12", SIM_BASE + ["--rate", "2", "--requests", "20", "--isl", "1000000000000"])
    add("serve-isl-1e12", replace_flag(SERVE_BASE, "--isl", "1000000000000"))
    add("estimate-serve-isl-1e12", ES[:-6] + ["--isl", "1000000000000", "--osl", "128", "-c", "8"])
    add("simulate-trace-decode-1e9", SIM_BASE + ["--trace", "{trace_decode1e9}"])
    add("train-gpus-1e30", replace_flag(TRAIN_BASE, "-n", "1" + "0" * 30))
    add("specs-validate-layers-1e9", ["specs", "validate", "{cfg_layers1e9}"])
    add("estimate-train-layers-1e9", _with_model(ET, "{cfg_layers1e9}"))
    # internal errors on bad input
    for name, argv in (("specs-validate", ["specs", "validate", "{cfg_heads0}"]),
                       ("estimate-train", _with_model(ET, "{cfg_heads0}")),
                       ("estimate-serve", _with_model(ES, "{cfg_heads0}")),
                       ("train", _with_model(TRAIN_BASE, "{cfg_heads0}")),
                       ("serve", _with_model(SERVE_BASE, "{cfg_heads0}")),
                       ("simulate", _with_model(SIM + [], "{cfg_heads0}"))):
        add(f"heads0-{name}", argv)
    add("experts-weight-bytes-0", EXP + ["--weight-bytes", "0"])
    add("experts-max-imbalance-inf", EXP + ["--max-imbalance", "inf"])
    add("experts-max-imbalance-1e30", EXP + ["--max-imbalance", "1e30"])
    add("experts-tokens-1e30", replace_flag(EXP, "--tokens", "1e30"))
    add("estimate-train-tokens-1e30", ET + ["--tokens", "1e30"])
    add("serve-rate-inf", SERVE_BASE + ["--rate", "inf"])
    add("train-batch-tokens-inf", drop_flag(TRAIN_BASE, "--gbs") + ["--batch-tokens", "inf"])
    add("simulate-trace-inf-prefill", SIM_BASE + ["--trace", "{trace_inf}"])
    add("simulate-trace-short-row", SIM_BASE + ["--trace", "{trace_short_row}"])
    add("simulate-trace-128k-field", SIM_BASE + ["--trace", "{trace_big_field}"])
    add("serve-trace-128k-field", drop_flag(drop_flag(SERVE_BASE, "--isl"), "--osl") + ["--trace", "{trace_big_field}"])
    add("experts-npz-num-experts-array", EXPERTS_BASE + ["--trace", "{routing_experts_array}"])
    add("estimate-serve-ragged-csv", ["estimate", "serve", "--from-csv", "{from_csv_ragged}"], (0, 2))  # or a reason
    add("specs-validate-deep-json", ["specs", "validate", "{cfg_deep}"])
    add("estimate-train-deep-json", _with_model(ET, "{cfg_deep}"))
    add("specs-validate-binary-json", ["specs", "validate", "{cfg_binary}"])
    add("specs-validate-binary-yaml", ["specs", "validate", "{hw_binary}"])
    add("simulate-binary-trace", SIM_BASE + ["--trace", "{trace_binary}"])
    add("experts-binary-trace", EXPERTS_BASE + ["--trace", "{routing_binary}"])
    # accepted nonsense
    for v in ("-1", "nan", "inf"):
        add(f"train-price-{v}", TRAIN_BASE + ["--price", v])
    for v in ("nan", "inf", "1e400"):
        add(f"estimate-train-tokens-{v}", ET + ["--tokens", v])
        add(f"train-tokens-{v}", TRAIN_BASE + ["--tokens", v])
    add("train-budget-nan", TR_COST + ["--budget", "nan"])
    add("serve-ttft-1e400s", replace_flag(SERVE_BASE, "--ttft", "1e400s"))
    add("serve-tpot-1e400s", replace_flag(SERVE_BASE, "--tpot", "1e400s"))
    add("simulate-ttft-0s", SIM + ["--ttft", "0s"])
    add("simulate-rate-inf", replace_flag(SIM, "--rate", "inf"))
    for v in ("nan", "inf"):
        add(f"experts-time-limit-{v}", replace_flag(EXP, "--time-limit", v))
    add("experts-node-cost-nan", EXP + ["--node-cost", "nan"])
    for name in ("hw_flops_nan", "hw_flops_inf", "hw_memory_tiny"):
        add(f"specs-validate-{name}", ["specs", "validate", f"{{{name}}}"])
        add(f"estimate-train-{name}", replace_flag(ET, "-g", f"{{{name}}}"))
    for name in ("cfg_hidden4097", "cfg_kv0", "cfg_intermediate0", "cfg_head_dim0", "cfg_positions0", "cfg_window0",
                 "cfg_window-1", "cfg_mlp_only"):
        add(f"specs-validate-{name}", ["specs", "validate", f"{{{name}}}"])
    add("estimate-serve-hidden4097", _with_model(ES, "{cfg_hidden4097}"))
    for name in ("routing_tokens-5", "routing_experts0", "routing_experts-8", "routing_topk0"):
        add(f"experts-{name}", EXPERTS_BASE + ["--trace", f"{{{name}}}"])
    # outputs
    add("estimate-serve-out-without-from-csv", ES + ["--out", "{out_unused}"])
    add("estimate-serve-model-dir-without-from-csv", ES + ["--model-dir", "."])
    # valid input still works (exit 0)
    for argv in (ET, ES, TRAIN_BASE, SERVE_BASE, SIM, EXP):
        add(f"valid-{'-'.join(argv[:2])}", argv, 0)
    add("valid-config", ["specs", "validate", "{cfg_ok}"], 0)
    add("valid-config-estimate", _with_model(ES, "{cfg_ok}"), 0)
    add("valid-hardware", ["specs", "validate", "{hw_ok}"], 0)
    add("valid-hardware-estimate", replace_flag(ET, "-g", "{hw_ok}"), 0)
    add("valid-trace-simulate", SIM_BASE + ["--trace", "{trace_ok}"], 0)
    add("valid-trace-serve", drop_flag(drop_flag(SERVE_BASE, "--isl"), "--osl") + ["--trace", "{trace_ok}"], 0)
    add("valid-routing-tokens", EXPERTS_BASE + ["--trace", "{routing_ok}"], 0)
    add("valid-routing-stats", EXPERTS_BASE + ["--trace", "{routing_stats_ok}"], 0)
    add("valid-from-csv", ["estimate", "serve", "--from-csv", "{from_csv_ok}"], 0)
    for v in ("gpus0", "workers3", "version", "tp_string", "slo_unmet", "name_newline"):
        add(f"check-serving-{v}", ["check", f"{{serving_{v}}}"])
        add(f"export-serving-{v}-vllm", ["export", f"{{serving_{v}}}", "--to", "vllm"])
    add("valid-serving-check", ["check", "{serving_ok}"], 0)
    for to in ("vllm", "sglang", "trtllm", "k8s"):
        add(f"valid-serving-export-{to}", ["export", "{serving_ok}", "--to", to], 0)
    add("valid-plan-check", ["check", "{plan_ok}"], 0)
    for to in ("megatron", "torchtitan", "deepspeed", "slurm"):
        add(f"valid-plan-export-{to}", ["export", "{plan_ok}", "--to", to], 0)
    return cases


REGRESSIONS = _regressions()


@pytest.mark.parametrize(("argv", "expected"), [pytest.param(a, c, id=i) for i, a, c in REGRESSIONS])
def test_regression(scratch, files, argv, expected):
    argv = [a.format(**files) if "{" in a and "}" in a and not a.startswith("{0") else a for a in argv]
    rec = Recorder("regressions", scratch)
    run = rec.cli(argv, REJECT if expected == 2 else ANY)
    accepted = expected if isinstance(expected, tuple) else (expected,)
    assert run.code in accepted, f"exit {run.code}, expected {expected}: {run.stderr.strip()[:300]} :: " \
                                 f"{reproducer(argv)}"
    rec.check()


def test_binary_file_error_names_the_file(scratch, files):
    for key, argv in (("cfg_binary", ["specs", "validate"]), ("hw_binary", ["specs", "validate"]),
                      ("trace_binary", SIM_BASE + ["--trace"])):
        run = run_cli(argv + [files[key]])
        assert run.code == 2 and Path(files[key]).name in run.stderr, (key, run.code, run.stderr)


def test_outputs_never_overwrite_inputs(scratch, files):
    """``--out`` onto the ``--from-csv`` file and ``--export`` onto the ``--trace`` file are refused; the inputs stay
    byte-identical; ``--out`` without ``--from-csv`` writes nothing."""
    d = scratch / "outputs"
    d.mkdir()
    rows = d / "rows.csv"
    shutil.copy(files["from_csv_ok"], rows)
    trace = d / "trace.json"
    shutil.copy(files["routing_ok"], trace)
    before = rows.read_bytes(), trace.read_bytes()
    runs = [run_cli(["estimate", "serve", "--from-csv", str(rows), "--out", str(rows)]),
            run_cli(EXPERTS_BASE + ["--trace", str(trace), "--export", str(trace)])]
    assert [r.code for r in runs] == [2, 2], [r.stderr for r in runs]
    assert (rows.read_bytes(), trace.read_bytes()) == before
    unused = d / "unused.csv"
    run = run_cli(ES + ["--out", str(unused)])
    assert run.code == 2 and not unused.exists(), run.stderr


@pytest.mark.parametrize("argv", [
    ES + ["--json"], ET + ["--json"], SERVE_BASE + ["--json"], TRAIN_BASE + ["--json"],
    SIM + ["--json"], EXP + ["--json"],
], ids=["estimate-serve", "estimate-train", "serve", "train", "simulate", "experts"])
def test_json_byte_identical(scratch, argv):
    """The same command twice prints byte-identical ``--json`` (no timings unless asked for)."""
    first, second = run_cli(argv), run_cli(argv)
    assert first.code == second.code == 0, (first.stderr, second.stderr)
    assert first.stdout == second.stdout, [
        (k, a, b) for k, a, b in _json_differences(json.loads(first.stdout), json.loads(second.stdout))][:5]


def _json_differences(a: Any, b: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _json_differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _json_differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [(path, a, b)]


# --- hostile names never run: scripts executed in a sandbox -------------------------------------------------------

SANDBOX = r"""
command_not_found_handle() { return 0; }
set() { :; }; cd() { :; }; exit() { :; }; exec() { :; }; source() { :; }; trap() { :; }; ulimit() { :; }
shopt -s execfail
. ./script.sh
"""


def _runs_anything(script: str, workdir: Path) -> list[str]:
    """Source ``script`` in bash with every external command a no-op (an empty PATH and a command-not-found
    handler) and ``set`` / ``cd`` / ``exit`` / ``exec`` disabled, in ``workdir``; return the ``PWNED`` files it
    created (a script may write its own config files).

    A quoted name stays an argument of a no-op command; an unquoted one (a line break, ``$( )``, backquotes,
    ``;``) runs its ``echo pwned > PWNED`` builtin and leaves the file behind."""
    workdir.mkdir()
    (workdir / "script.sh").write_text(script)
    empty_bin = workdir / "bin"
    empty_bin.mkdir()
    subprocess.run([shutil.which("bash") or "/bin/bash", "-c", SANDBOX], cwd=workdir, env={"PATH": str(empty_bin), "HOME": str(workdir)},
                   capture_output=True, timeout=30, check=False)
    return sorted(p.name for p in workdir.glob("PWNED*"))


HOSTILE_NAMES = ["Qwen/Qwen3-8B\necho pwned > PWNED\n#", "Qwen/Qwen3-8B$(echo pwned > PWNED)",
                 "Qwen/Qwen3-8B`echo pwned > PWNED`", "Qwen/Qwen3-8B'; echo pwned > PWNED; '",
                 'Qwen/Qwen3-8B"; echo pwned > PWNED; "']


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("hostile", range(len(HOSTILE_NAMES)))
def test_hostile_names_never_run(scratch, files, hostile):
    """A config.json ``_name_or_path`` and a plan document's model name holding shell syntax: every shell
    script the planner prints is refused (exit 2) or runs nothing but what it should."""
    name = HOSTILE_NAMES[hostile]
    d = scratch / f"hostile{hostile}"
    d.mkdir()
    cfg = _config(d, "cfg", "qwen3-8b", _name_or_path=name)
    train_cfg = _config(d, "train-cfg", "llama-3.1-8b", _name_or_path=name.replace("Qwen/Qwen3-8B", "meta/L"))
    plan = json.loads(Path(files["plan_ok"]).read_text())
    plan["model"]["name"] = name
    plan_file = _write_json(d, "plan.json", plan)
    argvs = [_with_model(SERVE_BASE, cfg) + ["--export", e] for e in ("vllm", "sglang", "trtllm")]
    argvs += [_with_model(TRAIN_BASE, train_cfg) + ["--export", e] for e in ("slurm", "megatron")]
    argvs += [["export", plan_file, "--to", e] for e in ("slurm", "megatron")]
    problems = []
    for i, argv in enumerate(argvs):
        run = run_cli(argv)
        if run.code not in (0, 2):
            problems.append(f"exit {run.code}: {run.stderr.strip()[:200]} :: {reproducer(argv)}")
            continue
        if run.code == 0:
            created = _runs_anything(run.stdout, d / f"sandbox{i}")
            if created:
                problems.append(f"the script ran a hostile command (created {created}) :: {reproducer(argv)}")
    assert not problems, "\n".join(problems)


# --- the Python API: the calls named in issue 10 -------------------------------------------------------------------

@pytest.mark.parametrize("label", ["search_train price -1", "search_train tokens nan", "search_train budget nan",
                                   "search_train time_limit-free deadline nan", "synthetic_trace 1e9 tokens",
                                   "place_experts time_limit nan", "place_experts time_limit inf",
                                   "poisson_requests rate nan"])
def test_api_regression(scratch, label):
    from planner import simulation as sim
    from planner.moe.placement import ExpertCluster

    moe = planner.get_model(ROUTING_MODEL)
    calls = {
        "search_train price -1": lambda: planner.search_train("llama-3.1-8b", "h100", 8, 2048, 64, refine=False,
                                                              price_per_gpu_hour=-1),
        "search_train tokens nan": lambda: planner.search_train("llama-3.1-8b", "h100", 8, 2048, 64, refine=False,
                                                                tokens=NAN),
        "search_train budget nan": lambda: planner.search_train("llama-3.1-8b", "h100", 8, 2048, 64, refine=False,
                                                                objective="cost", tokens=1e12, budget_usd=NAN),
        "search_train time_limit-free deadline nan": lambda: planner.search_train(
            "llama-3.1-8b", "h100", 8, 2048, 64, refine=False, objective="deadline", tokens=1e12, deadline_s=NAN),
        "synthetic_trace 1e9 tokens": lambda: planner.moe.synthetic_trace(moe, tokens=10**9),
        "place_experts time_limit nan": lambda: planner.place_experts(
            planner.moe.synthetic_trace(moe, tokens=64).stats(), ExpertCluster(8, 8, 32), time_limit=NAN),
        "place_experts time_limit inf": lambda: planner.place_experts(
            planner.moe.synthetic_trace(moe, tokens=64).stats(), ExpertCluster(8, 8, 32), time_limit=INF),
        "poisson_requests rate nan": lambda: sim.poisson_requests(NAN, 20, 512, 64),
    }
    rec = Recorder("api-regressions", scratch)
    rec.api(label, calls[label], REJECT)
    rec.check()


def test_sandbox_sees_injection(tmp_path):
    """The sandbox of test_hostile_names_never_run catches an unquoted name and passes a quoted one."""
    import shlex

    name = HOSTILE_NAMES[0]
    script = "#!/bin/bash\nset -euo pipefail\nmissing-tool --flag\nexec vllm serve {} --port 8000\n"
    assert _runs_anything(script.format(name), tmp_path / "bare") == ["PWNED"]
    assert _runs_anything(script.format(shlex.quote(name)), tmp_path / "quoted") == []
    assert _runs_anything(script.format('"$(echo pwned > PWNED)"'), tmp_path / "substitution") == ["PWNED"]


def test_harness_classifies_runs():
    """The classification the whole suite relies on: what counts as fine and what as a failure."""
    from fuzz_support import Hang, Run, cli_problem, time_limit

    ok_error = Run(["x"], code=2, stderr="error: bad value\n")
    assert cli_problem(ok_error, REJECT) is None
    assert cli_problem(Run(["x"], code=0), ANY) is None
    assert "accepted" in cli_problem(Run(["x"], code=0), REJECT)
    assert "exit 1" in cli_problem(Run(["x"], code=1, stderr="error: internal error: KeyError\n"), ANY)
    assert "one 'error:' line" in cli_problem(Run(["x"], code=2, stderr="error: a\nerror: b\n"), ANY)
    assert "one 'error:' line" in cli_problem(Run(["x"], code=2, stderr="bad\n"), ANY)
    assert "traceback" in cli_problem(Run(["x"], code=2, stderr="Traceback (most recent call last):\n"), ANY)
    assert "warning" in cli_problem(Run(["x"], code=2, stderr="error: a\n", warnings=["RuntimeWarning: x"]), ANY)
    assert "warning" in cli_problem(Run(["x"], code=0, stderr="a.py:3: RuntimeWarning: overflow\n"), ANY)
    assert "hang" in cli_problem(Run(["x"], hang=True), ANY)
    assert "strict JSON" in cli_problem(Run(["x", "--json"], code=0, stdout='{"a": NaN}'), ANY)
    with pytest.raises(Hang), time_limit(0.2):
        while True:
            pass
