"""Import rules of the ``planner`` package, checked over grimp's import graph.

Data flows one way, ``specs -> cost -> search -> plans -> export -> cli``
(docs/architecture.md, "Import rules"). The graph is built from the source
with ``exclude_type_checking_imports=True``: an import under ``if
TYPE_CHECKING:`` never runs, so it does not count. Each failure lists the
offending imports or import chains, one per line, as ``a -> b -> c``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import networkx as nx
import pytest

PACKAGE = "planner"

#: High to low: a layer may import the layers below it, never one above (directly or through any chain).
LAYERS = ("planner.cli", "planner.export", "planner.plans", "planner.search", "planner.cost", "planner.specs")

#: What planner.specs may import (besides itself) and what planner.export may import (besides itself), directly.
SPECS_MAY_IMPORT = ("planner.errors", "planner.limits")
EXPORT_MAY_IMPORT = ("planner.plans", "planner.specs", "planner.errors", "planner.limits")

#: (importer, imported) packages: no chain of imports may lead from the first to the second.
FORBIDDEN = [
    ("planner.cost", "planner.search"),
    ("planner.cost", "planner.plans"),
    ("planner.cost", "planner.export"),
    ("planner.cost", "planner.cli"),
    ("planner.cost", "planner.validate"),
    ("planner.search", "planner.plans"),
    ("planner.search", "planner.export"),
    ("planner.search", "planner.cli"),
]

#: Modules of planner.cli that every command module may import (the others are command modules).
CLI_SHARED = {"planner.cli.render"}


def build() -> grimp.ImportGraph:
    return grimp.build_graph(PACKAGE, exclude_type_checking_imports=True)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return build()


# ---------------------------------------------------------------------------
# the checks: each returns the offending imports / chains as text, empty when the rule holds
# ---------------------------------------------------------------------------

def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _family(graph: grimp.ImportGraph, package: str) -> list[str]:
    return sorted(graph.find_descendants(package) | {package}) if package in graph.modules else []


def import_cycles(graph: grimp.ImportGraph) -> list[str]:
    """One cycle per strongly connected component of the direct import graph (and every self-import)."""
    g = nx.DiGraph()
    g.add_nodes_from(graph.modules)
    g.add_edges_from((a, b) for a in graph.modules for b in graph.find_modules_directly_imported_by(a))
    cycles = []
    for component in nx.strongly_connected_components(g):
        if len(component) > 1:
            edges = nx.find_cycle(g.subgraph(component))
            cycles.append(" -> ".join([a for a, _ in edges] + [edges[0][0]]))
    return sorted(cycles) + sorted(f"{a} -> {a}" for a, _ in nx.selfloop_edges(g))


def layer_violations(graph: grimp.ImportGraph) -> list[str]:
    """Chains by which a layer of LAYERS imports a layer above it."""
    lines = set()
    for dep in graph.find_illegal_dependencies_for_layers(layers=LAYERS):
        for route in dep.routes:
            for head in route.heads:
                for tail in route.tails:
                    lines.add(" -> ".join([head, *route.middle, tail]))
    return sorted(lines)


def imports_outside(graph: grimp.ImportGraph, package: str, allowed: tuple[str, ...]) -> list[str]:
    """Direct imports by ``package`` (and its descendants) of modules outside itself and ``allowed``."""
    bad = []
    for importer in _family(graph, package):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if not any(_within(imported, p) for p in (package, *allowed)):
                bad.append(f"{importer} -> {imported}")
    return bad


def chains(graph: grimp.ImportGraph, importer: str, imported: str) -> list[str]:
    """The shortest import chains from package ``importer`` to package ``imported``."""
    if importer not in graph.modules or imported not in graph.modules:
        return []
    found = graph.find_shortest_chains(importer=importer, imported=imported, as_packages=True)
    return sorted(" -> ".join(c) for c in found)


def cli_importers(graph: grimp.ImportGraph) -> list[str]:
    """Direct imports of planner.cli (or a module in it) from outside planner.cli and planner.__main__."""
    bad = []
    for imported in _family(graph, "planner.cli"):
        for importer in sorted(graph.find_modules_that_directly_import(imported)):
            if not (_within(importer, "planner.cli") or importer == "planner.__main__"):
                bad.append(f"{importer} -> {imported}")
    return bad


def cli_cross_imports(graph: grimp.ImportGraph) -> list[str]:
    """Chains from one CLI command module (or a shared module) to another command module."""
    commands = sorted(m for m in graph.find_children("planner.cli") if m not in CLI_SHARED)
    bad = set()
    for a in commands + sorted(CLI_SHARED):
        for b in commands:
            if a != b:
                bad.update(chains(graph, a, b))
    return sorted(bad)


def _message(title: str, lines: list[str]) -> str:
    return title + ":\n  " + "\n  ".join(lines)


# ---------------------------------------------------------------------------
# the rules
# ---------------------------------------------------------------------------

def test_graph_sees_the_package(graph):
    """The rules are only as good as the graph: it holds the modules they talk about."""
    for module in ("planner.cli", "planner.cli.render", "planner.cli.train", "planner.cost.training",
                   "planner.specs.model", "planner.search.training", "planner.export", "planner.plans",
                   "planner.errors", "planner.limits", "planner.__main__"):
        assert module in graph.modules, module
    assert graph.direct_import_exists(importer="planner.cost.training", imported="planner.cost.memory")
    assert graph.direct_import_exists(importer="planner.__main__", imported="planner.cli")


def test_no_import_cycles(graph):
    assert not (found := import_cycles(graph)), _message("import cycles", found)


def test_layers(graph):
    """specs -> cost -> search -> plans -> export -> cli: no layer imports one above it, through any chain."""
    assert not (found := layer_violations(graph)), _message("a lower layer imports a higher one", found)


def test_specs_import_nothing_of_ours(graph):
    """planner.specs imports nothing of the planner but planner.specs.*, planner.errors and planner.limits."""
    found = imports_outside(graph, "planner.specs", SPECS_MAY_IMPORT)
    assert not found, _message("planner.specs imports outside specs / errors / limits", found)


@pytest.mark.parametrize(("importer", "forbidden"), FORBIDDEN)
def test_forbidden_imports(graph, importer, forbidden):
    """A lower package never imports a higher one, directly or through any chain."""
    assert not (found := chains(graph, importer, forbidden)), _message(f"{importer} must not import {forbidden}", found)


def test_export_reads_plans_only(graph):
    """planner.export imports (directly) only planner.plans, planner.specs, planner.errors and planner.limits.

    Direct imports: the gate in planner.plans needs the cost model, which export may reach through it.
    """
    found = imports_outside(graph, "planner.export", EXPORT_MAY_IMPORT)
    assert not found, _message("planner.export imports outside plans / specs / errors / limits", found)


def test_nothing_imports_the_cli(graph):
    """Only planner.cli.* and planner.__main__ import planner.cli (the CLI sits on top of everything)."""
    assert not (found := cli_importers(graph)), _message("imports of planner.cli from outside it", found)


def test_cli_commands_do_not_import_each_other(graph):
    """planner.cli command modules share planner.cli.render and never import one another."""
    commands = set(graph.find_children("planner.cli")) - CLI_SHARED
    assert {"planner.cli.specs", "planner.cli.train", "planner.cli.serve", "planner.cli.experts"} <= commands
    assert not (found := cli_cross_imports(graph)), _message("CLI command modules import each other", found)


def test_checks_catch_planted_imports():
    """Each check reports an illegal import planted in a fresh graph (so a passing rule means something)."""
    g = build()
    g.add_import(importer="planner.specs.units", imported="planner.catalog")
    g.add_import(importer="planner.catalog", imported="planner.specs.units")
    g.add_import(importer="planner.cost.memory", imported="planner.search.candidates")
    g.add_import(importer="planner.export.slurm", imported="planner.cost.serving")
    g.add_import(importer="planner.moe.trace", imported="planner.cli.render")
    g.add_import(importer="planner.cli.render", imported="planner.cli.train")
    g.add_import(importer="planner.cli.serve", imported="planner.cli.specs")

    assert any("planner.catalog -> planner.specs.units" in c or "planner.specs.units -> planner.catalog" in c
               for c in import_cycles(g))
    assert "planner.specs.units -> planner.catalog" in imports_outside(g, "planner.specs", SPECS_MAY_IMPORT)
    assert "planner.cost.memory -> planner.search.candidates" in chains(g, "planner.cost", "planner.search")
    assert any(v.startswith("planner.cost.memory -> planner.search.candidates") for v in layer_violations(g))
    assert "planner.export.slurm -> planner.cost.serving" in imports_outside(g, "planner.export", EXPORT_MAY_IMPORT)
    assert "planner.moe.trace -> planner.cli.render" in cli_importers(g)
    cross = cli_cross_imports(g)
    assert "planner.cli.render -> planner.cli.train" in cross
    assert "planner.cli.serve -> planner.cli.specs" in cross


def test_help_does_not_load_solvers():
    """`planner --help` loads neither ortools (CP-SAT) nor pulp (CBC): solvers are imported where they solve."""
    code = (
        "import sys\n"
        "from planner.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'ortools', 'pulp', 'numpy', 'networkx'})\n"
        "sys.stderr.write('LOADED ' + ' '.join(heavy) + '\\n')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert "Usage" in out.stdout
    loaded = set([x for x in out.stderr.splitlines() if x.startswith("LOADED")][-1].split()[1:])
    assert not loaded & {"ortools", "pulp"}, f"`planner --help` imports {sorted(loaded)}"


def test_the_version_is_the_packages():
    """``planner.__version__`` (``planner/version.py``) is the version ``pyproject.toml`` installs."""
    import re

    import planner

    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert re.search(r'^version = "([^"]+)"', text, re.M).group(1) == planner.__version__
