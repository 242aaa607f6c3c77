"""Plan documents and the gate (issue 10): schemas, the rules, the searches' answers, the round-trip.

Documents are real: built from ``planner.estimate_train`` / ``planner.search_serve`` / a placement, then
mutated the way the issue's fuzz run did (a degree, the GPU count, a peak of 1e15 bytes, bad versions,
strings for numbers, newlines in names). Every refusal must be a one-line ``PlanCheckError`` that starts with
the document's location and names the field; nothing else may escape.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import random
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import planner
from planner import GateFailure, PlanCheckError, PlannerError, TrainingPlan, check
from planner.moe import ExpertCluster, round_robin, synthetic_trace
from planner.plans import (
    FleetDocument,
    PlacementDocument,
    ServingDocument,
    TrainingDocument,
    check_file,
    plan_document,
    schemas,
    unwrap,
)

ROOT = Path(__file__).resolve().parents[1]
WHERE = "plan.json"


def refused(doc: Any, *expected: str, where: str = WHERE) -> str:
    """The gate's one line for ``doc`` (asserting it starts with ``where`` and holds every ``expected``)."""
    with pytest.raises(PlanCheckError) as e:
        check(doc, where=where)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(where + ": "), msg
    for text in expected:
        assert text in msg, (text, msg)
    return msg


