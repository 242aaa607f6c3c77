"""``--plot FILE`` and ``--report FILE.html`` on the commands that draw (issue 14, "Plots").

Each command writes a real PNG / SVG and a self-contained HTML report (no external reference: every figure is
inline), says so on stderr (nothing under ``--json``, whose stdout stays one JSON object), and refuses a bad file
name before any work with one line and exit code 2.
"""

from __future__ import annotations

import json
import re

import pytest

from cli_in_process import cli

pytest.importorskip("matplotlib", reason="the plots need the planner[plot] extra (matplotlib)")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

#: A fast input of each command that has --plot / --report ({hist}: a histogram file).
COMMANDS: dict[str, tuple[str, ...]] = {
    "train": ("train", "-m", "llama-3.1-8b", "-g", "h100", "-n", "32", "--seq", "2048", "--gbs", "64", "--objective",
              "cost"),
    "estimate-train": ("estimate", "train", "-m", "llama-3.1-8b", "-g", "h100", "-n", "8", "--gbs", "64", "--seq",
                       "2048", "--pp", "2"),
    "serve": ("serve", "-m", "qwen3-8b", "-g", "h100", "-n", "8", "--isl", "1024", "--osl", "128", "--ttft", "500ms",
              "--tpot", "50ms"),
    "simulate": ("simulate", "-m", "qwen3-8b", "-g", "h100", "--rate", "4", "--requests", "60"),
    "experts": ("experts", "-m", "mixtral-8x7b", "--synthetic", "--tokens", "256", "--gpus", "4", "--time-limit",
                "0.3"),
    "mix": ("mix", "-m", "llama-3.1-8b", "--gpus", "a100,h100", "--histogram", "{hist}", "--rate", "4", "--ttft",
            "1s", "--tpot", "50ms"),
}


@pytest.fixture(scope="module")
def hist(tmp_path_factory) -> str:
    p = tmp_path_factory.mktemp("artifacts") / "hist.csv"
    p.write_text("isl,osl,weight\n512,128,3\n4096,256,1\n")
    return str(p)


def _argv(name: str, hist: str, *extra: str) -> list[str]:
    return [a.format(hist=hist) for a in COMMANDS[name]] + list(extra)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_plot_and_report_are_written_and_said(name, hist, tmp_path):
    png, html = tmp_path / "fig.png", tmp_path / "report.html"
    code, out, err = cli(*_argv(name, hist, "--plot", str(png), "--report", str(html)))
    assert code == 0, err
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5_000
    page = html.read_text()
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert "data:image/png;base64," in page or "<svg" in page  # the figure is inline
    assert not re.search(r"""(src|href)=["']https?://""", page)  # self-contained: nothing fetched
    assert f"wrote {png}" in err and f"wrote {html}" in err
    assert out.strip()  # the usual tables are still printed


@pytest.mark.parametrize("name", ["serve", "mix"])
def test_json_stays_one_object_and_stderr_silent(name, hist, tmp_path):
    svg = tmp_path / "fig.svg"
    code, out, err = cli(*_argv(name, hist, "--json", "--plot", str(svg)))
    assert code == 0 and err == ""
    assert isinstance(json.loads(out), dict)
    assert "<svg" in svg.read_text()[:2000]


@pytest.mark.parametrize("flag, name, message", [
    ("--plot", "fig.pdf", "must end .png or .svg"),
    ("--report", "page.txt", "must end .html or .htm"),
    ("--plot", "nowhere/fig.png", "no directory"),
])
def test_a_bad_file_name_is_refused_before_any_work(flag, name, message, hist, tmp_path):
    for command in ("train", "mix"):
        code, out, err = cli(*_argv(command, hist, flag, str(tmp_path / name)))
        assert code == 2 and out == "", (command, err)
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_the_input_file_is_never_overwritten(hist, tmp_path):
    before = open(hist).read()
    # the histogram itself, named as the report (a .html copy of it is another file; name the input directly)
    page = tmp_path / "hist.html"
    page.write_text(before)
    code, _, err = cli("mix", "-m", "llama-3.1-8b", "--gpus", "a100,h100", "--histogram", str(page), "--rate", "4",
                       "--ttft", "1s", "--tpot", "50ms", "--report", str(page))
    assert code == 2 and "is the --histogram input" in err
    assert page.read_text() == before


def test_plot_with_a_capacity_table_is_refused(tmp_path):
    """A Mélange capacity table answers with counts only (no model answer to draw)."""
    code, out, err = cli("mix", "--capacity-table", str(tmp_path / "t.json"), "--plot", str(tmp_path / "m.png"))
    assert code == 2 and out == "" and "--plot" in err and "--capacity-table" in err
    assert not (tmp_path / "m.png").exists()


def test_a_verified_mix_report_holds_the_verification(hist, tmp_path):
    html = tmp_path / "mix.html"
    code, out, err = cli(*_argv("mix", hist, "--verify", "--requests", "400", "--report", str(html)))
    assert code == 0, err
    page = html.read_text()
    assert "Verified by simulation" in page and "400 requests replayed behind the bucket router" in page
    # without --verify there is no such section
    code, _, err = cli(*_argv("mix", hist, "--report", str(html)))
    assert code == 0 and "Verified by simulation" not in html.read_text()
