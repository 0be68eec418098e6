"""DINO: the loss, its centre and temperature schedule against lightly's DINOLoss (values and
gradients to 1e-5), the mechanism signals on constructed probabilities, and the method's
guards (frozen last layer, momentum teacher, multi-crop, each ablation switch)."""

from __future__ import annotations

import math

import pytest
import torch
from lightly.loss.dino_loss import DINOLoss
from torch import nn

from contract import resolve_config
from contract.methods.dino import DINOOptions
from workers.engine.methods.base import StepInfo
from workers.engine.methods.dino import (
    DINO,
    dino_loss,
    mean_entropy,
    mean_kl,
    teacher_temperature_at,
    updated_center,
)

K = 32


def _logits(views: int, batch: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(views, batch, K, generator=generator, dtype=torch.float64)


# -- the loss against lightly ---------------------------------------------------------------
@pytest.mark.parametrize("local_views", [0, 4])
@pytest.mark.parametrize(("teacher_temperature", "center_momentum"), [(0.04, 0.9), (0.07, 0.5)])
def test_loss_centre_and_gradients_match_lightly_over_several_steps(
    local_views: int, teacher_temperature: float, center_momentum: float
) -> None:
    reference = DINOLoss(
        output_dim=K,
        warmup_teacher_temp=teacher_temperature,
        teacher_temp=teacher_temperature,
        student_temp=0.1,
        center_momentum=center_momentum,
    ).double()
    center = torch.zeros(K, dtype=torch.float64)
    for step in range(4):  # the centre moves: later steps check it too
        teacher = _logits(2, 6, seed=2 * step)
        student = _logits(2 + local_views, 6, seed=2 * step + 1)
        ours_t, ours_s = teacher.clone().requires_grad_(), student.clone().requires_grad_()
        ref_t, ref_s = teacher.clone().requires_grad_(), student.clone().requires_grad_()
        loss = dino_loss(ours_t, ours_s, center, teacher_temperature, 0.1)
        expected = reference(list(ref_t), list(ref_s))
        assert loss.item() == pytest.approx(expected.item(), abs=1e-5, rel=1e-5)
        loss.backward()
        expected.backward()
        assert ours_s.grad is not None and ref_s.grad is not None
        assert torch.allclose(ours_s.grad, ref_s.grad, atol=1e-5)
        assert ours_t.grad is not None and ref_t.grad is not None
        assert torch.allclose(ours_t.grad, ref_t.grad, atol=1e-5)
        center = updated_center(center, teacher, center_momentum)
        assert torch.allclose(center, reference.center.view(-1), atol=1e-7)


@pytest.mark.parametrize(
    ("warmup_epochs", "start", "end"),
    [(0, 0.04, 0.04), (1, 0.03, 0.07), (5, 0.04, 0.07), (30, 0.02, 0.1)],
)
def test_teacher_temperature_warm_up_matches_lightly(
    warmup_epochs: int, start: float, end: float
) -> None:
    options = DINOOptions(
        warmup_teacher_temperature=start,
        teacher_temperature=end,
        warmup_teacher_temperature_epochs=warmup_epochs,
    )
    reference = DINOLoss(
        output_dim=K,
        warmup_teacher_temp=start,
        teacher_temp=end,
        warmup_teacher_temp_epochs=warmup_epochs,
    ).double()
    teacher, student = _logits(2, 5, seed=1), _logits(3, 5, seed=2)
    for epoch in range(warmup_epochs + 3):
        temperature = teacher_temperature_at(options, epoch)
        # lightly's schedule is the authors' linspace, in float32
        expected = reference(list(teacher), list(student), epoch=epoch)
        reference.center.zero_()
        ours = dino_loss(teacher, student, torch.zeros(K, dtype=torch.float64), temperature, 0.1)
        assert ours.item() == pytest.approx(expected.item(), rel=1e-5)
    assert teacher_temperature_at(options, 0) == pytest.approx(start if warmup_epochs else end)
    assert teacher_temperature_at(options, warmup_epochs + 5) == end


def test_loss_is_log_k_when_both_outputs_are_uniform() -> None:
    teacher, student = torch.zeros(2, 4, K), torch.zeros(6, 4, K)
    loss = dino_loss(teacher, student, torch.zeros(K), 0.04, 0.1)
    assert loss.item() == pytest.approx(math.log(K))


# -- mechanism signals on constructed probabilities -----------------------------------------
def test_entropy_of_uniform_one_hot_and_known_rows() -> None:
    uniform = torch.full((5, K), 1 / K, dtype=torch.float64)
    one_hot = torch.eye(K, dtype=torch.float64)[:5]
    assert mean_entropy(uniform).item() == pytest.approx(math.log(K))
    assert mean_entropy(one_hot).item() == 0.0
    half = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]], dtype=torch.float64)
    assert mean_entropy(half).item() == pytest.approx((math.log(2) + math.log(4)) / 2)