def changed(doc: dict[str, Any], fn: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    d = copy.deepcopy(doc)
    fn(d)
    return d


# --------------------------------------------------------------------------------------------------
# fixtures: one document of each kind
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def train_doc() -> dict[str, Any]:
    m, s = planner.get_model("llama-3.1-70b"), planner.get_system("h100")
    est = planner.estimate_train(m, s, gpus=16, tp=8, pp=2, micro_batch=1, global_batch=64, seq_len=4096,
                                 recompute="full")
    return json.loads(json.dumps(plan_document(est, m, s)))  # as read back from a file


@pytest.fixture(scope="module")
def serve_docs() -> dict[str, dict[str, Any]]:
    res = planner.search_serve("qwen3-32b", "h200", 32, 4000, 500, ttft_ms=300, tpot_ms=10)
    assert set(res.plan_documents) == {"aggregated", "disaggregated"}
    return json.loads(json.dumps(res.plan_documents))


@pytest.fixture(scope="module")
def placement_doc() -> dict[str, Any]:
    m = planner.get_model("mixtral-8x7b")
    stats = synthetic_trace(m, tokens=512, seed=0).stats()
    cluster = ExpertCluster(gpus=8, gpus_per_node=4, num_experts=8, redundant=8)
    doc = planner.api.placement_plan(round_robin(stats, cluster), m, cluster, system="h100", weight_bytes_per_param=1.0)
    return doc.model_dump(mode="json", by_alias=True)


# --------------------------------------------------------------------------------------------------
# schemas
# --------------------------------------------------------------------------------------------------

def test_committed_schemas_equal_the_generated_ones():
    generated = schemas.generate()
    assert set(generated) == {"training-plan.v1.json", "serving-plan.v1.json", "expert-placement.v1.json",
                              "fleet-plan.v2.json"}
    assert schemas.stale() == [], "run: python -m planner.plans.schemas"
    for name, sch in generated.items():
        assert schemas.load(name) == sch
        assert sch["$id"].endswith(name) and {"schema", "schema_version"} <= set(sch["required"])


def test_training_schema_plan_is_the_training_plan():
    sch = schemas.load("training-plan.v1.json")
    plan = sch["$defs"]["TrainingPlanSection"]
    assert plan["additionalProperties"] is False
    assert set(plan["properties"]) == set(TrainingPlan.model_fields) | {"num_microbatches", "expert_tp"}
    # every field is required but the one added after version 1.1 shipped (absent = its old behaviour)
    assert set(plan["required"]) == set(plan["properties"]) - {"async_tp_allreduce"}
    assert plan["properties"]["async_tp_allreduce"]["default"] is False
    for name, field in TrainingPlan.model_fields.items():
        if typing.get_origin(field.annotation) is typing.Literal:
            assert plan["properties"][name]["enum"] == list(typing.get_args(field.annotation)), name
    assert sch["properties"]["schema_version"]["enum"] == ["1.0", "1.1"]


# --------------------------------------------------------------------------------------------------
# training documents
# --------------------------------------------------------------------------------------------------

def test_training_document_shape_and_embedded_specs(train_doc):
    d = train_doc
    assert (d["schema"], d["schema_version"]) == ("planner.training-plan", "1.1")
    assert (d["plan"]["tp"], d["plan"]["pp"], d["plan"]["dp"], d["plan"]["num_microbatches"]) == (8, 2, 1, 64)
    assert d["model"]["num_layers"] == 80 and d["system"]["gpus_per_node"] == 8 and d["system"]["num_nodes"] == 2
    assert d["model"]["spec"] == planner.get_model("llama-3.1-70b").model_dump(mode="json")
    assert d["system"]["spec"]["accelerator"]["memory_bytes"] == d["system"]["memory_bytes_per_gpu"]
    assert d["estimate"]["fits"] and d["estimate"]["step_time_s"] > 0
    typed = check(d)
    assert isinstance(typed, TrainingDocument) and typed.to_json() == d
    assert isinstance(check(typed), TrainingDocument)  # a document model goes through the same gate


# the malformed documents (tp 3 on 16 GPUs, dp 7, num_gpus 0 or 15, fits false, a 1e15-byte peak,
# missing plan.tp, "tp": "8") and more: (mutation, words the one line must hold)
TRAINING_MUTATIONS: dict[str, tuple[Callable[[dict[str, Any]], Any], tuple[str, ...]]] = {
    "tp 3": (lambda d: d["plan"].update(tp=3), ("plan", "tp 3", "16")),
    "dp 7": (lambda d: d["plan"].update(dp=7), ("dp 7", "= 112", "16")),
    "num_gpus 0": (lambda d: d["system"].update(num_gpus=0), ("system.num_gpus",)),
    "num_gpus 15": (lambda d: d["system"].update(num_gpus=15), ("15",)),
    "fits false": (lambda d: d["estimate"].update(fits=False), ("estimate.fits",)),
    "peak 1e15": (lambda d: d["estimate"]["memory"].update(peak_bytes=1e15), ("estimate.memory.peak_bytes",)),
    "missing tp": (lambda d: d["plan"].pop("tp"), ("plan.tp", "missing")),
    "tp string": (lambda d: d["plan"].update(tp="8"), ("plan.tp", "'8'")),
    "tp float": (lambda d: d["plan"].update(tp=8.0), ("plan.tp",)),
    "tp bool": (lambda d: d["plan"].update(sp=1), ("plan.sp",)),
    "list string": (lambda d: d["plan"].update(layers_per_chunk=[40, "40"]), ("plan.layers_per_chunk",)),
    "unknown field": (lambda d: d["plan"].update(bogus=1), ("plan.bogus", "unknown field")),
    "num_nodes": (lambda d: d["system"].update(num_nodes=3), ("system.num_nodes",)),
    "microbatches": (lambda d: d["plan"].update(num_microbatches=32), ("plan.num_microbatches",)),
    "heads": (lambda d: (d["plan"].update(tp=3, expert_tp=3), d["system"].update(num_gpus=6, num_nodes=1)),
              ("tp 3", "64 attention heads")),
    "layers": (lambda d: d["plan"].update(layers_per_chunk=[40, 41]), ("layers_per_chunk",)),
    "batch": (lambda d: d["plan"].update(micro_batch=2, global_batch=63, num_microbatches=31),
              ("global batch 63", "micro-batch 2")),
    "memory too big": (lambda d: (d["plan"].update(recompute="none"),), ("GB per GPU",)),
    "step time": (lambda d: d["estimate"].update(step_time_s=d["estimate"]["step_time_s"] / 2),
                  ("estimate.step_time_s",)),
    "summary vs spec": (lambda d: d["model"].update(num_layers=40), ("model.num_layers", "embedded spec")),
    "memory capacity": (lambda d: d["system"].update(memory_bytes_per_gpu=1e15), ("system.memory_bytes_per_gpu",)),
    "spec num_heads 0": (lambda d: d["model"]["spec"].update(num_heads=0), ("model.spec.num_heads",)),
    "spec string": (lambda d: d["model"]["spec"].update(num_layers="80"), ("model.spec.num_layers",)),
    "spec missing": (lambda d: d["system"].pop("spec"), ("system.spec", "1.1")),
    "spec not object": (lambda d: d["system"].update(spec=[1]), ("system.spec",)),
    "nan": (lambda d: d["estimate"].update(mfu=math.nan), ("NaN",)),
    "huge tp": (lambda d: d["plan"].update(tp=10**30), ("plan.tp",)),
    "negative peak": (lambda d: d["estimate"]["memory"].update(peak_bytes=-1.0), ("peak_bytes",)),
}


@pytest.mark.parametrize("name", list(TRAINING_MUTATIONS))
def test_gate_refuses_malformed_training_documents(train_doc, name):
    fn, words = TRAINING_MUTATIONS[name]
    refused(changed(train_doc, fn), *words)


@pytest.mark.parametrize("version", ["1", "1.x", 1.0, "1.0.1", "2.0", None, 1, "1.1 "])
def test_versions_are_exact_strings(train_doc, version):
    refused(changed(train_doc, lambda d: d.update(schema_version=version)), "schema_version", "'1.0', '1.1'")


def test_version_1_0_reads_built_in_names_only(train_doc):
    old = changed(train_doc, lambda d: (d.update(schema_version="1.0"), d["model"].pop("spec"),
                                        d["system"].pop("spec")))
    typed = check(old)
    assert typed.schema_version == "1.0" and typed.plan.tp == 8
    refused(changed(old, lambda d: d["model"].update(name="/etc/passwd")), "model.name", "not a built-in model")
    refused(changed(old, lambda d: d["system"].update(name="../x.yaml")), "system.name", "not a built-in system")
    refused(changed(train_doc, lambda d: d.update(schema_version="1.0")), "spec", "1.0")


@pytest.mark.parametrize("field,value", [
    (("model", "name"), "Qwen/Qwen3-8B\ntouch /tmp/x\n#"), (("model", "hf_id"), "a\rb"),
    (("system", "name"), "h100\x00"), (("system", "accelerator"), "x\u202ey"),
    (("model", "spec", "name"), "m\nrm -rf /"), (("system", "spec", "accelerator", "name"), "GPU\n"),
])
def test_names_with_control_characters_are_refused(train_doc, field, value):
    def put(d: dict[str, Any]) -> None:
        for key in field[:-1]:
            d = d[key]
        d[field[-1]] = value

    msg = refused(changed(train_doc, put), ".".join(field[:1]))
    assert "\n" not in msg


def test_not_documents_are_one_line(train_doc):
    refused([train_doc], "JSON object")
    refused("plan", "JSON object")
    refused({}, "schema", "not a planner plan document")
    refused(changed(train_doc, lambda d: d.update(schema="planner.trainng-plan")), "did you mean 'planner.training-plan'")
    refused({"format": "planner.expert-placement.v1"}, "before plan documents")
    refused({**train_doc, "extra": {1: object()}}, "not plain JSON")
    nested: Any = 1
    for _ in range(5000):
        nested = [nested]
    refused({**train_doc, "plan": nested}, "not plain JSON")


def test_random_corruptions_raise_only_the_gates_error(train_doc):
    """300 seeded corruptions (a key dropped, a value replaced by another type or an extreme number) anywhere in
    the document: the gate either accepts or raises PlanCheckError (never KeyError, TypeError, ...)."""
    rng = random.Random(10)
    values = [None, True, 0, -1, 1, 3, 2**64, 1e308, -1e-300, "", "8", "x\ny", [], [1, "a"], {}, {"a": 1}, 0.5]
    paths: list[tuple[Any, ...]] = []

    def walk(obj: Any, path: tuple[Any, ...]) -> None:
        paths.append(path)
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, path + (k,))
        elif isinstance(obj, list):
            for i, v in enumerate(obj[:3]):
                walk(v, path + (i,))

    walk(train_doc, ())
    paths = [p for p in paths if p]
    outcomes = {"accepted": 0, "refused": 0}
    for _ in range(300):
        path = rng.choice(paths)
        d = copy.deepcopy(train_doc)
        parent = d
        for key in path[:-1]:
            parent = parent[key]
        if rng.random() < 0.25 and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(values))
        try:
            check(d, where="fuzz")
            outcomes["accepted"] += 1
        except PlanCheckError as exc:
            assert "\n" not in str(exc) and str(exc).startswith("fuzz: ")
            outcomes["refused"] += 1
    assert outcomes["refused"] > 250, outcomes


