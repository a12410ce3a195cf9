"""The package's shape: one installed package, core modules that import no concrete trainable,
a user's own `trainables/` folder that cannot shadow hpo's, and the built-in studies by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

CORE = ["hpo.runner", "hpo.runner.runs", "hpo.runner.served", "hpo.runner.head", "hpo.experiment", "hpo.report", "hpo.packing", "hpo.plan", "hpo.results",
        "hpo.confirm", "hpo.cli", "hpo.spec", "hpo.space"]


def python(code: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_core_imports_no_concrete_trainable(tmp_path):
    r = python(f"import json, sys\nfor m in {CORE!r}: __import__(m)\n"
               "print(json.dumps(sorted(sys.modules)))", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    mods = json.loads(r.stdout)
    concrete = [m for m in mods if m.startswith("hpo.trainables.")]
    assert concrete == [], concrete
    assert "trainables" not in mods and "torch" not in mods and "ray" not in mods


def test_a_users_trainables_folder_does_not_shadow_hpos(tmp_path):
    project = tmp_path / "my_project"
    (project / "trainables").mkdir(parents=True)
    (project / "trainables" / "__init__.py").write_text("raise ImportError('the user project was imported')\n")
    (project / "trainables" / "mlp.py").write_text("raise ImportError('the user mlp was imported')\n")
    spec = project / "spec.yaml"
    spec.write_text("name: t\ntrainable: mlp\ndataset: mnist_sample\nmetric: val_acc\n"
                    "params: {lr: {grid: [0.1]}, hidden: [8]}\n")
    code = ("import sys\nfrom hpo.experiment import load_experiment\n"
            f"exp = load_experiment({str(spec)!r})\n"
            "print(exp.trainable.module.__name__, exp.trainable.module.__file__)\n"
            "assert 'trainables' not in sys.modules\n")
    # the project folder first on sys.path, as `hpo submit --working-dir` or a notebook has it
    r = python(code, cwd=project, env={"PYTHONPATH": str(project)})
    assert r.returncode == 0, r.stderr
    name, file = r.stdout.split()
    assert name == "hpo.trainables.mlp" and Path(file).resolve() == (ROOT / "trainables" / "mlp.py").resolve()


def test_built_in_studies_by_name(tmp_path):
    from hpo.cli import main

    r = subprocess.run([sys.executable, "-m", "hpo.cli", "studies"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "lr_reg" in r.stdout and "compare/tpe" in r.stdout
    r = subprocess.run([sys.executable, "-m", "hpo.cli", "validate", "lr_reg"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "16 trial(s)" in r.stdout
    assert main(["validate", "no_such_study"]) == 2


@pytest.mark.slow
def test_wheel_installs_one_package_with_the_studies(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (wheel,) = tmp_path.glob("hpo-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.startswith("hpo-")}
    assert tops == {"hpo"}, tops
    for f in ("hpo/trainables/mlp.py", "hpo/studies/lr_reg.yaml", "hpo/studies/compare/tpe.yaml",
              "hpo/data/mnist_sample.npz", "hpo/contract.py", "hpo/runner/collect.py"):
        assert f in names, f


# ------------------------------------------------------------------ the static import graph

def _import_graph() -> dict[str, set[str]]:
    """hpo's and trainables' modules (trainables as hpo.trainables) -> the modules they import,
    at the top of a module or inside a function alike; `from pkg import mod` counts as `mod`."""
    import ast

    def modname(f: Path) -> str:
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[0] == "trainables":
            parts = ["hpo", "trainables", *parts[1:]]
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    files = [*(ROOT / "hpo").rglob("*.py"), *(ROOT / "trainables").rglob("*.py")]
    mods = {modname(f): f for f in files}
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        pkg = m if f.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    p = pkg.split(".")
                    base = ".".join(p[:len(p) - node.level + 1] + ([base] if base else []))
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods]
                targets = subs + ([base] if len(subs) < len(node.names) else [])
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rsplit(".", 1)[0] if "." in t else ""
                if t and t != m:
                    graph[m].add(t)
    return graph


def test_no_import_circles():
    """Tarjan's strongly connected components of the import graph: none larger than one module."""
    graph = _import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert circles == []


_TOP = ("hpo.api", "hpo.cli", "hpo.warm_head")
_BELOW_RUNNER = ("hpo.runner", "hpo.report", *_TOP)
# importer -> what it must never import (the layers, bottom up: ray_compat; adapters; the
# registries, space, contract, data, trainables, spec, experiment; runner and report; api; cli;
# the warm head, which is handed the CLI)
LAYERS = {
    "hpo.ray_compat": lambda t: not t.startswith(("hpo.ray_compat", "hpo.errors")),
    "hpo.adapters": lambda t: t.startswith(("hpo.searchers", "hpo.schedulers", *_BELOW_RUNNER)),
    "hpo.space": lambda t: t.startswith(("hpo.searchers", "hpo.schedulers", *_BELOW_RUNNER)),
    "hpo.contract": lambda t: t.startswith(("hpo.searchers", "hpo.schedulers", *_BELOW_RUNNER)),
    **{k: (lambda t: t.startswith(_BELOW_RUNNER)) for k in (
        "hpo.searchers", "hpo.schedulers", "hpo.data", "hpo.trainables", "hpo.spec", "hpo.experiment")},
    "hpo.runner": lambda t: t.startswith(_TOP),
    "hpo.report": lambda t: t.startswith(_TOP),
    "hpo.api": lambda t: t.startswith(("hpo.cli", "hpo.warm_head")),
    "hpo.cli": lambda t: t.startswith("hpo.warm_head"),
}


def test_no_imports_upward():
    graph = _import_graph()
    upward = [(m, t) for m, ts in graph.items() for layer, banned in LAYERS.items()
              if m == layer or m.startswith(layer + ".") for t in ts if banned(t)]
    assert upward == []
    assert graph["hpo.warm_head"] >= {"hpo.cli", "hpo.runner.head"}  # the head is handed the CLI


def test_standard_library_imports_sit_at_the_top_of_modules():
    """An import inside a function is for laziness that is measured to matter (Ray 1.3 s, torch
    1.9 s, pandas 0.4 s kept out of `hpo validate`, the report's and the CLI's start); the standard
    library is never that, so it is imported at the top."""
    import ast

    inside = []
    for p in sorted([*(ROOT / "hpo").rglob("*.py"), *(ROOT / "trainables").rglob("*.py")]):
        for fn in ast.walk(ast.parse(p.read_text())):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                for s in fn.body:
                    if isinstance(s, ast.Import | ast.ImportFrom) and not getattr(s, "level", 0):
                        mod = s.module if isinstance(s, ast.ImportFrom) else s.names[0].name
                        if mod and mod.split(".")[0] in sys.stdlib_module_names:
                            inside.append(f"{p.relative_to(ROOT)}:{s.lineno} {mod}")
    assert not inside, inside