def test_kl_is_zero_for_equal_rows_and_decomposes_the_cross_entropy() -> None:
    generator = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(7, K, generator=generator, dtype=torch.float64) / 0.3, dim=1)
    q = torch.softmax(torch.randn(7, K, generator=generator, dtype=torch.float64), dim=1)
    assert mean_kl(p, p).item() == pytest.approx(0.0, abs=1e-12)
    assert mean_kl(p, q).item() > 0
    cross_entropy = -(p * q.log()).sum(dim=1).mean()
    # DINO Sec. 5.3: H(P_t, P_s) = h(P_t) + KL(P_t || P_s)
    assert (mean_entropy(p) + mean_kl(p, q)).item() == pytest.approx(cross_entropy.item())
    two = torch.tensor([[0.9, 0.1]], dtype=torch.float64)
    flat = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    expected = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    assert mean_kl(two, flat).item() == pytest.approx(expected)
    # a one-hot teacher against a uniform student: KL = ln K, the entropy 0
    assert mean_kl(torch.eye(K)[:3].double(), torch.full((3, K), 1 / K).double()).item() == (
        pytest.approx(math.log(K))
    )
    # a student giving the teacher's prototype no mass (float32 rounded it to 0): finite,
    # -ln of float32's smallest normal, so the store keeps it
    nothing = torch.tensor([[0.0, 1.0]])
    assert mean_kl(torch.tensor([[1.0, 0.0]]), nothing).item() == pytest.approx(
        -math.log(torch.finfo(torch.float32).tiny), rel=1e-6
    )


# -- the method -----------------------------------------------------------------------------
BATCH, SIZE, REP = 8, 8, 16


def _dino(**options: object) -> DINO:
    torch.manual_seed(0)
    config = resolve_config(
        {
            "method": "dino",
            "proj_hidden_dim": 16,
            "proj_dim": 8,
            "options": {"num_prototypes": K, **options},
        }
    )
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, REP))
    return DINO(backbone, REP, config)


def _views(local: int, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(BATCH, 3, SIZE, SIZE, generator=generator) for _ in range(2 + local)]


def _step(method: DINO, epoch: int, step: int = 0, total: int = 10) -> StepInfo:
    info = StepInfo(epoch=epoch, step=step, total_steps=total)
    # as the trainer: every student parameter; those without a gradient are skipped
    student = [p for n, p in method.named_parameters() if not n.startswith("teacher_")]
    optimiser = torch.optim.SGD(student, lr=0.1)
    out = method.training_loss(_views(method.n_local_views(), seed=step), torch.arange(8), info)
    optimiser.zero_grad(set_to_none=True)
    out.loss.backward()
    optimiser.step()
    method.after_step(info)
    return info


def test_head_is_mlp_bottleneck_and_weight_normalised_prototypes() -> None:
    method = _dino()
    head = method.projector
    h = torch.randn(5, REP)
    assert torch.allclose(head.bottleneck(h).norm(dim=1), torch.ones(5))
    weight = head.last_layer.weight
    assert weight.shape == (K, 8) and torch.allclose(weight.norm(dim=1), torch.ones(K))
    assert not head.last_layer.parametrizations.weight.original0.requires_grad
    assert head(h).abs().max() <= 1 + 1e-6  # unit bottleneck, unit prototypes: cosines


@pytest.mark.parametrize("std", [0.02, 0.1])
def test_head_init_std_sets_the_mlp_weights_and_the_teacher_starts_as_the_student(
    std: float,
) -> None:
    method = _dino(head_init_std=std)
    weights = [m.weight for m in method.projector.mlp if isinstance(m, nn.Linear)]
    assert torch.cat([w.flatten() for w in weights]).std().item() == pytest.approx(std, rel=0.1)
    teacher = dict(method.teacher_head.named_parameters())
    for name, value in method.projector.named_parameters():
        assert torch.equal(teacher[name], value)