def test_load_plan_document_and_check_file(train_doc, tmp_path):
    p = tmp_path / "train.json"
    p.write_text(json.dumps({"objective": "time", "best": {"plan_document": train_doc}}))  # `train --json`
    assert isinstance(check_file(p), TrainingDocument)
    assert planner.plans.load_plan_document(p) == train_doc
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(changed(train_doc, lambda d: d["plan"].update(tp=3))))
    with pytest.raises(PlanCheckError, match=f"^{bad}: plan: degrees"):
        check_file(bad)
    assert unwrap({"plan_document": {"schema": "x"}}) == {"schema": "x"}
    assert unwrap({"schema": "planner.serving-plan", "plan_document": 1})["schema"] == "planner.serving-plan"


# --------------------------------------------------------------------------------------------------
# serving documents
# --------------------------------------------------------------------------------------------------

SERVING_MUTATIONS: dict[str, tuple[Callable[[dict[str, Any]], Any], tuple[str, ...]]] = {
    "degree": (lambda d: d["pools"][0]["plan"].update(tp=d["pools"][0]["plan"]["tp"] * 2), ("gpus_per_worker",)),
    "gpu count": (lambda d: d.update(gpus=d["gpus"] + 1), ("gpus",)),
    "workers": (lambda d: d["pools"][0].update(workers=d["pools"][0]["workers"] + 1), ("pools[0].gpus",)),
    "memory peak": (lambda d: d["pools"][0]["predicted"].update(peak_bytes=d["pools"][0]["predicted"]["peak_bytes"] * 1.05),
                    ("pools[0].predicted.peak_bytes",)),
    "concurrency": (lambda d: d["pools"][-1].update(concurrency=10**6), ("concurrency", "does not fit")),
    "budget": (lambda d: d.update(gpu_budget=d["gpus"] - 1), ("gpu_budget",)),
    "ttft slo": (lambda d: d["slo"].update(ttft_ms=d["prediction"]["ttft_ms"] / 2), ("SLO",)),
    "tpot slo": (lambda d: d["slo"].update(tpot_ms=d["prediction"]["tpot_ms"] / 2), ("SLO",)),
    "rate": (lambda d: d["traffic"].update(rate_rps=d["prediction"]["requests_per_s"] * 2), ("rate_rps",)),
    "max_model_len": (lambda d: d["pools"][0].update(max_model_len=100), ("max_model_len",)),
    "model length": (lambda d: [p.update(max_model_len=10**6) for p in d["pools"]], ("positions",)),
    "engine": (lambda d: d["engine"].update(name="vllm"), ("backend",)),
    "engine version": (lambda d: d["engine"].update(version="0.11\nrm -rf /"), ("engine.version", "control")),
    "tp string": (lambda d: d["pools"][0]["plan"].update(tp="8"), ("pools.0.plan.tp",)),
    "heads": (lambda d: (d["pools"][0]["plan"].update(tp=3), d["pools"][0].update(
        gpus_per_worker=3, gpus=3 * d["pools"][0]["workers"])), ("heads",)),
    "roles": (lambda d: d["pools"][0].update(role="decode" if d["mode"] == "aggregated" else "aggregated"), ("pools",)),
    "name": (lambda d: d["model"].update(name="qwen3-32b\n"), ("model.name",)),
    "spec": (lambda d: d["system"]["spec"]["accelerator"].update(memory_bytes=1e-30), ("system.spec",)),
}


