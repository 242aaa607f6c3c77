"""Hostile names cannot make an exported script or manifest do anything but what it should (issue 10).

Names reach exports from user files (a config.json ``_name_or_path``, a hardware YAML ``name``, a plan document),
so the documents here are real (a training estimate, a serving search) with their model name, Hugging Face id and
system name replaced by hostile strings: newlines followed by commands, ``$(...)``, backticks, ``;``, ``&&``,
quotes, Unicode line separators, carriage returns, TOML / YAML / heredoc breakers.

Every shell script is checked with ``bash -n`` and then run by bash in a scratch directory whose ``PATH`` holds
only stubs (each appends its name and arguments to a log, NUL-separated; ``cat`` / ``head`` / ``touch`` then run
the real program, so an injected ``touch MARK`` would leave a file). Asserted: the script succeeds with
nothing on stderr (no command outside the stubs), no ``MARK`` file appears, the programs run are exactly those
the same export runs for a plain name, and the hostile name arrives as ONE intact argument where it is passed
(the engine's model argument). YAML (``yaml.safe_load_all``), TOML (``tomllib``) and JSON outputs parse, have the
same structure as for a plain name, and give the hostile name back intact. The one refusal: a NUL character,
which no command-line argument can carry (a one-line :class:`~planner.errors.PlannerError`).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import tomllib
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import yaml

import planner
from planner.errors import PlannerError
from planner.export import export
from planner.export.deepspeed import deepspeed_json
from planner.export.engines import ENGINES
from planner.export.k8s import k8s_manifest
from planner.export.megatron import megatron_command
from planner.export.quoting import slug
from planner.export.serving import aggregated_commands, disaggregated_commands, export_serving
from planner.export.slurm import LAUNCHERS, slurm_script
from planner.export.torchtitan import torchtitan_toml
from planner.plans.documents import ServingDocument, Traffic
from planner.plans.serving import serving_document
from planner.plans.training import plan_document
from planner.search.serving import search_serving

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")

BASH = shutil.which("bash") or "bash"

HOSTILE = [
    "Qwen/Qwen3-8B\ntouch MARK\n#",
    "$(touch MARK)",
    "`touch MARK`",
    "x; touch MARK",
    "x && touch MARK",
    "x | touch MARK &",
    "'\"",
    "'\"\n#",
    "'; touch MARK; '",
    "\"; touch MARK; \"",
    "x\u2028touch MARK\u2029#",
    "x\rtouch MARK\r",
    "x\u0085touch MARK",
    '"""\ntouch MARK\n"""',
    ']\n[job]\ndescription = "x"',
    "a: b\n---\nkind: Pod\n",
    "{a: [b, ",
    "# x",
    "---",
    "PLANNER_EOF\ntouch MARK\nPLANNER_EOF",
    "EOF\ntouch MARK\nEOF",
    "${IFS}touch${IFS}MARK",
    "\\\ntouch MARK",
    "--model-path=/evil -x",
    "\x1b]0;touch MARK\x07",
    "\u202etouch MARK",
    "\t\v\f touch MARK",
]
IDS = [f"h{i}" for i in range(len(HOSTILE))]
PLAIN = "plain-model"

# --------------------------------------------------------------------------------------------------
# the scratch machine: stubs on PATH, nothing else
# --------------------------------------------------------------------------------------------------

#: Each stub appends its argument count, name and arguments to the log, NUL-terminated (no argument can hold a
#: NUL, so every argument comes back exactly); a bash stub starts ~15x faster than a Python one.
STUB = """#!{bash}
printf '%s\\0' "$#" "${{0##*/}}" "$@" >> "$STUB_LOG"
case "${{0##*/}}" in
  cat) exec {cat} "$@" ;;
  head) exec {head} "$@" ;;
  touch) exec {touch} "$@" ;;
  scontrol) printf 'node0\\n' ;;