def test_last_layer_is_frozen_in_the_first_epoch_only() -> None:
    method = _dino(freeze_last_layer_epochs=1)
    last = method.projector.last_layer.parametrizations.weight.original1
    before = last.detach().clone()
    mlp_before = method.projector.mlp[0].weight.detach().clone()
    _step(method, epoch=1)
    assert torch.equal(last, before)
    assert not torch.equal(method.projector.mlp[0].weight, mlp_before)
    _step(method, epoch=2, step=1)
    assert not torch.equal(last, before)
    # prototype norms stay 1 (norm_last_layer) while their directions train
    assert torch.allclose(method.projector.last_layer.weight.norm(dim=1), torch.ones(K))


def test_local_views_reach_the_student_only() -> None:
    method = _dino(local_views=3)
    assert method.n_local_views() == 3
    teacher_saw: list[int] = []
    student_saw: list[int] = []
    method.teacher_backbone.register_forward_hook(lambda m, i, o: teacher_saw.append(len(i[0])))
    method.backbone.register_forward_hook(lambda m, i, o: student_saw.append(len(i[0])))
    out = method.training_loss(_views(3), torch.arange(8), StepInfo(1, 0, 10))
    assert teacher_saw == [2 * BATCH]  # the two global views, once
    assert student_saw == [2 * BATCH, 3 * BATCH]  # the global views, then the local ones
    assert math.isfinite(out.loss.item())


def test_teacher_momentum_zero_copies_the_student_and_the_schedule_rises() -> None:
    copy_teacher = _dino(teacher_momentum=0.0)
    _step(copy_teacher, epoch=2)
    for t, s in zip(
        copy_teacher.teacher_backbone.parameters(), copy_teacher.backbone.parameters(), strict=True
    ):
        assert torch.equal(t, s)
    assert copy_teacher.monitor()["ema_momentum"] == 0.0
    ema = _dino(teacher_momentum=0.9)
    assert ema.momentum_at(0, 10) == pytest.approx(0.9)
    assert ema.momentum_at(10, 10) == pytest.approx(1.0)
    frozen = _dino(teacher_momentum=1.0)
    start = [p.detach().clone() for p in frozen.teacher_head.parameters()]
    _step(frozen, epoch=2)
    after = frozen.teacher_head.parameters()
    assert all(torch.equal(a, b) for a, b in zip(start, after, strict=True))
    teacher = {n for n, _ in frozen.named_parameters() if n.startswith("teacher_")}
    assert teacher and frozen.excluded_from_weight_decay() == teacher
    assert all(not p.requires_grad for p in frozen.teacher_head.parameters())


def test_centering_switch_and_centre_momentum() -> None:
    centred = _dino(center_momentum=0.5)
    _step(centred, epoch=2)
    assert centred.center.norm() > 0
    plain = _dino(centering=False)
    _step(plain, epoch=2)
    assert plain.center.norm() == 0  # never updated nor subtracted
    logs = plain.probe_logs(_views(0, seed=5))
    assert logs["center_norm"] == 0.0


def test_probe_logs_are_entropy_kl_and_log_k() -> None:
    method = _dino()
    method.eval()
    views = _views(0, seed=3)
    logs = method.probe_logs(views)
    # DINO's own four, beside the clustering and target-network signals (docs/mechanisms.md)
    assert {"teacher_entropy", "teacher_student_kl", "center_norm", "log_k"} <= set(logs)
    assert logs["log_k"] == pytest.approx(math.log(K))
    assert 0 <= logs["teacher_entropy"] <= math.log(K) and logs["teacher_student_kl"] >= 0
    # h + KL is the DINO loss on these two views (one teacher view against the other)
    with torch.no_grad():
        teacher = torch.stack([method.teacher_head(method.teacher_backbone(v)) for v in views])
        student = torch.stack([method.projector(method.backbone(v)) for v in views])
        loss = dino_loss(teacher.double(), student.double(), method.center.double(), 0.04, 0.1)
    total = logs["teacher_entropy"] + logs["teacher_student_kl"]
    assert total == pytest.approx(loss.item(), rel=1e-5)
    # at the student's temperature, a teacher that equals the student leaves KL = 0
    same = _dino(teacher_temperature=0.1, centering=False).eval()
    assert same.probe_logs([views[0], views[0]])["teacher_student_kl"] == pytest.approx(0, abs=1e-9)
