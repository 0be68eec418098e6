"""The cause of an external run's collapse, from the internals its loop logs: a plain PyTorch
DINO-style loop (bench/external_dino_loops.py, not the engine's DINO) logs its probe through
``collapse_lab.Monitor`` with ``teacher=``/``student=`` probabilities and its schedules;
the ingest worker measures them with the engine's code. With centering switched off the
cause is ``centering``, with sharpening switched off ``sharpening``, with the teacher being
the student (momentum 0, DINO Fig. 6) ``target_network``, and with every guard on the run
stays healthy with no cause. ``python -m bench.external_dino_loops`` runs the same loops
in-process on other seeds, prototype counts and learning rates (docs/causes.md). Loops of
the other families (bench/external_loops.py: SimSiam, SimCLR, VICReg, SwAV) get theirs too."""

from __future__ import annotations

import math
import re
from typing import Any

import httpx
import pytest
from collapse_lab import Monitor

from bench.external_dino_loops import LOOPS, NUM_PROTOTYPES, dino_loop
from bench.external_loops import LOOPS as OTHER_LOOPS
from bench.external_loops import loop_configuration, run_loop
from tests.service.stack import ServiceStack, wait_until


def _final(api: httpx.Client, run_id: str) -> dict[str, Any] | None:
    run = api.get(f"/api/runs/{run_id}").json()
    return run if run["status"] in ("succeeded", "failed") else None


@pytest.mark.slow
def test_dino_style_loops_get_the_guard_they_switched_off_as_cause(
    stack: ServiceStack, api: httpx.Client
) -> None:
    monitors = {}
    for name, (settings, _) in LOOPS.items():
        monitor = Monitor(stack.base_url, name=f"dino loop: {name}", config=settings)
        dino_loop(monitor, **settings)
        assert monitor.finish(timeout=120)
        monitors[name] = monitor
    for name, (_, guard) in LOOPS.items():
        run_id = monitors[name].run_id
        run = wait_until(lambda r=run_id: _final(api, r), 180, what=f"{name}: verdict")
        verdict = run["verdict"]
        assert run["status"] == "succeeded", run
        if guard is None:
            assert verdict["kind"] == "healthy", verdict
            assert verdict["cause"] is None
            continue
        assert verdict["kind"] != "healthy", (name, verdict)
        cause = verdict["cause"]
        assert cause["guard"] == guard, (name, cause)
        assert "teacher_entropy" in cause["signals_checked"]
        assert re.search(r"\d", cause["reason"])  # the numbers behind it
        assert "Caron et al." in cause["advice"] or "Grill et al." in cause["advice"]
        records = api.get(f"/api/runs/{run_id}/epochs").json()
        log_k = records[-1]["logs"]["log_k"]
        assert math.isclose(log_k, math.log(NUM_PROTOTYPES), rel_tol=1e-6)


# loops of the other families (bench/external_loops.py), each with its guard's internals
OTHER_FAMILIES = (
    "simsiam",
    "simsiam: weight decay 0.2",
    "simclr: no negatives",
    "vicreg: covariance weight 0",
    "swav: no sinkhorn",
)


@pytest.mark.slow
def test_loops_of_other_families_get_the_guard_they_switched_off_as_cause(
    stack: ServiceStack, api: httpx.Client
) -> None:
    """SimSiam logging target= and p= and its SGD schedules, SimCLR logging two views and its
    temperature, VICReg logging its loss terms, SwAV its codes as codes=: through the wire,
    the cause their loop earned (the configuration's flags for what no probe sees, the
    measured signals else)."""
    run_ids = {}
    for name in OTHER_FAMILIES:
        loop = OTHER_LOOPS[name]
        monitor = Monitor(stack.base_url, name=name, config=loop_configuration(loop))
        run_loop(loop, "digits", 0, monitor)
        assert monitor.finish(timeout=120)
        run_ids[name] = monitor.run_id
    for name, run_id in run_ids.items():
        run = wait_until(lambda r=run_id: _final(api, r), 180, what=f"{name}: verdict")
        verdict, guard = run["verdict"], OTHER_LOOPS[name].guard
        if guard is None:
            assert verdict["kind"] == "healthy", (name, verdict)
            assert verdict["cause"] is None
            continue
        assert verdict["kind"] != "healthy", (name, verdict)
        assert verdict["cause"]["guard"] == guard, (name, verdict["cause"])
        assert re.search(r"\d", verdict["cause"]["reason"])
