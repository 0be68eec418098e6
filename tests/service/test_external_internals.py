"""Method internals of an external run against the real stack (client/PROTOCOL.md section
8): a plain PyTorch loop with a predictor, an EMA target and a teacher's and student's
softmax logs them with ``Monitor.log_epoch``; the ingest worker computes the mechanism
signals with the engine's functions. A first-protocol upload (no internals, registration
reply not read for ``accepts``) is still measured. The other direction, this client
against a server that predates the internals, is tests/client/test_internals.py."""

from __future__ import annotations

import copy
import math
from typing import Any

import httpx
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from collapse_lab import Monitor, wire
from torch import nn

from tests.service.stack import ServiceStack, wait_until

K = 16  # prototypes of the teacher's and the student's softmax


def _log_byol_like_loop(monitor: Monitor, epochs: int = 2) -> None:
    """A linear online encoder, a linear predictor and an EMA target on clustered points."""
    torch.manual_seed(0)
    x = torch.randn(4, 16)[torch.arange(512) % 4] * 2 + torch.randn(512, 16)
    probe = x[:128]
    online = nn.Linear(16, 8)
    predictor = nn.Linear(8, 8, bias=False)
    target = copy.deepcopy(online).requires_grad_(False)
    prototypes = nn.Linear(8, K, bias=False)
    params = [*online.parameters(), *predictor.parameters(), *prototypes.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.05, weight_decay=1e-4)

    def log(epoch: int) -> None:
        with torch.no_grad():
            z = online(probe)
            teacher = F.softmax(prototypes(target(probe)) / 0.04, dim=1)
            student = F.softmax(prototypes(z) / 0.1, dim=1)
            monitor.log_epoch(
                epoch,
                z,
                target=target(probe),
                p=predictor(z),
                predictor_weight=predictor.weight,
                teacher=teacher,
                student=student,
                schedules={"weight_decay": 1e-4, "ema_momentum": 0.99},
            )

    log(0)
    for epoch in range(1, epochs + 1):
        for batch in x[torch.randperm(len(x))].split(64):
            a, b = batch + 0.3 * torch.randn_like(batch), batch + 0.3 * torch.randn_like(batch)
            loss = 2 - 2 * F.cosine_similarity(predictor(online(a)), target(b).detach()).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for t, o in zip(target.parameters(), online.parameters(), strict=True):
                    t.mul_(0.99).add_(o, alpha=0.01)
        log(epoch)


def _records(api: httpx.Client, run_id: str, count: int) -> list[dict[str, Any]] | None:
    records = api.get(f"/api/runs/{run_id}/epochs").json()
    return records if len(records) == count else None


@pytest.mark.slow
def test_internals_become_mechanism_signals_and_first_protocol_uploads_still_measure(
    stack: ServiceStack, api: httpx.Client
) -> None:
    monitor = Monitor(stack.base_url, name="byol-like with internals")
    assert set(wire.INTERNAL_ARRAYS) <= monitor.accepted_arrays
    _log_byol_like_loop(monitor)
    assert monitor.finish(timeout=60)
    # generous: the ingest worker shares two cores with every other test run on this host
    records = wait_until(lambda: _records(api, monitor.run_id, 3), 300, what="3 records")
    logs = records[-1]["logs"]
    for name in (
        "online_target_cosine",
        "rank_differential",
        "predictor_commutator",
        "predictor_eigen_alignment",
        "predictor_symmetry",
        "teacher_entropy",
        "teacher_student_kl",
        "assignment_entropy",
        "usage_entropy_after_balancing",
        "weight_decay",
    ):
        assert math.isfinite(logs[name]), name
    assert logs["log_k"] == pytest.approx(math.log(K))
    assert 0 < logs["teacher_entropy"] < math.log(K)
    assert records[-1]["ema_momentum"] == 0.99  # a schedule with a record field of its own
    assert -1 <= logs["predictor_eigen_alignment"] <= 1
    metrics = api.get("/api/metrics").json()
    internals = {m["name"] for m in metrics["metrics"] if m["measured_on"] == "method_internals"}
    assert set(logs) - {"ema_momentum"} <= internals  # every signal is declared and charted

    # a client of the first protocol: registers, ignores "accepts", sends z only
    client = httpx.Client(base_url=stack.base_url, timeout=30)
    registration = {"name": "first protocol", "source": {"host": "h", "script": "old.py"}}
    run_id = client.post("/api/external-runs", json=registration).json()["id"]
    rng = np.random.default_rng(0)
    for epoch in range(2):
        body = wire.encode_epoch(epoch, {"z": rng.standard_normal((64, 8))}, scalars={"lr": 0.1})
        assert set(wire.array_names(body)) == {"z"}
        response = client.put(
            f"/api/external-runs/{run_id}/epochs/{epoch}",
            content=body,
            headers={"Content-Type": wire.CONTENT_TYPE},
        )
        assert response.status_code == 202
    old = wait_until(lambda: _records(api, run_id, 2), 300, what="the old client's records")
    assert old[-1]["logs"] == {"lr": 0.1} and old[-1]["projector"]["effective_rank"] > 1
    client.close()
