"""The HTML report (issue 14): one self-contained file per answer, well-formed, every string escaped, the plots
inside it as PNG data, the same bytes for the same answer; rendered by headless Chromium where one is installed.
"""

from __future__ import annotations

import base64
import builtins
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser

import pytest

pytest.importorskip("matplotlib", reason="the report's plots need matplotlib (pip install 'planner[plot]')")

import planner
from planner.cost.serving import ServingPlan
from planner.cost.training import stage_memory
from planner.moe import ExpertCluster, synthetic_trace
from planner.report import ReportError, fmt, render_report, write_report
from planner.search.fleet_workload import Bucket
from planner.simulation import poisson_requests, simulate
from planner.simulate_fleet import DeploymentPool, simulate_deployment

HOSTILE = "<script>alert('x')</script>\"><img src=http://evil.example/x.png onerror=alert(1)>&amp;\n\u202e"
VOID = {"meta", "img", "br", "hr", "link", "input", "col", "area", "base", "source", "wbr"}


class Checker(HTMLParser):
    """Well-formedness: every non-void element closed in order; collects tags, attributes and text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def check_html(text: str) -> Checker:
    assert text.startswith("<!DOCTYPE html>")
    c = Checker()
    c.feed(text)
    c.close()
    assert not c.errors and not c.stack, (c.errors, c.stack)
    names = [t for t, _ in c.tags]
    assert names[:3] == ["html", "head", "meta"] and names.count("body") == 1 and names.count("title") == 1
    assert "script" not in names and "link" not in names and "iframe" not in names
    csp = [a for t, a in c.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"]
    for tag, attrs in c.tags:  # no external asset, no event handler
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
        for k in ("src", "href"):
            if k in attrs:
                assert attrs[k].startswith("data:image/png;base64,"), (tag, k, attrs[k][:40])
    return c


def images(c: Checker) -> list[bytes]:
    out = []
    for tag, attrs in c.tags:
        if tag == "img":
            data = base64.b64decode(attrs["src"].split(",", 1)[1], validate=True)
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
            w, h = struct.unpack(">II", data[16:24])
            assert w >= 500 and h >= 400
            out.append(data)
    return out


def cells(c: Checker) -> set[str]:
    return {t.strip() for t in c.text if t.strip()}


# ---------------------------------------------------------------------------
# answers
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def train():
    return planner.search_train("qwen3-8b", "h100", 128, 4096, 128, pareto=True, refine=False, objective="cost",
                                tokens=1e11)


@pytest.fixture(scope="module")
def serve():
    return planner.search_serve("llama-3.1-8b", "h100", 8, 1024, 128, 1000, 50)


# ---------------------------------------------------------------------------
# one report per kind of answer
# ---------------------------------------------------------------------------

def test_training_search_report(train, tmp_path):
    m, s = planner.get_model("qwen3-8b"), planner.get_system("h100")
    p = write_report(train, tmp_path / "train.html", stages=stage_memory(m, s, train.best.plan))
    c = check_html(p.read_text(encoding="utf-8"))
    assert len(images(c)) == 2  # the front and the memory
    text = cells(c)
    assert {"Best plan and alternatives", "Pareto front over GPU counts", "Memory", "Step time"} <= text
    b = train.best
    assert fmt(b.step_time_s) in text and fmt(b.num_gpus) in text and fmt(100 * b.mfu) in text
    assert fmt(train.cost_per_million_tokens(b)) in text
    assert fmt(b.time_to_train_s(1e11) / 86400) in text  # time to train in days
    assert "qwen3-8b: training plan search" in text


def test_estimate_serving_mix_simulation_and_placement_reports(serve, tmp_path):
    m8, h100 = planner.get_model("llama-3.1-8b"), planner.get_system("h100")
    est = planner.estimate_train("llama-3.1-8b", "h100", gpus=8, tp=2, pp=2, micro_batch=1, global_batch=64,
                                 seq_len=4096)
    buckets = [Bucket(isl=200, osl=100, rate=30.0, share=0.75, longest=400, isl_range=(64, 255),
                      osl_range=(64, 255)),
               Bucket(isl=3000, osl=300, rate=10.0, share=0.25, longest=4400, isl_range=(1024, 4095),
                      osl_range=(256, 1023))]
    mix = planner.mix("llama-3.1-8b", ["l4", "l40s", "h100"], 1000, 50, buckets=buckets, disagg="on")
    sim = simulate(m8, h100, ServingPlan(tp=1), poisson_requests(8, 200, 1024, 128, 0), 1000, 50, per_request=True)
    stats = synthetic_trace(planner.get_model("mixtral-8x7b"), tokens=128, seed=1).stats()
    cluster = ExpertCluster(4, 2, 8, 2)
    placed = planner.place_experts(stats, cluster, time_limit=0.5)
    fleet = planner.search_train_fleet("llama-3.1-8b", ["a100", "h100"], 64, 4096, 256, tokens=1e11, refine=False)
    pools = [DeploymentPool("fast", h100, ServingPlan(tp=1), 2),
             DeploymentPool("slow", planner.get_system("a100"), ServingPlan(tp=1), 1)]
    deployment = simulate_deployment(m8, pools, poisson_requests(10, 200, 1024, 128, 0), router="round-robin")
    cases = [
        (fleet, {}, ["GPU types", fmt(fleet.cheapest.cost_to_train_usd), *(t.gpu for t in fleet.frontier)]),
        (deployment, {}, ["Pools", "fast", "slow", fmt(deployment.pools[0].tpot_ms["p90"])]),
        (est, {}, ["Memory", "Step time", fmt(est.step_time_s), fmt(est.memory.peak_bytes / 1e9)]),
        (serve, {}, ["Aggregated", "Pareto front", fmt(serve.aggregated.estimate.tokens_per_s_per_gpu)]),
        (mix, {}, ["Pools", "Each type alone", fmt(mix.cost_per_hour_usd),
                   *[x.reason for x in mix.singles if x.reason]]),
        (sim, {"ttft_slo_ms": 1000, "tpot_slo_ms": 50}, ["Percentiles", fmt(sim.ttft_ms["p90"]), fmt(sim.rate)]),
        (placed, {"stats": stats, "cluster": cluster}, ["Evaluation", placed.status, fmt(placed.objective)]),
    ]
    for i, (res, ctx, expect) in enumerate(cases):
        c = check_html(write_report(res, tmp_path / f"r{i}.html", **ctx).read_text(encoding="utf-8"))
        assert len(images(c)) == (2 if res is fleet else 1), type(res).__name__
        missing = [e for e in expect if e not in cells(c)]
        assert not missing, (type(res).__name__, missing)
    # a placement without its routing statistics: the tables, and a note instead of the plot
    c = check_html(render_report(placed))
    assert not images(c) and any("stats=" in t for t in c.text)


def test_hostile_names_appear_as_text(train, serve, tmp_path):
    best = train.best.model_copy(update={"model": HOSTILE, "gpu": HOSTILE})
    hostile = train.model_copy(update={"best": best, "binding": [HOSTILE], "warnings": [HOSTILE]})
    text = write_report(hostile, tmp_path / "h.html", title=HOSTILE).read_text(encoding="utf-8")
    c = check_html(text)  # no <script>, no event handler, no external src: the names did not become markup
    assert "<script>" not in text and "&lt;script&gt;" in text and "\u202e" not in text
    shown = [t for t in c.text if "alert('x')" in t]
    assert len(shown) >= 4  # the title (twice), the model cell and the notes show the name as text
    assert all("\n" not in t for t in shown)
    e = serve.aggregated.estimate.model_copy(update={"model": HOSTILE})
    agg = serve.aggregated.model_copy(update={"estimate": e})
    text = render_report(serve.model_copy(update={"aggregated": agg, "pareto": [e, *serve.pareto[1:]]}))
    check_html(text)
    assert "<script>" not in text


def test_the_same_answer_gives_the_same_bytes(serve, tmp_path):
    a = write_report(serve, tmp_path / "a.html").read_bytes()
    b = write_report(serve, tmp_path / "b.HTM").read_bytes()
    assert a == b
    assert b"elapsed" not in a and str(round(serve.elapsed_s, 6)).encode() not in a


def test_refusals_are_one_line(serve, tmp_path, monkeypatch):
    for name in ("r.pdf", "r", "r.html.txt"):
        with pytest.raises(ReportError, match=r"\.html"):
            write_report(serve, tmp_path / name)
    (tmp_path / "d.html").mkdir()
    with pytest.raises(ReportError, match="is a folder"):
        write_report(serve, tmp_path / "d.html")
    with pytest.raises(ReportError, match="cannot write"):
        write_report(serve, tmp_path / "missing" / "r.html")
    with pytest.raises(ReportError, match="no report for a dict"):
        write_report({}, tmp_path / "x.html")
    real = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(planner.PlannerError, match=re.escape("pip install 'planner[plot]'")):
        write_report(serve, tmp_path / "y.html")
    assert not (tmp_path / "y.html").exists()


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.skipif(_chromium() is None, reason="no headless Chromium installed (chromium, chromium-browser or "
                                                "google-chrome on PATH)")
def test_headless_chromium_renders_the_report(train, tmp_path):
    page = write_report(train, tmp_path / "report.html")
    shot = tmp_path / "report.png"
    out = subprocess.run([_chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
                          "--force-device-scale-factor=1",
                          "--window-size=1200,3000", f"--screenshot={shot}", page.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-500:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24]) == (1200, 3000)
    assert len(data) > 20000  # tables and images drawn, not a blank page
