"""Following a view's job from the page: each look (the request changed, or a poll tick) submits or reads its status;
the web process never waits on a job and never runs one."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from dashboard import jobs
from workers.contracts.requests import HeadRequest
from workers.models.registry import read_spec


@dataclass(frozen=True)
class Look:
    """What one look found: the computed record once finished (or failed), else the job record to keep polling."""

    computed: dict[str, Any] | None  # {"request", "keys", "causal"} or {"request", "error"}; None while waiting
    job: dict[str, Any] | None  # {"request", "started"} while waiting
    percent: int  # progress 0..100
    message: str  # '' once finished

    @property
    def waiting(self) -> bool:
        """Whether the page should look again."""
        return self.computed is None


def look(data: dict[str, Any], job: dict[str, Any] | None, client: str | None, asked: bool) -> Look:
    """One look at the view `data` (a HeadRequest's fields); asked: the page just asked for it (submit again even
    if an earlier try failed), else a poll tick of the job record `job`."""
    fresh = asked or not job or job.get("request") != data
    started = time.time() if fresh else float(job["started"])
    request = HeadRequest.from_dict(data)
    seen = jobs.follow(request, jobs.store(), client, submit=fresh)
    if seen["state"] == "done":
        return Look({"keys": seen["keys"], "request": data, "causal": read_spec(request.model).causal}, None, 100, "")
    if seen["state"] == "error":
        return Look({"error": seen["error"], "request": data}, None, 0, "")
    return Look(None, {"request": data, "started": started}, max(3, int(100 * seen["progress"])),
                f"{seen['message']} · {time.time() - started:.0f} s")
