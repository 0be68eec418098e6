"""The seven original methods' losses against lightly's implementations (lightly/loss/), on
identical inputs: values and gradients to 1e-5, as tests/test_dino.py and tests/test_jepa.py
do for the 2026 methods. DeepCluster's loss is a plain cross-entropy with no lightly
counterpart (tests/test_losses.py checks it against the formula)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from lightly.loss import (
    BarlowTwinsLoss,
    NegativeCosineSimilarity,
    NTXentLoss,
    SwaVLoss,
    VICRegLoss,
)
from lightly.loss.swav_loss import sinkhorn

from workers.engine.methods.barlow_twins import barlow_twins_loss
from workers.engine.methods.byol import regression_loss
from workers.engine.methods.simclr import nt_xent
from workers.engine.methods.simsiam import negative_cosine
from workers.engine.methods.swav import swapped_prediction_loss
from workers.engine.methods.vicreg import vicreg_loss
from workers.engine.parts import sinkhorn_knopp

TOLERANCE = 1e-5
SHAPES = [(8, 4), (64, 32), (256, 128)]


def _pair(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two (n, d) float64 leaves, the second correlated with the first like two views."""
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=generator, dtype=torch.float64)
    b = a + 0.5 * torch.randn(n, d, generator=generator, dtype=torch.float64)
    return a.requires_grad_(), b.requires_grad_()


def _value_and_grads(
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], a: torch.Tensor, b: torch.Tensor
) -> tuple[float, torch.Tensor, torch.Tensor]:
    value = loss(a, b).sum()  # lightly returns some losses with shape (1,)
    grad_a, grad_b = torch.autograd.grad(value, [a, b])
    return value.item(), grad_a, grad_b


def _assert_same(
    ours: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    reference: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    n: int,
    d: int,
    seed: int,
) -> None:
    a, b = _pair(n, d, seed)
    value, grad_a, grad_b = _value_and_grads(ours, a, b)
    ref_value, ref_a, ref_b = _value_and_grads(reference, a, b)
    assert value == pytest.approx(ref_value, abs=TOLERANCE, rel=TOLERANCE)
    torch.testing.assert_close(grad_a, ref_a, atol=TOLERANCE, rtol=TOLERANCE)
    torch.testing.assert_close(grad_b, ref_b, atol=TOLERANCE, rtol=TOLERANCE)


@pytest.mark.parametrize(("n", "d"), SHAPES)
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_nt_xent_matches_lightly(n: int, d: int, temperature: float) -> None:
    reference = NTXentLoss(temperature=temperature, memory_bank_size=0)
    _assert_same(lambda a, b: nt_xent(a, b, temperature), reference, n, d, seed=n)


@pytest.mark.parametrize(("n", "d"), SHAPES)
def test_simsiam_negative_cosine_matches_lightly(n: int, d: int) -> None:
    _assert_same(negative_cosine, NegativeCosineSimilarity(), n, d, seed=n + 1)


@pytest.mark.parametrize(("n", "d"), SHAPES)
def test_byol_regression_loss_is_lightlys_negative_cosine_rescaled(n: int, d: int) -> None:
    """BYOL's ||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z) (Grill et al. 2020, Eq. 2); lightly's BYOL
    example minimises -cos(p, z), the same objective up to that affine map."""
    negative = NegativeCosineSimilarity()
    _assert_same(regression_loss, lambda p, z: 2 + 2 * negative(p, z), n, d, seed=n + 2)


@pytest.mark.parametrize(("n", "d"), SHAPES)
@pytest.mark.parametrize("lambda_offdiag", [5e-3, 1.0])
def test_barlow_twins_matches_lightly(n: int, d: int, lambda_offdiag: float) -> None:
    reference = BarlowTwinsLoss(lambda_param=lambda_offdiag)
    _assert_same(
        lambda a, b: barlow_twins_loss(a, b, lambda_offdiag)[0], reference, n, d, seed=n + 3
    )


@pytest.mark.parametrize(("n", "d"), SHAPES)
@pytest.mark.parametrize("weights", [(25.0, 25.0, 1.0), (1.0, 0.1, 0.0)])
def test_vicreg_matches_lightly(n: int, d: int, weights: tuple[float, float, float]) -> None:
    reference = VICRegLoss(lambda_param=weights[0], mu_param=weights[1], nu_param=weights[2])
    _assert_same(lambda a, b: vicreg_loss(a, b, *weights)[0], reference, n, d, seed=n + 4)