@pytest.mark.parametrize("choice", ["aggregated", "disaggregated"])
@pytest.mark.parametrize("name", list(SERVING_MUTATIONS))
def test_gate_refuses_malformed_serving_documents(serve_docs, choice, name):
    doc = serve_docs[choice]
    assert isinstance(check(doc), ServingDocument)
    fn, words = SERVING_MUTATIONS[name]
    refused(changed(doc, fn), *words)


def test_serving_documents_hold_their_numbers(serve_docs):
    for choice, d in serve_docs.items():
        assert d["mode"] == choice and d["gpus"] == sum(p["gpus"] for p in d["pools"]) <= d["gpu_budget"] == 32
        for p in d["pools"]:
            assert p["gpus"] == p["workers"] * p["gpus_per_worker"]
            assert p["predicted"]["peak_bytes"] <= p["predicted"]["capacity_bytes"]
            assert p["max_model_len"] >= d["traffic"]["max_request_tokens"] == 4500
        assert d["prediction"]["ttft_ms"] <= 300 and d["prediction"]["tpot_ms"] <= 10


def test_rate_beyond_the_budget_says_how_many_gpus():
    with pytest.raises(PlannerError) as e:
        planner.search_serve("llama-3.1-70b", "h100", 16, 2000, 300, 500, 30, rate=50)
    msg = str(e.value)
    need = int(msg.split("needs at least ")[1].split(" x ")[0])
    assert need > 16 and "--gpus is 16" in msg


