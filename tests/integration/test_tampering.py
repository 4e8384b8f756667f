"""Every registered callback replayed with tampered values: no 500, no file read outside the offered corpora, no
unregistered model loaded, the local worker alive. Callbacks are taken from the app's own dependency list."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from dashboard.app import create_app
from dashboard.shell.url import CONTROL_FIELDS
from dashboard.state import ViewState
from tests.support.callbacks import base_values, post, reading, request_body
from workers.contracts.requests import HeadRequest
from workers.models.registry import registry
from workers.runtime import local_queue
from workers.store import open_store

MARKER = "TOP-SECRET-4f1c9"
SENTENCES = ["The cat sat on the mat.", "Queries and keys meet in one picture.", "Why?",
             "She said \"hello\" and left; nobody answered.", "A ferry crossed the bay at dawn."]


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> dict[str, str]:
    """Files no request may read (a secret in every corpus format) and a model folder outside the registry."""
    import tests.support.tiny_models as tiny
    from workers.models.loading import load_model

    root = tmp_path_factory.mktemp("planted")
    (root / "secret.txt").write_text(f"{MARKER} the launch code is 0000\n")
    (root / "secret.csv").write_text(f"{MARKER}_column,other\n1,2\n")
    (root / "secret.jsonl").write_text(json.dumps({"text": f"{MARKER} jsonl"}) + "\n")
    model = tiny.save("bert", root / "outsider-model", load_model("minilm").tokenizer)
    (root / "small.txt").write_text("\n".join(SENTENCES) + "\n")
    return {"txt": str(root / "secret.txt"), "csv": str(root / "secret.csv"), "jsonl": str(root / "secret.jsonl"),
            "model": str(model), "small": str(root / "small.txt")}


def _tampered(planted: dict[str, str]) -> list[Any]:
    """Values of every wrong kind: paths, lists, dicts, out-of-range and huge numbers, long and odd text."""
    return [planted["txt"], planted["csv"], planted["jsonl"], planted["model"], "../../etc/passwd", [1, 2],
            {"layer": 1}, -5, 10**30, 1e308, "evil", "x" * 5000, True, 3.5, "", []]


def _store_variants(base: dict[str, Any], planted: dict[str, str]) -> list[dict[str, Any]]:
    """A server-written record with one field at a time replaced (paths for names, wrong types, bad ranges)."""
    swaps = [planted["txt"], planted["csv"], planted["model"], -5, 99, [1], {"a": 1}, "x" * 5000, None, "evil"]
    variants = [{**base, name: swap} for name in base for swap in swaps]
    return variants + [{**base, "extra": 1}, {k: v for k, v in list(base.items())[1:]}]


@pytest.fixture(scope="module")
def served(planted, tmp_path_factory):
    """The embedded app with its real local worker, one head computed on a small offered corpus; unlisted models
    allowed in the environment (the worst an operator can set), so only the app's own checks stand in the way."""
    mp = pytest.MonkeyPatch()
    cache = tmp_path_factory.mktemp("fuzz-cache")
    mp.setenv("QK_ATLAS_CACHE_DIR", str(cache))
    mp.setenv("QK_ATLAS_WARM_UMAP", "0")
    mp.setenv("QK_ATLAS_CORPORA", f"small={planted['small']}")
    mp.setenv("QK_ATLAS_ALLOW_UNLISTED_MODELS", "1")
    mp.setenv("QK_ATLAS_LOCAL_WORKERS", "1")
    app = create_app(cache_dir=cache)
    from dashboard import jobs

    state = ViewState(corpus="small", view="single")
    keys = jobs.run_request(HeadRequest.from_dict(state.request()), jobs.store())
    try:
        yield app, state, keys, cache
    finally:
        app.local_worker.stop()
        mp.undo()


