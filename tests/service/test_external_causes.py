"""The cause of an external run's collapse, from the internals its loop logs: a plain PyTorch
DINO-style loop (written here, not the engine's DINO) logs its probe through
``collapse_lab.Monitor`` with ``teacher=``/``student=`` probabilities and its schedules;
the ingest worker measures them with the engine's code. With centering switched off the
cause is ``centering``, with sharpening switched off ``sharpening``, with the teacher being
the student (momentum 0, DINO Fig. 6) ``target_network``, and with every guard on the run
stays healthy with no cause.

The loop (digits, a 3-layer MLP, a linear head with bias to K = 64 prototypes, AdamW at
lr 0.05, teacher momentum 0.99, 20 epochs) was chosen so that each ablation collapses within
seconds on one CPU thread: the embedding logged as z is the student's output distribution,
where DINO's two collapses are defined (Caron et al., ICCV 2021, Sec. 5.3)."""

from __future__ import annotations

import copy
import math
import re
from typing import Any

import httpx
import pytest
import torch
import torch.nn.functional as F
from collapse_lab import Monitor
from sklearn.datasets import load_digits
from torch import nn

from tests.service.stack import ServiceStack, wait_until

K = 64
STUDENT_TEMPERATURE = 0.1
EPOCHS = 20


class _Net(nn.Module):
    """x (B, 64) -> logits (B, K) through an l2-normalised 32-d bottleneck."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(), nn.Linear(256, 32)
        )
        self.last = nn.Linear(32, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(F.normalize(self.body(x), dim=1))


def _dino_loop(
    monitor: Monitor, *, centering: bool, teacher_temperature: float, momentum: float
) -> None:
    torch.manual_seed(0)
    x = torch.tensor(load_digits().data, dtype=torch.float32) / 16.0
    x = (x - x.mean(0)) / (x.std(0) + 1e-3)
    probe, probe_labels = x[:256], torch.tensor(load_digits().target[:256])
    generator = torch.Generator().manual_seed(0)

    def augment(t: torch.Tensor) -> torch.Tensor:  # masked pixels and noise
        keep = torch.rand(t.shape, generator=generator) > 0.25
        return t * keep + 0.3 * torch.randn(t.shape, generator=generator)

    student = _Net()
    teacher = copy.deepcopy(student).requires_grad_(False)
    optimizer = torch.optim.AdamW(student.parameters(), lr=0.05, weight_decay=0.04)
    center = torch.zeros(K)

    def teacher_probs(logits: torch.Tensor) -> torch.Tensor:
        return F.softmax((logits - (center if centering else 0)) / teacher_temperature, dim=1)

    def log(epoch: int, loss: float | None) -> None:
        student.eval()
        with torch.no_grad():
            view1, view2 = augment(probe), augment(probe)
            monitor.log_epoch(
                epoch,
                F.softmax(student(probe) / STUDENT_TEMPERATURE, dim=1),
                labels=probe_labels,
                loss=loss,
                teacher=teacher_probs(teacher(view1)),
                student=F.softmax(student(view2) / STUDENT_TEMPERATURE, dim=1),
                # common spellings (collapse_lab.monitor.SCHEDULE_ALIASES); the centre's
                # norm is not logged: the momentum tells a student-copy teacher, whose
                # entropy falls to 0 too, from a missing centering
                schedules={
                    "momentum": momentum,
                    "teacher_temp": teacher_temperature,
                    "student_temp": STUDENT_TEMPERATURE,
                },
            )
        student.train()

    log(0, None)
    for epoch in range(1, EPOCHS + 1):
        for batch in x[torch.randperm(len(x), generator=generator)].split(128):
            views = [augment(batch), augment(batch)]
            student_logs = [F.log_softmax(student(v) / STUDENT_TEMPERATURE, dim=1) for v in views]
            with torch.no_grad():
                teacher_logits = [teacher(v) for v in views]
                targets = [teacher_probs(t) for t in teacher_logits]
            loss = (
                -(
                    (targets[0] * student_logs[1]).sum(1).mean()
                    + (targets[1] * student_logs[0]).sum(1).mean()
                )
                / 2
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                if centering:
                    center = 0.9 * center + 0.1 * torch.cat(teacher_logits).mean(0)
                for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
                    t.mul_(momentum).add_((1 - momentum) * s)
        log(epoch, loss.item())


def _final(api: httpx.Client, run_id: str) -> dict[str, Any] | None:
    run = api.get(f"/api/runs/{run_id}").json()
    return run if run["status"] in ("succeeded", "failed") else None


LOOPS = {
    "every guard on": ({"centering": True, "teacher_temperature": 0.04, "momentum": 0.99}, None),
    "no centering": (
        {"centering": False, "teacher_temperature": 0.04, "momentum": 0.99},
        "centering",
    ),
    "no sharpening": (
        {"centering": True, "teacher_temperature": 0.1, "momentum": 0.99},
        "sharpening",
    ),
    "teacher is the student": (
        {"centering": True, "teacher_temperature": 0.04, "momentum": 0.0},
        "target_network",
    ),
}


@pytest.mark.slow
def test_dino_style_loops_get_the_guard_they_switched_off_as_cause(
    stack: ServiceStack, api: httpx.Client
) -> None:
    monitors = {}
    for name, (settings, _) in LOOPS.items():
        monitor = Monitor(stack.base_url, name=f"dino loop: {name}", config=settings)
        _dino_loop(monitor, **settings)
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
        assert math.isclose(log_k, math.log(K), rel_tol=1e-6)