def test_rate_takes_only_the_gpus_it_needs():
    res = planner.search_serve("llama-3.1-70b", "h100", 16, 2000, 300, 500, 30, rate=10)
    for d in res.plan_documents.values():
        assert d["prediction"]["requests_per_s"] >= 10 and d["gpus"] < 16
        serving = next(p for p in d["pools"] if p["role"] != "prefill")
        # one worker (or group) fewer would not serve the rate
        assert (serving["workers"] - 1) * serving["predicted"]["requests_per_s"] < 10
    a = res.aggregated
    assert a.gpus == math.ceil(10 / a.estimate.requests_per_s) * a.estimate.plan.gpus


def test_prefill_workers_fit_their_memory():
    res = planner.search_serve("qwen3-235b-a22b", "h200", 16, 4000, 1000, 1000, 40, rate=5, backend="sglang")
    for d in res.plan_documents.values():
        for p in d["pools"]:
            assert p["predicted"]["weights_bytes"] < p["predicted"]["capacity_bytes"]
            assert p["predicted"]["peak_bytes"] <= p["predicted"]["capacity_bytes"]


def test_layouts_that_do_not_divide_the_heads_are_skipped():
    res = planner.search_serve("llama-3.1-70b", "gb200", 72, 2000, 300, 500, 30)
    for d in res.plan_documents.values():
        assert all(64 % p["plan"]["tp"] == 0 for p in d["pools"])


def test_max_model_len_comes_from_the_longest_request():
    res = planner.search_serve("qwen3-8b", "h100", 8, 1000, 200, 1000, 50, max_request_tokens=20000, source="trace")
    for d in res.plan_documents.values():
        assert d["traffic"]["max_request_tokens"] == 20000 and d["traffic"]["source"] == "trace"
        assert all(20000 <= p["max_model_len"] <= 40960 for p in d["pools"])
    with pytest.raises(PlannerError, match="longest request .50000 tokens.* exceeds qwen3-8b's 40960"):
        planner.search_serve("qwen3-8b", "h100", 8, 1000, 200, 1000, 50, max_request_tokens=50000)


# --------------------------------------------------------------------------------------------------
# expert placement and fleet documents
# --------------------------------------------------------------------------------------------------

def test_placement_document(placement_doc):
    d = placement_doc
    assert (d["schema"], d["gpus"], d["slots_per_gpu"], d["num_redundant_experts"]) == (
        "planner.expert-placement", 8, 2, 8)
    assert len(d["physical_to_logical"]) == 32 and len(d["physical_to_logical"][0]) == 16
    assert isinstance(check(d), PlacementDocument)

    def share(d: dict[str, Any]) -> None:
        d["replica_share"][3][0] -= 0.1

    refused(changed(d, lambda d: d["physical_to_logical"][0].__setitem__(0, 8)), "physical_to_logical[0][0]")
    refused(changed(d, share), "replica_share[3]", "not 1")
    refused(changed(d, lambda d: d["physical_to_logical"].pop()), "31 rows", "32 MoE layers")
    refused(changed(d, lambda d: d.update(num_logical_experts=16)), "num_logical_experts")
    refused(changed(d, lambda d: d.update(gpus_per_node=3)), "gpus_per_node")
    # 8 bytes per parameter: one Mixtral expert over 32 layers is 45 GB; half an H100 holds none
    refused(changed(d, lambda d: d.update(weight_bytes_per_param=8.0)), "slots_per_gpu 2 does not fit", "at most 0")


