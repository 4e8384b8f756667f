"""The architecture holds: no import circles; each layer imports only what it may (read from the source, imports
inside functions included); the web process, having run every callback of every view, loaded no compute library
and ran no computation of workers.core (only the helpers that draw stored results)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("workers", "dashboard")
COMPUTE_LIBRARIES = {"torch", "transformers", "umap", "numba", "sklearn", "scipy", "openTSNE", "pynndescent"}
# What the web process may read from the workers package: the contracts, the store, keys, job clients, and the
# numpy-only helpers that draw stored arrays. Computation (pipeline.stages, models, the rest of core, attention
# included) is not here.
DASHBOARD_MAY_IMPORT = {
    "workers", "workers.cli", "workers.config", "workers.store", "workers.contracts.choices",
    "workers.contracts.requests", "workers.contracts.results", "workers.contracts.specs", "workers.corpora.corpus",
    "workers.corpora.uploads", "workers.models.registry", "workers.pipeline.keys", "workers.runtime.local_queue",
    "workers.runtime.team_jobs", "workers.runtime.celery_app", "workers.core.metrics", "workers.core.export",
    "workers.core.tokens",
}


def project_modules() -> dict[str, Path]:
    """Every module of the two packages by dotted name (packages by their __init__)."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module `path` imports, at the top or inside a function: project modules by name (a `from package
    import module` counts as the module), other libraries by their top-level name."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules}
            found |= submodules or {node.module}
    return {name if name.split(".")[0] in PACKAGES else name.split(".")[0] for name in found}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    """module -> the project modules and libraries it imports."""
    modules = project_modules()
    return {name: imports_of(path, modules) for name, path in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (import circles), by Tarjan's algorithm."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_circles_are_found():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles(graph):
    assert circles(graph) == []


def violations(graph: dict[str, set[str]], layer: str, allowed) -> list[str]:
    """'module -> import' for every import of a module under `layer` that `allowed(import)` refuses."""
    return sorted(f"{module} -> {name}" for module, names in graph.items()
                  if module == layer or module.startswith(layer + ".") for name in names if not allowed(name))


def test_workers_never_import_the_dashboard(graph):
    assert violations(graph, "workers", lambda name: not name.startswith("dashboard") and name != "dash") == []


def test_contracts_import_nothing_heavy(graph):
    light = {"__future__", "dataclasses", "typing", "numpy"}
    assert violations(graph, "workers.contracts", lambda n: n in light or n.startswith("workers.contracts")
                      or n == "workers.store") == []


def test_core_is_computation_without_models_or_processes(graph):
    """workers.core: numpy / scipy / scikit-learn / umap on arrays; no torch, no store, no queue."""
    assert violations(graph, "workers.core", lambda n: n not in ("torch", "transformers", "celery", "redis",
                                                                 "diskcache") and (
        not n.startswith("workers") or n.startswith(("workers.core", "workers.contracts")))) == []


def test_core_reaches_the_gpu_projections_only_by_the_names_in_the_table_of_choices(graph):
    """A method's estimator is named in the table of choices and imported by that name when it runs. PCA's and
    UMAP's are workers.models.projection's (torch / cuML on a GPU), which falls back to workers.core.project's own on
    the CPU: models imports core, core never imports models."""
    from workers.contracts.choices import METHODS

    named = {c.value: c.estimator.partition(":")[0] for c in METHODS if c.estimator}
    assert {named["pca"], named["umap"]} == {"workers.models.projection"}
    assert set(named.values()) <= {"workers.core.project", "workers.models.projection"}
    assert "workers.core.project" in graph["workers.models.projection"]
    assert violations(graph, "workers.core", lambda n: not n.startswith("workers.models")) == []


def test_only_the_models_package_imports_torch(graph):
    torch_users = {module for module, names in graph.items() if names & {"torch", "transformers"}}
    assert torch_users and all(module.startswith("workers.models") for module in torch_users), torch_users


def test_the_dashboard_reads_only_what_it_may(graph):
    assert violations(graph, "dashboard", lambda n: not n.startswith("workers") or n in DASHBOARD_MAY_IMPORT) == []
    assert violations(graph, "dashboard", lambda n: n not in COMPUTE_LIBRARIES) == []


def test_a_new_forbidden_import_is_caught(graph):
    """The rules read function-level imports too: a planted one is refused."""
    planted = {**graph, "dashboard.views.single": graph["dashboard.views.single"] | {
        "workers.pipeline.stages"}}
    assert violations(planted, "dashboard", lambda n: not n.startswith("workers") or n in DASHBOARD_MAY_IMPORT)


WEB_PROCESS = r"""
import json, sys
from dataclasses import replace
from dashboard.app import create_app
from dashboard.state import ViewState
from tests.support.callbacks import base_values, core_computations, post, request_body

keys, corpus, cache = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
app = create_app(cache_dir=cache, start_worker=False)
client = app.server.test_client()
deps = [d for d in client.get("/_dash-dependencies").get_json() if not d.get("clientside_function")]
base = ViewState(corpus=corpus, method="pca")
states = [replace(base, view=view) for view in ("single", "matrix", "sentence", "headmap", "compare")]
states += [replace(base, view="matrix", order=order) for order in ("prev_token", "fidelity")]
states += [replace(base, view="single", text=0, pos=1, labels=1, search="the")]
states += [replace(base, view=view, text=1, pos=2, weight="value") for view in ("sentence", "compare")]
statuses, answered = {}, set()
with core_computations() as computed:
    for state in states:
        values = base_values(state, keys)
        for dep in deps:
            slots = [(s["id"], s["property"]) for s in [*dep["inputs"], *dep.get("state", [])]]
            for trigger in slots:
                code = post(client, request_body(dep, values, f"{trigger[0]}.{trigger[1]}")).status_code
                statuses[code] = statuses.get(code, 0) + 1
                if code >= 500:
                    raise SystemExit(f"{dep['output']} answered {code}")
                if code in (200, 204):
                    answered.add(dep["output"])
refused = [dep["output"] for dep in deps if dep["output"] not in answered]
if refused:
    raise SystemExit(f"never answered with valid values: {refused}")
print(json.dumps({"loaded": sorted({m.split('.')[0] for m in sys.modules}), "statuses": statuses,
                  "callbacks": len(deps), "computed": sorted(computed)}))
"""


def test_the_web_process_computes_nothing(tmp_path):
    """Every callback of every view, each triggered by each of its inputs, over a store holding a head's picture,
    its fidelity, its attention within each text, the model's summaries and head map: the web process answers them
    all, never loads a compute library and never runs a computation of workers.core, numpy-only ones included
    (what is missing goes to the workers as jobs)."""
    from tests.support.texts import SENTENCES
    from workers.contracts.requests import HeadRequest, job_request
    from workers.pipeline.keys import corpus_template
    from workers.pipeline.stages import run_stage
    from workers.store import open_store

    corpus = tmp_path / "small.txt"
    corpus.write_text("\n".join(SENTENCES) + "\n")
    store = open_store(tmp_path / "cache")
    request = HeadRequest(corpus="small", method="pca")
    env = {"QK_ATLAS_CORPORA": f"small={corpus}", "QK_ATLAS_CACHE_DIR": str(tmp_path / "cache"),
           "QK_ATLAS_WARM_UMAP": "0"}
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        keys = run_stage(job_request(request, "fidelity"), store)["keys"]
        run_stage(job_request(corpus_template(request), "summaries"), store)
        run_stage(job_request(corpus_template(request), "headmap"), store)
        run_stage(job_request(request, "attention"), store)
    done = subprocess.run([sys.executable, "-c", WEB_PROCESS, json.dumps(keys), "small", str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**__import__("os").environ, **env})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["callbacks"] >= 15 and report["statuses"].get("200", 0) > 100, report
    assert "dash" in report["loaded"]
    assert not COMPUTE_LIBRARIES & set(report["loaded"]), sorted(COMPUTE_LIBRARIES & set(report["loaded"]))
    assert report["computed"] == []


def test_a_computation_in_the_web_process_is_caught():
    """The callback sweep's watch sees a numpy-only attention computation, reached through any name it is bound to,
    and the first import of a computing module; it lets the drawing helpers and key resolution run."""
    import importlib

    import numpy as np

    import workers.core.fidelity
    from tests.support.callbacks import core_computations
    from workers.contracts.requests import HeadRequest
    from workers.core import attention, metrics
    from workers.pipeline.keys import resolve

    q = np.random.default_rng(0).normal(size=(6, 4))
    with core_computations() as helpers:
        metrics.renormalise_without(np.full((3, 3), 1 / 3), np.array([True, False, False]))
        resolve(HeadRequest())
    with core_computations() as computing:
        attention.position_mean(*attention.attention_within_texts(q, q, np.zeros(6, dtype=int), False), 6)
    with core_computations() as bound_elsewhere:
        workers.core.fidelity.text_attention(q[None], q[None])  # the name fidelity imported it under
    saved = sys.modules.pop("workers.core.headmap", None)
    try:
        with core_computations() as imported:
            importlib.import_module("workers.core.headmap")
    finally:
        if saved is not None:  # the module every other test imported, back in its place
            sys.modules["workers.core.headmap"] = saved
            workers.core.headmap = saved
    assert helpers == set()
    assert computing == {"attention.py:attention_within_texts", "attention.py:text_attention",
                         "attention.py:position_mean"}
    assert bound_elsewhere == {"attention.py:text_attention"} and imported == {"headmap.py"}
    assert attention.text_attention.__name__ == "text_attention" and not hasattr(attention.text_attention,
                                                                                 "__wrapped__")  # restored


def test_no_callback_reads_more_than_eight_inputs(tmp_path):
    """Each view's callbacks stay small: at most eight inputs (states not counted) in any callback of the app."""
    from dashboard.app import create_app

    app = create_app(cache_dir=tmp_path / "cache", start_worker=False)
    counts = {output: len(dep["inputs"]) for output, dep in app.callback_map.items()}
    assert len(counts) >= 15
    assert {output: n for output, n in counts.items() if n > 8} == {}


def test_the_workers_preload_does_not_import_scipy_stats():
    """What a worker imports before the first picture (local_queue._preload: the stages and the fitted picture) leaves
    out scipy.stats, about a second of the cold start that only the fidelity figures need."""
    script = ("import sys, workers.pipeline.stages, workers.core.fitted, workers.runtime.local_queue; "
              "print('scipy.stats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False", out.stderr
