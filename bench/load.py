"""Load on loopback: concurrent clients replaying the browser's callback chain for cached views.

Run: `.venv/bin/python bench/load.py [--clients 20] [--seconds 60] [--think 0] [--repeat 1000]
      [--out bench/results/load.json]`.

The server is `qk-atlas serve` (the embedded default) in its own process over a store that already holds the
views. Each client loops: load the URL state (the URL callback, as on navigation), find the cached view (the sync
callback), draw it (the figure callback), hover a point (the sentence panel), and every other view select a text
(a Patch of the overlays). Each HTTP request is timed; a view is the whole chain. Errors are non-200 answers or
answers without the expected outputs. Then `--repeat` views in a row from one client, with the server's RSS read
before and after, to show whether memory stays flat.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support: helpers shared with the tests

from tests.support.net import free_port  # noqa: E402

HEADS = [(layer, head) for layer in (0, 2, 5) for head in (0, 5, 11)]


class DashClient:
    """Calls a Dash app's callbacks over HTTP the way dash-renderer does (POST /_dash-update-component)."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.session = requests.Session()
        self.callbacks = self.session.get(f"{base_url}/_dash-dependencies", timeout=30).json()

    def find(self, output: str, trigger: str) -> dict[str, Any]:
        """The callback that writes `output` ('id.prop') and is triggered by `trigger` ('id.prop')."""
        for callback in self.callbacks:
            inputs = {f"{i['id']}.{i['property']}" for i in callback["inputs"]}
            if output in callback["output"] and trigger in inputs and not callback.get("clientside_function"):
                return callback
        raise KeyError(f"no callback writes {output} on {trigger}")

    def call(self, callback: dict[str, Any], trigger: str, values: dict[str, Any]) -> tuple[dict, float]:
        """Run one callback with `values` by 'id.prop' (others None); (outputs by 'id.prop', seconds)."""
        def props(items: list[dict]) -> list[dict]:
            return [{"id": i["id"], "property": i["property"], "value": values.get(f"{i['id']}.{i['property']}")}
                    for i in items]

        outputs: list[dict] | dict = [{"id": part.rsplit(".", 1)[0], "property": part.rsplit(".", 1)[1]}
                                      for part in callback["output"].strip(".").split("...")]
        if not callback["output"].startswith(".."):  # a single output travels as one object
            outputs = outputs[0]
        body = {"output": callback["output"], "outputs": outputs, "inputs": props(callback["inputs"]),
                "state": props(callback["state"]), "changedPropIds": [trigger]}
        start = time.perf_counter()
        answer = self.session.post(f"{self.base_url}/_dash-update-component", json=body, timeout=60)
        seconds = time.perf_counter() - start
        if answer.status_code == 204:
            return {}, seconds
        answer.raise_for_status()
        response = answer.json()["response"]
        return {f"{cid}.{prop}": value for cid, by_prop in response.items() for prop, value in by_prop.items()}, seconds


@dataclass
class Tally:
    """Latencies per step and per view, and errors, shared by the client threads."""

    steps: dict[str, list[float]] = field(default_factory=dict)
    views: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, step: str, seconds: float) -> None:
        """Record one request."""
        with self.lock:
            self.steps.setdefault(step, []).append(seconds)


class ViewChain:
    """The callbacks a browser runs to show a cached single view, bound to one client."""

    def __init__(self, client: DashClient):
        self.client = client
        self.url = client.find("single-request.data", "url.search")
        self.cached = client.find("single-keys.data", "single-request.data")
        self.draw = client.find("single-graph.figure", "view-style.data")
        self.hover = client.find("hover-panel.children", "single-graph.hoverData")

    def run(self, layer: int, head: int, select: bool, tally: Tally) -> None:
        """Navigate to L{layer} H{head}, draw it, hover a point, maybe select a text; raises on a wrong answer."""
        started = time.perf_counter()
        state, seconds = self.client.call(self.url, "url.search", {"url.search": f"?layer={layer}&head={head}"})
        tally.add("url", seconds)
        request, style = state["single-request.data"], state["view-style.data"]
        found, seconds = self.client.call(self.cached, "single-request.data", {"single-request.data": request})
        tally.add("cached view", seconds)
        keys = found.get("single-keys.data")
        if not keys or "keys" not in keys:
            raise RuntimeError(f"L{layer} H{head} was not served from the store: {found}")
        values = {"single-keys.data": keys, "view-style.data": style, "single-request.data": request}
        drawn, seconds = self.client.call(self.draw, "single-keys.data", values)
        tally.add("draw", seconds)
        if len(drawn["single-graph.figure"]["data"]) < 2:
            raise RuntimeError("the figure lacks its traces")
        hover = {"points": [{"curveNumber": 0, "pointNumber": random.randrange(1000)}]}
        panel, seconds = self.client.call(self.hover, "single-graph.hoverData",
                                          {"single-graph.hoverData": hover, "single-keys.data": keys})
        tally.add("hover", seconds)
        if not panel.get("hover-panel.children"):
            raise RuntimeError("no sentence for the hovered token")
        if select:  # a click: the URL callback writes the selection into the style, then the draw patches
            query = f"?layer={layer}&head={head}&text={random.randrange(600)}&pos=1"
            selected, seconds = self.client.call(self.url, "url.search", {"url.search": query})
            tally.add("select (url)", seconds)
            values = {**values, "view-style.data": selected["view-style.data"],
                      "single-drawn.data": drawn["single-drawn.data"]}
            patched, seconds = self.client.call(self.draw, "view-style.data", values)
            tally.add("select (patch)", seconds)
            if "operations" not in json.dumps(patched["single-graph.figure"])[:200]:
                raise RuntimeError("selection was not sent as a Patch")
        with tally.lock:
            tally.views.append(time.perf_counter() - started)


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def prepare_store(cache_dir: Path) -> None:
    """Compute the views the clients will ask for, and each head's attention within each text (their lines)."""
    sys.path.insert(0, str(ROOT))
    from workers.contracts.requests import HeadRequest, job_request
    from workers.pipeline.stages import ensure_head_view, run_stage
    from workers.store import open_store

    store = open_store(cache_dir)
    for layer, head in HEADS:
        ensure_head_view(HeadRequest(layer=layer, head=head), store)
        run_stage(job_request(HeadRequest(layer=layer, head=head), "attention"), store)