def test_fleet_document():
    # a small GPU mix (histogram of two buckets on two GPU types): the gate passes it and refuses each claim changed
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        f.write("isl,osl,weight\n512,128,3\n4096,256,1\n")
    res = planner.mix("llama-3.1-8b", ["a100", "h100"], 1000, 50, histogram=f.name, rate=20.0)
    doc = res.plan_document
    assert isinstance(check(doc), FleetDocument)
    refused(changed(doc, lambda d: d["pools"][0]["loads"][0].update(capacity_rps=d["pools"][0]["loads"][0]
                                                                     ["capacity_rps"] * 1.2)), "capacity model")
    refused(changed(doc, lambda d: d["pools"][0].update(replicas=d["pools"][0]["replicas"] + 1)), "gpus is")
    refused(changed(doc, lambda d: d.update(cost_per_hour_usd=d["cost_per_hour_usd"] + 1)), "cost_per_hour_usd")
    refused(changed(doc, lambda d: d["buckets"][0].update(rate_rps=d["buckets"][0]["rate_rps"] * 2)), "rates sum")
    refused(changed(doc, lambda d: d.update(max_gpus={"a100-sxm-80gb": 0, "h100-sxm": 0})), "max_gpus allows 0")


# --------------------------------------------------------------------------------------------------
# the searches pass their answers through the gate; a refusal there is a bug
# --------------------------------------------------------------------------------------------------

def test_search_train_returns_a_checked_document():
    res = planner.search_train("llama-3.1-8b", "h100", 16, 4096, 64, top=2)
    assert res.plan_document is not None and check(res.plan_document).plan.tp == res.best.plan.tp


def test_a_gate_refusal_inside_a_search_is_a_bug(monkeypatch, capsys):
    from planner import api

    real = api.training_document

    def broken(est, model, system):
        doc = real(est, model, system)
        return doc.model_copy(update={"plan": doc.plan.model_copy(update={"dp": doc.plan.dp + 1})})

    monkeypatch.setattr(api, "training_document", broken)
    with pytest.raises(GateFailure) as e:
        planner.search_train("llama-3.1-8b", "h100", 8, 2048, 32, top=1, refine=False)
    assert not isinstance(e.value, PlannerError) and "degrees do not multiply" in str(e.value)
    from planner.cli import main

    with pytest.raises(SystemExit) as ex:
        main(["train", "-m", "llama-3.1-8b", "-g", "h100", "-n", "8", "--seq", "2048", "--gbs", "32", "--json"])
    assert ex.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: internal error: GateFailure") and "degrees" in err[0]


# --------------------------------------------------------------------------------------------------
# the CLI: planner check / planner export, in process (the subprocess runs are in test_cli_train.py)
# --------------------------------------------------------------------------------------------------

def _cli(capsys, *args: str) -> tuple[int, str, str]:
    from planner.cli import main

    with pytest.raises(SystemExit) as e:
        main(list(args))
    out = capsys.readouterr()
    return int(e.value.code or 0), out.out, out.err


def test_cli_check_and_export_every_kind(capsys, tmp_path, train_doc, serve_docs, placement_doc):
    for kind, doc, targets in (("train", train_doc, ("megatron", "torchtitan", "deepspeed", "slurm")),
                               ("serve", {"best": "x", "plan_document": serve_docs["disaggregated"]},
                                ("vllm", "sglang", "trtllm", "k8s")),
                               ("placement", placement_doc, ("json",))):
        p = tmp_path / f"{kind}.json"
        p.write_text(json.dumps(doc))
        code, out, err = _cli(capsys, "check", str(p))
        assert code == 0 and out.startswith(f"OK {p}: ") and not err, err
        code, out, _ = _cli(capsys, "check", str(p), "--json")
        assert code == 0 and json.loads(out)["ok"] is True
        for t in targets:
            code, out, err = _cli(capsys, "export", str(p), "--to", t)
            assert code == 0 and out.strip(), (t, err)
        code, _, err = _cli(capsys, "export", str(p), "--to", "megatrn" if kind != "train" else "vlm")
        assert code == 2 and err.startswith("error: --to") and len(err.strip().splitlines()) == 1