def test_every_callback_survives_tampered_values(served, planted):
    app, state, keys, cache = served
    client = app.server.test_client()
    deps = [d for d in client.get("/_dash-dependencies").get_json() if not d.get("clientside_function")]
    assert len(deps) >= 15  # the app's own callbacks, not a hand list
    base = base_values(state, keys)
    secret_text = [MARKER, "launch code"]
    answered: dict[int, int] = {}

    def check(payload: Any, what: str) -> int:
        response = post(client, payload)
        text = response.get_data(as_text=True)
        assert response.status_code < 500, f"{what}: HTTP {response.status_code}\n{text[-800:]}"
        assert not any(s in text for s in secret_text), f"{what}: the response holds the planted file's text"
        answered[response.status_code] = answered.get(response.status_code, 0) + 1
        return response.status_code

    for dep in deps:
        slots = [(s["id"], s["property"]) for s in [*dep["inputs"], *dep.get("state", [])]]
        trigger = f"{slots[0][0]}.{slots[0][1]}"
        untampered = request_body(dep, base, trigger)
        assert check(untampered, f"{dep['output']} untampered") in (200, 204), dep["output"]
        for slot in slots:
            candidates = list(_tampered(planted))
            if isinstance(base.get(slot), dict):
                candidates += _store_variants(base[slot], planted)
            for value in candidates:
                check(request_body(dep, {**base, slot: value}, f"{slot[0]}.{slot[1]}"),
                      f"{dep['output']} {slot}={value!r:.60}")
        for broken in ({**untampered, "inputs": 5}, {**untampered, "output": "x.y"},
                       {**untampered, "changedPropIds": [[1]]}, [], "null", {**untampered, "outputs": [1, 2]},
                       "[" * 50_000 + "]" * 50_000):
            check(broken, f"{dep['output']} malformed body")
    assert answered.get(400, 0) > 500  # most tampered values were refused at the door

    # Nothing a tampered request named was computed: the worker finishes the untampered work, and every
    # extraction in the store is the small corpus under a registry model.
    store = open_store(cache)
    _wait_for_idle_worker(store)
    tokens = [key for key in store.cache.iterkeys() if str(key).startswith("tokens-")]
    assert len(tokens) == 1, "something other than the offered corpus and model was extracted"
    table = store.get_arrays(tokens[0])
    assert not any(MARKER in str(text) for text in table["texts"])
    assert set(registry()) >= {"minilm"} and planted["model"] not in registry()
    assert all(process.poll() is None for process in app.local_worker.processes.values())
    assert local_queue.worker_alive(store)


def _wait_for_idle_worker(store, timeout: float = 300.0) -> None:
    """Until no job is queued or running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = [store.get_json(k) for k in store.cache.iterkeys() if str(k).startswith("job:")]
        if not [r for r in records if r and r["state"] in ("queued", "running")]:
            return
        time.sleep(0.5)
    raise AssertionError("the local worker did not finish its queue")


def test_control_values_of_the_wrong_kind_get_the_urls_notice_and_a_canonical_url(served, planted):
    app, state, keys, _cache = served
    client = app.server.test_client()
    base = base_values(state, keys)
    for field, value, words in (("layer", [1, 2], "not a valid value"), ("head", -5, "not in 0..11"),
                                ("dims", 5, "Unknown dims"), ("method", "evil", "Unknown method"),
                                ("corpus", planted["txt"], "Unknown corpus"), ("model", planted["model"],
                                                                                "Unknown model")):
        cid = next(c for c, f in CONTROL_FIELDS.items() if f == field)
        sync = reading(client, f"{cid}.value")  # the intent of the control's view
        response = post(client, request_body(sync, {**base, (cid, "value"): value}, f"{cid}.value"))
        assert response.status_code == 200, response.get_data(as_text=True)[-500:]
        out = response.get_json()["response"]
        url = out["url"]["search"] if "url" in out else state.to_query()
        assert words in json.dumps(out["notices"]["children"]), (field, out["notices"])
        assert "evil" not in url and "-5" not in url and "dims=5" not in url and "secret" not in url, url
        assert Path(planted["txt"]).name not in url