@pytest.mark.parametrize(("n", "k"), [(32, 8), (256, 64)])
@pytest.mark.parametrize(("epsilon", "iterations"), [(0.05, 3), (0.5, 1)])
def test_sinkhorn_matches_lightly(n: int, k: int, epsilon: float, iterations: int) -> None:
    generator = torch.Generator().manual_seed(n + k)
    scores = torch.nn.functional.normalize(torch.randn(n, k, generator=generator), dim=1)
    ours = sinkhorn_knopp(scores, epsilon, iterations)
    torch.testing.assert_close(
        ours, sinkhorn(scores, iterations=iterations, epsilon=epsilon), atol=1e-6, rtol=1e-5
    )


@pytest.mark.parametrize("local_views", [0, 2])
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_swav_loss_with_sinkhorn_codes_matches_lightly(
    local_views: int, temperature: float
) -> None:
    """Two global views and ``local_views`` local ones: codes from each global view's scores
    (Sinkhorn, no gradient), swapped prediction over every other view."""
    epsilon, iterations = 0.05, 3
    generator = torch.Generator().manual_seed(local_views)
    scores = [
        torch.nn.functional.normalize(torch.randn(64, 16, generator=generator), dim=1)
        .double()
        .requires_grad_()
        for _ in range(2 + local_views)
    ]
    codes = [sinkhorn_knopp(s.detach(), epsilon, iterations).double() for s in scores[:2]]
    ours = swapped_prediction_loss(scores, codes, temperature)
    reference = SwaVLoss(
        temperature=temperature, sinkhorn_iterations=iterations, sinkhorn_epsilon=epsilon
    )(scores[:2], scores[2:]).sum()
    assert ours.item() == pytest.approx(reference.item(), abs=TOLERANCE, rel=TOLERANCE)
    for ours_grad, reference_grad in zip(
        torch.autograd.grad(ours, scores), torch.autograd.grad(reference, scores), strict=True
    ):
        torch.testing.assert_close(ours_grad, reference_grad, atol=TOLERANCE, rtol=TOLERANCE)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sinkhorn_stays_finite_where_exp_over_epsilon_does_not(dtype: torch.dtype) -> None:
    """Cosine scores near 1 at epsilon 0.005: exp(score / epsilon) overflows float32 (lightly
    gives NaN there), and a sample far from every prototype underflows to a zero column. The
    codes stay distributions, in the scores' precision (three iterations at so small an
    epsilon do not balance the prototypes: that is Sinkhorn's, not a failure)."""
    generator = torch.Generator().manual_seed(0)
    prototypes = torch.nn.functional.normalize(torch.randn(30, 16, generator=generator), dim=1)
    samples = torch.nn.functional.normalize(torch.randn(64, 16, generator=generator), dim=1)
    scores = (samples @ prototypes.T).to(dtype)
    scores[0] = -1.0  # a sample far from every prototype
    assert sinkhorn(scores.float(), iterations=3, epsilon=0.005).isnan().any()
    codes = sinkhorn_knopp(scores, epsilon=0.005, iterations=3)
    assert codes.dtype == dtype and codes.isfinite().all()
    torch.testing.assert_close(codes.sum(dim=1), torch.ones(64, dtype=dtype))


def test_the_off_diagonal_terms_keep_their_digits_beside_a_large_diagonal() -> None:
    """A few wide dimensions (n 2048, d 2, norm 1e3) in float32: the covariance and the
    redundancy terms summed off the diagonal agree with their float64 values to 1e-5, where
    the whole matrix minus its diagonal lost them (1e-3)."""
    generator = torch.Generator().manual_seed(0)
    a = 1e3 * torch.randn(2048, 2, generator=generator)
    b = a + 0.3 * 1e3 * torch.randn(2048, 2, generator=generator)
    for low, exact in (
        (
            vicreg_loss(a, b, 0.0, 0.0, 1.0)[1]["covariance"],
            vicreg_loss(a.double(), b.double(), 0.0, 0.0, 1.0)[1]["covariance"],
        ),
        (
            barlow_twins_loss(a, b, 1.0)[2].item(),
            barlow_twins_loss(a.double(), b.double(), 1.0)[2].item(),
        ),
    ):
        assert low == pytest.approx(exact, rel=1e-5)