def start_server(cache_dir: Path) -> tuple[subprocess.Popen, str]:
    """`qk-atlas serve` on a free port (its log in `server_log(cache_dir)`); the process and its URL once it answers."""
    port = free_port()
    env = {**os.environ, "QK_ATLAS_CACHE_DIR": str(cache_dir), "QK_ATLAS_LOCAL_WORKERS": "1",
           "QK_ATLAS_WARM_UMAP": "0"}
    process = subprocess.Popen([sys.executable, "-m", "workers.cli", "serve", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=server_log(cache_dir).open("wb"), cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/_dash-dependencies", timeout=2).ok:
                return process, url
        except requests.ConnectionError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("the server did not start")


def server_log(cache_dir: Path) -> Path:
    """Where the server started by `start_server` writes its log (tracebacks of failed requests)."""
    return cache_dir / "server.log"


def percentile(values: list[float], share: float) -> float:
    """The share-th percentile (nearest rank), in ms."""
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def load(url: str, clients: int, seconds: float, think: float) -> dict[str, Any]:
    """`clients` threads replaying view chains for `seconds`; latency percentiles and errors."""
    tally = Tally()
    stop = time.monotonic() + seconds

    def client_loop(index: int) -> None:
        rng = random.Random(index)
        chain = ViewChain(DashClient(url))
        views = 0
        while time.monotonic() < stop:
            layer, head = rng.choice(HEADS)
            try:
                chain.run(layer, head, select=views % 2 == 1, tally=tally)
            except Exception as exc:  # counted, reported, never hidden
                with tally.lock:
                    tally.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            views += 1
            time.sleep(think)

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    requests_made = sum(len(v) for v in tally.steps.values())
    return {"clients": clients, "seconds": seconds, "think_s": think, "views": len(tally.views),
            "requests": requests_made, "requests_per_s": round(requests_made / seconds, 1),
            "errors": len(tally.errors), "error_examples": sorted(set(tally.errors))[:5],
            "request_p50_ms": round(percentile([s for v in tally.steps.values() for s in v], 0.5), 1),
            "request_p95_ms": round(percentile([s for v in tally.steps.values() for s in v], 0.95), 1),
            "view_p50_ms": round(percentile(tally.views, 0.5), 1),
            "view_p95_ms": round(percentile(tally.views, 0.95), 1),
            "steps_p95_ms": {step: round(percentile(v, 0.95), 1) for step, v in tally.steps.items()}}


def memory(url: str, pid: int, repeat: int) -> dict[str, Any]:
    """RSS of the server before and after `repeat` views in a row (after 50 views of warm-up)."""
    tally = Tally()
    chain = ViewChain(DashClient(url))
    for i in range(50):
        chain.run(*HEADS[i % len(HEADS)], select=i % 2 == 1, tally=tally)
    before = rss_mb(pid)
    samples = []
    for i in range(repeat):
        chain.run(*HEADS[i % len(HEADS)], select=i % 2 == 1, tally=tally)
        if i % max(1, repeat // 10) == 0:
            samples.append(round(rss_mb(pid), 1))
    after = rss_mb(pid)
    return {"views": repeat, "rss_before_mb": round(before, 1), "rss_after_mb": round(after, 1),
            "growth_mb": round(after - before, 1), "samples_mb": samples}


def main() -> None:
    """Prepare the store, start the server, run the load and the memory check, print and save."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--think", type=float, nargs="*", default=[0.0, 1.0],
                        help="pause between a client's views, s (one run each)")
    parser.add_argument("--repeat", type=int, default=1000)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "load.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qk-load-") as tmp:
        cache_dir = Path(tmp)
        prepare_store(cache_dir)
        process, url = start_server(cache_dir)
        try:
            runs = [load(url, args.clients, args.seconds, think) for think in args.think]
            mem = memory(url, process.pid, args.repeat)
        finally:
            process.terminate()
            process.wait(timeout=10)
    for run in runs:
        print(f"{run['clients']} clients, {run['seconds']:.0f} s, think {run['think_s']} s: {run['views']} views, "
              f"{run['requests']} requests ({run['requests_per_s']}/s), errors {run['errors']}, request p50/p95 "
              f"{run['request_p50_ms']}/{run['request_p95_ms']} ms, view p50/p95 {run['view_p50_ms']}/"
              f"{run['view_p95_ms']} ms")
    print(f"memory over {mem['views']} views: {mem['rss_before_mb']} -> {mem['rss_after_mb']} MB "
          f"({mem['growth_mb']:+} MB)")
    Path(args.out).write_text(json.dumps({"runs": runs, "memory": mem,
                                          "median_view_ms": [r["view_p50_ms"] for r in runs]}, indent=2) + "\n")
    _ = statistics  # (percentiles are nearest-rank above)


if __name__ == "__main__":
    main()