def test_estimates_leave_as_documents_too(capsys, tmp_path):
    """`estimate train --json` and `estimate serve --json` carry their plan's gated document: check and export
    read them; a plan that does not fit carries none, and check says why."""
    p = tmp_path / "train.json"
    code, out, err = _cli(capsys, "estimate", "train", "-m", "llama-3.1-70b", "-g", "h100", "-n", "64", "--tp", "8",
                          "--pp", "2", "--gbs", "512", "--seq", "8192", "--json")
    assert code == 0, err
    est = json.loads(out)
    doc = est["plan_document"]
    assert doc["plan"]["tp"] == 8 and doc["plan"]["pp"] == 2 and doc["system"]["num_gpus"] == 64
    assert doc["estimate"]["step_time_s"] == est["step_time_s"]
    p.write_text(out)
    assert _cli(capsys, "check", str(p))[0] == 0
    code, out, _ = _cli(capsys, "export", str(p), "--to", "megatron")
    assert code == 0 and "--tensor-model-parallel-size 8" in out and "--pipeline-model-parallel-size 2" in out

    p = tmp_path / "serve.json"
    code, out, err = _cli(capsys, "estimate", "serve", "-m", "qwen3-8b", "-g", "h100", "--isl", "1000", "--osl", "200",
                          "-c", "16", "--backend", "sglang", "--json")
    assert code == 0, err
    doc = json.loads(out)["plan_document"]
    pool = doc["pools"][0]
    assert (doc["mode"], pool["workers"], pool["concurrency"], doc["gpus"]) == ("aggregated", 1, 16, 1)
    assert doc["traffic"]["max_request_tokens"] == 1200 and pool["max_model_len"] >= 1200
    p.write_text(out)
    assert _cli(capsys, "check", str(p))[0] == 0
    code, out, _ = _cli(capsys, "export", str(p), "--to", "sglang")
    assert code == 0 and "--max-running-requests 16" in out

    p = tmp_path / "nofit.json"
    code, out, _ = _cli(capsys, "estimate", "train", "-m", "llama-3.1-70b", "-g", "h100", "-n", "8", "--tp", "8",
                        "--gbs", "512", "--seq", "8192", "--json")
    assert code == 0 and json.loads(out)["fits"] is False and json.loads(out)["plan_document"] is None
    p.write_text(out)
    for args in (("check", str(p)), ("export", str(p), "--to", "slurm")):
        code, _, err = _cli(capsys, *args)
        assert code == 2 and err == f"error: {p}: holds no plan document: the estimated plan does not fit in memory " \
            "(\"fits\": false), so there is nothing to check or launch\n"


@pytest.mark.parametrize("name", ["num_gpus 0", "missing tp", "tp string", "peak 1e15", "dp 7", "fits false"])
def test_cli_export_refuses_with_exit_2(capsys, tmp_path, train_doc, name):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(changed(train_doc, TRAINING_MUTATIONS[name][0])))
    code, out, err = _cli(capsys, "export", str(p), "--to", "slurm")
    lines = err.strip().splitlines()
    assert code == 2 and not out and len(lines) == 1 and lines[0].startswith(f"error: {p}: "), err


def test_cli_check_refuses_files_that_are_not_documents(capsys, tmp_path):
    for text, words in (("{", "malformed JSON"), ("[1]", "JSON object"), ("\xff", "")):
        p = tmp_path / "x.json"
        p.write_bytes(text.encode("latin-1"))
        code, _, err = _cli(capsys, "check", str(p))
        assert code == 2 and err.startswith(f"error: {p}") and words in err
    code, _, err = _cli(capsys, "check", "/dev/zero")
    assert code == 2 and "not a regular file" in err


# --------------------------------------------------------------------------------------------------
# the round-trip acceptance, small (benchmarks/bench_plan_roundtrip.py runs 100 + 100)
# --------------------------------------------------------------------------------------------------

def test_random_searches_round_trip_and_mutations_are_refused():
    spec = importlib.util.spec_from_file_location("bench_plan_roundtrip", ROOT / "benchmarks" / "bench_plan_roundtrip.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)  # type: ignore[union-attr]
    counts, failures = bench.run(5, 5, seed=3, cli=1)
    assert failures == []
    for kind in ("training", "serving"):
        assert counts[f"{kind} searches answered"] == 5
        docs = counts[f"{kind} documents passed the gate"]
        assert docs >= 5 and counts[f"{kind} round-trips ok"] == docs and counts[f"{kind} exports ok"] == 4 * docs
        assert counts[f"{kind} mutations refused"] == counts[f"{kind} mutations"] == 3 * docs
        assert counts[f"{kind} cli runs ok"] == counts[f"{kind} cli runs"] == 5