esac
"""
STUBS = ("srun", "sbatch", "scontrol", "hostname", "torchrun", "deepspeed", "mpirun", "python", "python3", "vllm",
         "trtllm-serve", "cat", "head", "touch")


@pytest.fixture(scope="module")
def stub_bin(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("stubs")
    real = {k: shutil.which(k) for k in ("cat", "head", "touch")}
    if not all(real.values()):
        pytest.skip("cat, head or touch not installed")
    stub = d / "stub"
    stub.write_text(STUB.format(bash=BASH, **{k: shlex.quote(v) for k, v in real.items()}))
    stub.chmod(0o755)
    for name in STUBS:
        (d / name).symlink_to(stub)
    return d


def read_log(path: Path) -> list[list[str]]:
    """The calls the stubs logged: ``[program, *arguments]`` each."""
    fields = path.read_bytes().decode("utf-8", "surrogateescape").split("\0")
    calls, i = [], 0
    while i + 1 < len(fields):
        n = int(fields[i])
        calls.append(fields[i + 1:i + 2 + n])
        i += 2 + n
    return calls


def run_script(text: str, stub_bin: Path, scratch: Path) -> tuple[list[list[str]], dict[str, str]]:
    """Run ``text`` with bash in ``scratch`` (PATH = the stubs only): the logged calls and the files the
    script wrote there. Asserts ``bash -n`` passes, the run succeeds with empty stderr and leaves no MARK."""
    subprocess.run([BASH, "-n"], input=text, text=True, check=True, capture_output=True)
    scratch.mkdir()
    script = scratch.parent / (scratch.name + ".sh")
    script.write_text(text, encoding="utf-8")
    log = scratch.parent / (scratch.name + ".log")
    log.touch()
    env = {"PATH": str(stub_bin), "STUB_LOG": str(log), "HOME": str(scratch), "SLURM_JOB_NODELIST": "node[0-1]",
           "SLURM_NNODES": "2", "SLURM_JOB_ID": "7", "LC_ALL": "C"}
    out = subprocess.run([BASH, str(script)], cwd=scratch, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stderr == "", (out.returncode, out.stderr)
    marks = [p for p in scratch.parent.rglob("*") if "MARK" in p.name]
    assert not marks, f"injected command ran: {marks}"
    calls = read_log(log)
    assert not any(c[0] == "touch" for c in calls), calls
    files = {p.name: p.read_text(encoding="utf-8") for p in scratch.iterdir() if p.is_file()}
    return calls, files


def programs(calls: list[list[str]]) -> list[str]:
    """The programs run, sorted (the two sides of a pipe start in either order)."""
    return sorted(c[0] for c in calls)


# --------------------------------------------------------------------------------------------------
# documents: real answers, then hostile names
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def training_doc() -> dict[str, Any]:
    m, s = planner.get_model("llama-3.1-8b"), planner.get_system("h100")
    est = planner.estimate_train(m, s, gpus=16, tp=2, pp=2, micro_batch=1, global_batch=64, seq_len=4096,
                                 recompute="full")
    return json.loads(json.dumps(plan_document(est, m, s)))


def renamed_training(doc: dict[str, Any], name: str, hf_id: str | None, system: str) -> dict[str, Any]:
    d = json.loads(json.dumps(doc))
    d["model"].update(name=name, hf_id=hf_id)
    d["system"].update(name=system, accelerator=system)
    return d


@pytest.fixture(scope="module")
def serving_docs() -> dict[str, ServingDocument]:
    m, s = planner.get_model("qwen3-30b-a3b"), planner.get_system("h100")
    r = search_serving(m, s, 16, 2000, 200, 1000, 30)
    traffic = Traffic(isl=2000, osl=200, max_request_tokens=2200)
    return {c: serving_document(r, m, s, choice=c, gpu_budget=16, traffic=traffic, slo=None)
            for c in ("aggregated", "disaggregated")}


def renamed_serving(doc: ServingDocument, name: str, hf_id: str | None, system: str) -> ServingDocument:
    return doc.model_copy(update={"model": doc.model.model_copy(update={"name": name, "hf_id": hf_id}),
                                  "system": doc.system.model_copy(update={"name": system})})


# --------------------------------------------------------------------------------------------------
# training exports
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def plain_training_runs(training_doc, stub_bin, tmp_path_factory) -> dict[str, list[str]]:
    base = tmp_path_factory.mktemp("plain-training")
    doc = renamed_training(training_doc, PLAIN, PLAIN, PLAIN)
    out = {"megatron": programs(run_script(megatron_command(doc), stub_bin, base / "cmd-megatron")[0])}
    for launcher in LAUNCHERS:
        out[f"slurm-{launcher}"] = programs(run_script(slurm_script(doc, launcher), stub_bin, base / f"slurm-{launcher}")[0])
    return out


@pytest.mark.parametrize("name", HOSTILE, ids=IDS)
def test_training_scripts(name, training_doc, plain_training_runs, stub_bin, tmp_path):
    doc = renamed_training(training_doc, name, name, name)
    calls, _ = run_script(megatron_command(doc), stub_bin, tmp_path / "cmd-megatron")
    assert programs(calls) == plain_training_runs["megatron"] == ["torchrun"]
    assert calls[0][calls[0].index("--nnodes") + 1] == "2"
    for launcher in LAUNCHERS:
        calls, files = run_script(slurm_script(doc, launcher), stub_bin, tmp_path / f"slurm-{launcher}")
        assert programs(calls) == plain_training_runs[f"slurm-{launcher}"], launcher
        assert calls[-1][:2] == ["srun", "torchrun"]
        if launcher == "torchtitan":  # the TOML the script wrote is the exporter's, names intact
            written = tomllib.loads(files["plan.toml"])
            assert written["model"]["name"] == written["model"]["flavor"] == name
            assert written["job"]["description"] == f"{name} plan from planner"
            assert written == tomllib.loads(torchtitan_toml(doc))
        if launcher == "deepspeed":
            assert json.loads(files["ds_config.json"]) == json.loads(deepspeed_json(doc))
        script = slurm_script(doc, launcher)
        assert f"#SBATCH --job-name=planner-{slug(name)}\n" in script


@pytest.mark.parametrize("name", HOSTILE, ids=IDS)
def test_training_toml_and_json(name, training_doc):
    for model in (None, "llama-3.1-8b"):  # a model torchtitan knows: the hf id goes into a path
        doc = renamed_training(training_doc, model or name, name, name)
        plain = renamed_training(training_doc, model or PLAIN, PLAIN, PLAIN)
        toml_text = torchtitan_toml(doc)
        parsed, reference = tomllib.loads(toml_text), tomllib.loads(torchtitan_toml(plain))
        assert {k: set(v) for k, v in parsed.items()} == {k: set(v) for k, v in reference.items()}
        if model:
            assert parsed["model"]["hf_assets_path"] == "./assets/hf/" + name.split("/")[-1]
        else:
            assert parsed["model"]["name"] == name
        # every line of the file is a comment, blank, a [section] or key = value: no name broke out
        for line in toml_text.split("\n"):
            assert line == "" or line.startswith(("#", "[")) or " = " in line, line
        assert json.loads(deepspeed_json(doc)) == json.loads(deepspeed_json(plain))


# --------------------------------------------------------------------------------------------------
# serving exports
# --------------------------------------------------------------------------------------------------

def render(doc: ServingDocument, engine: str) -> str:
    """The shell text of a serving document for ``engine``, unchecked (the gate would refuse control
    characters in names before any exporter sees them: here the exporters' own quoting is under test)."""
    return (aggregated_commands if doc.mode == "aggregated" else disaggregated_commands)(doc, engine)


def model_argument(calls: list[list[str]]) -> list[str]:
    """The model each engine process was given (vllm serve M / --model-path M / trtllm-serve M)."""
    out = []
    for c in calls:
        if c[:2] == ["vllm", "serve"]:
            out.append(c[2])
        elif c[0] == "python3" and "--model-path" in c:
            out.append(c[c.index("--model-path") + 1])
        elif c[0] == "trtllm-serve" and c[1] != "disaggregated":
            out.append(c[1])
    return out


@pytest.fixture(scope="module")
def plain_serving_runs(serving_docs, stub_bin, tmp_path_factory) -> dict[tuple[str, str], list[str]]:
    base = tmp_path_factory.mktemp("plain-serving")
    out = {}
    for choice, doc in serving_docs.items():
        plain = renamed_serving(doc, PLAIN, PLAIN, PLAIN)
        for engine in ENGINES:
            calls, _ = run_script(render(plain, engine), stub_bin, base / f"{choice}-{engine}")
            out[(choice, engine)] = programs(calls)
    return out


@pytest.mark.parametrize("name", HOSTILE, ids=IDS)
def test_serving_scripts(name, serving_docs, plain_serving_runs, stub_bin, tmp_path):
    for choice, doc in serving_docs.items():
        variants = [renamed_serving(doc, name, name, name)]
        if choice == "aggregated":
            variants.append(renamed_serving(doc, name, None, name))  # no hf id: the name is what the engine loads
        for k, hostile in enumerate(variants):
            for engine in ENGINES:
                calls, files = run_script(render(hostile, engine), stub_bin, tmp_path / f"{choice}{k}-{engine}")
                assert programs(calls) == plain_serving_runs[(choice, engine)], (choice, engine)
                assert model_argument(calls) == [name] * len(doc.pools), (choice, engine)
                for fname, text in files.items():  # the TensorRT-LLM option and frontend files
                    assert fname.endswith(".yaml") and isinstance(yaml.safe_load(text), dict)


@pytest.mark.parametrize("name", HOSTILE, ids=IDS)
def test_serving_manifests(name, serving_docs):
    for doc in serving_docs.values():
        plain = renamed_serving(doc, PLAIN, PLAIN, PLAIN)
        for engine in ENGINES:
            text = k8s_manifest(renamed_serving(doc, name, name, name), engine=engine)
            manifests = [d for d in yaml.safe_load_all(text) if d is not None]
            reference = [d for d in yaml.safe_load_all(k8s_manifest(plain, engine=engine)) if d is not None]
            assert [(d["kind"], sorted(d)) for d in manifests] == [(d["kind"], sorted(d)) for d in reference]
            for d in manifests:
                assert d["metadata"]["labels"]["app.kubernetes.io/name"] == slug(name)
                assert d["metadata"]["name"].startswith(slug(name))
                if d["kind"] == "Deployment":
                    (container,) = d["spec"]["template"]["spec"]["containers"]
                    tokens = [*container["command"], *container["args"]]
                    assert model_argument([tokens]) == [name]
            # no raw line break YAML knows (\r, NEL, LS, PS) anywhere: comments show them as escapes, scalars
            # are quoted with escapes, so a name can neither end a comment nor start a document
            assert not any(c in text for c in "\r\x85\u2028\u2029"), name


def test_slug_is_a_kubernetes_name():
    for name in HOSTILE + ["", "Llama-3.1-70B", "-" * 60, "a" * 80]:
        s = slug(name)
        assert s and len(s) <= 40 and s[0].isalnum() and s[-1].isalnum()
        assert set(s) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")


def test_nul_is_refused_in_scripts_and_kept_in_data(training_doc, serving_docs):
    name = "bad\x00name"
    doc = renamed_serving(serving_docs["aggregated"], name, name, name)
    for engine in ENGINES:
        with pytest.raises(PlannerError, match="NUL character: no command line can carry it") as err:
            render(doc, engine)
        assert "\n" not in str(err.value)
    manifests = list(yaml.safe_load_all(k8s_manifest(doc)))
    assert any(name in d["spec"]["template"]["spec"]["containers"][0]["args"]
               for d in manifests if d and d["kind"] == "Deployment")
    train = renamed_training(training_doc, name, name, name)
    assert tomllib.loads(torchtitan_toml(train))["model"]["name"] == name
    subprocess.run([BASH, "-n"], input=slurm_script(train, "megatron"), text=True, check=True)



# --------------------------------------------------------------------------------------------------
# through the gate: what `planner export` and `planner serve --export` do
# --------------------------------------------------------------------------------------------------

_UNPRINTABLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co"})


@pytest.mark.parametrize("name", HOSTILE, ids=IDS)
def test_through_the_gate(name, training_doc, serving_docs, stub_bin, tmp_path):
    """export() and export_serving() pass the document through the gate first. A name with a control, separator
    or format character is refused there (one line naming the field); any other name, set in the document and
    in its embedded spec as a custom config.json would, exports and runs safely."""
    train = json.loads(json.dumps(training_doc))
    for part in (train["model"], train["model"]["spec"]):
        part.update(name=name, hf_id=name)
    doc = serving_docs["disaggregated"]
    spec = {**doc.model.spec, "name": name, "hf_id": name}
    serving = doc.model_copy(update={"model": doc.model.model_copy(update={"name": name, "hf_id": name,
                                                                           "spec": spec})})
    if any(unicodedata.category(c) in _UNPRINTABLE for c in name):
        for call in (lambda: export(train, "slurm", where="plan.json"),
                     lambda: export_serving(serving, "vllm", where="plan.json")):
            with pytest.raises(PlannerError, match=r"^plan\.json: model\.(spec\.)?name") as err:
                call()
            assert "\n" not in str(err.value)
        return
    calls, files = run_script(export(train, "slurm"), stub_bin, tmp_path / "slurm")
    assert programs(calls) == ["head", "scontrol", "srun"]
    calls, files = run_script(export_serving(serving, "vllm"), stub_bin, tmp_path / "vllm")
    assert model_argument(calls) == [name, name]
    manifests = [d for d in yaml.safe_load_all(export_serving(serving, "k8s")) if d is not None]
    assert model_argument([[*d["spec"]["template"]["spec"]["containers"][0]["command"],
                            *d["spec"]["template"]["spec"]["containers"][0]["args"]]
                           for d in manifests if d["kind"] == "Deployment"]) == [name, name]
