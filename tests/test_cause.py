"""The verdict's cause on constructed histories: embeddings whose collapse is known, carrying
the mechanism signals (EpochRecord.logs) a guard's failure leaves."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
import torch
from collapse_lab.monitor import SCHEDULE_ALIASES

from contract import CAUSE_GUARDS, Cause, EmbeddingMetrics, EpochRecord, Verdict
from contract.metrics import METHOD_INTERNALS
from workers.engine.cause import CAUSE_THRESHOLDS, configuration_of, diagnose_cause
from workers.engine.metrics import embedding_diagnostics
from workers.engine.probe import probe_epoch_record
from workers.engine.verdict import epoch_verdict, run_verdict

N_PROBE = 256
D = 64
LOG_K = math.log(128)
# how spread each epoch's embedding is: healthy for two epochs, then collapsing to a point
COLLAPSING = (1.0, 1.0, 0.9, 0.05, 0.001, 0.0001)
HEALTHY = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
# weight decay is read as a cause under plain SGD only
SGD = configuration_of({"method": "simsiam", "optimizer": "sgd"})


def _embedding(weight: float, seed: int) -> torch.Tensor:
    """(N, D) points shrinking towards one fixed point as weight goes from 1 to 0."""
    centre = 3.0 * torch.randn(1, D, generator=torch.Generator().manual_seed(7))
    noise = torch.randn(N_PROBE, D, generator=torch.Generator().manual_seed(seed))
    return centre + 3.0 * weight * noise


@cache
def _metrics(weight: float, seed: int) -> EmbeddingMetrics:
    z = _embedding(weight, seed)
    return embedding_diagnostics(z, None, None, None, None, None, None)


def _history(
    weights: tuple[float, ...], logs: list[dict[str, float]], **fields: float
) -> list[EpochRecord]:
    """One record per epoch: the embedding of that epoch's weight and that epoch's logs."""
    return [
        EpochRecord(
            epoch=epoch,
            loss=None if epoch == 0 else -0.5,
            projector=_metrics(weight, epoch),
            backbone=None,
            logs=epoch_logs,
            **fields,
        )
        for epoch, (weight, epoch_logs) in enumerate(zip(weights, logs, strict=True))
    ]


def _dino_logs(entropy: list[float], kl: list[float], **extra: float) -> list[dict[str, float]]:
    return [
        {"teacher_entropy": h, "teacher_student_kl": k, "log_k": LOG_K, **extra}
        for h, k in zip(entropy, kl, strict=True)
    ]


def test_a_healthy_run_has_no_cause() -> None:
    history = _history(HEALTHY, _dino_logs([1.3] * 6, [1.5] * 6))
    verdict = run_verdict(history)
    assert verdict.kind == "healthy"
    assert verdict.cause is None


def test_dino_without_centering_names_centering_from_the_entropy_and_kl() -> None:
    entropy = [1.3, 1.0, 0.4, 0.1, 0.05, 0.05]
    kl = [1.6, 1.2, 0.3, 0.03, 0.02, 0.02]
    history = _history(COLLAPSING, _dino_logs(entropy, kl, center_norm=0.0))
    verdict = run_verdict(history)
    assert verdict.kind == "complete_collapse"
    assert verdict.cause is not None
    assert verdict.cause.guard == "centering"
    assert "0.05 nats of ln K = 4.85" in verdict.cause.reason
    assert "centre's norm is 0" in verdict.cause.reason
    assert "Caron et al." in verdict.cause.advice
    assert verdict.cause.onset_epoch == 1  # h/ln K 0.21 with the centre at 0 from epoch 1
    assert {"teacher_entropy", "teacher_student_kl", "log_k"} <= set(verdict.cause.signals_checked)


def test_dino_without_sharpening_names_sharpening_with_its_temperatures() -> None:
    entropy = [3.3, 4.0, 4.5, 4.8, 4.84, 4.85]
    kl = [0.9, 0.6, 0.4, 0.2, 0.2, 0.2]
    logs = _dino_logs(entropy, kl, teacher_temperature=0.1, student_temperature=0.1)
    cause = run_verdict(_history(COLLAPSING, logs)).cause
    assert cause is not None and cause.guard == "sharpening"
    assert "rose to 4.85 nats" in cause.reason
    assert "teacher temperature 0.1 against the student's 0.1" in cause.reason
    assert cause.onset_epoch == 3  # KL/ln K 0.082 at epoch 2, above 0.08


def test_a_dino_collapse_whose_kl_stays_high_is_undetermined() -> None:
    """dino with the paper's head init on the CPU collapsed with h near ln K but KL about 1
    (README, "DINO on a small ViT"): neither signature."""
    logs = _dino_logs([1.3, 3.0, 4.0, 4.2, 4.3, 4.3], [1.6, 1.4, 1.3, 1.3, 1.3, 1.3])
    cause = run_verdict(_history(COLLAPSING, logs)).cause
    assert cause is not None and cause.guard == "undetermined"
    assert "teacher_student_kl 1.3" in cause.reason
    assert "teacher_entropy" in cause.signals_checked


def test_a_teacher_that_is_the_student_names_the_target_network() -> None:
    logs = _dino_logs([1.3, 2.0, 2.0, 2.0, 2.0, 2.0], [1.6, 1.2, 1.0, 1.0, 1.0, 1.0])
    cause = run_verdict(_history(COLLAPSING, logs, ema_momentum=0.0)).cause
    assert cause is not None and cause.guard == "target_network"
    assert "EMA momentum is 0" in cause.reason
    assert cause.onset_epoch == 1
    # the same collapse with a slow target: nothing singles out the target
    slow = run_verdict(_history(COLLAPSING, logs, ema_momentum=0.996)).cause
    assert slow is not None and slow.guard == "undetermined"
    # what it read, among what it looked for (the page lists those as looked for)
    looked_for = f"among the {len(slow.signals_checked)} signals the guards look for (at epoch"
    assert looked_for in slow.reason, slow.reason


def test_a_momentum_without_a_target_branch_names_no_target() -> None:
    """An optimiser's momentum logged as ``momentum`` (0 for plain SGD or Adam) by a loop with
    no target branch reaches the server as ``ema_momentum``: with neither ``target=`` nor
    ``teacher=`` measured there is no target whose speed could be the cause."""
    contrastive = [{"infonce_repulsion": 0.1, "effective_negatives": 400.0}] * 6
    cause = run_verdict(_history(COLLAPSING, contrastive, ema_momentum=0.0)).cause
    assert cause is not None and cause.guard == "undetermined"
    assert "ema_momentum" in cause.signals_checked
    teacher = _dino_logs([1.3, 2.0, 2.0, 2.0, 2.0, 2.0], [1.6, 1.2, 1.0, 1.0, 1.0, 1.0])
    cause = run_verdict(_history(COLLAPSING, teacher, ema_momentum=0.0)).cause
    assert cause is not None and cause.guard == "target_network"


def test_the_parameter_distance_outranks_the_momentum() -> None:
    teacher = _dino_logs([1.3, 2.0, 2.0, 2.0, 2.0, 2.0], [1.6, 1.2, 1.0, 1.0, 1.0, 1.0])
    apart = [{**record, "target_param_distance": 0.2} for record in teacher]
    cause = run_verdict(_history(COLLAPSING, apart, ema_momentum=0.0)).cause
    assert cause is not None and cause.guard == "undetermined"
    same = [{**record, "target_param_distance": 0.0} for record in teacher]
    cause = run_verdict(_history(COLLAPSING, same)).cause
    assert cause is not None and cause.guard == "target_network"
    assert "KL(P_t‖P_s) 1.000" in cause.reason


def test_a_target_that_is_the_online_network_beside_a_predictor_is_simsiam() -> None:
    """SimSiam is BYOL with momentum 0: a loop logging ``ema_momentum: 0`` with ``target=``
    that collapsed because its stop-gradient or predictor was removed got ``target_network``
    (an audit's loops, docs/causes.md). A logged momentum beside a target branch names
    nothing, and the guard that was switched off is named; a target network of its own
    measured at distance 0 (BYOL or I-JEPA without their EMA) is the target's fault."""
    simsiam = [{"online_target_cosine": 0.96, "predictor_symmetry": 0.7}] * 6
    blind = run_verdict(_history(COLLAPSING, simsiam, ema_momentum=0.0)).cause
    assert blind is not None and blind.guard == "undetermined"
    configuration = configuration_of({"method": "simsiam", "options": {"stop_gradient": False}})
    history = _history(COLLAPSING, simsiam, ema_momentum=0.0)
    cause = run_verdict(history, configuration=configuration).cause
    assert cause is not None and cause.guard == "stop_gradient"
    distance = [{**record, "target_param_distance": 0.0} for record in simsiam]
    byol_no_ema = run_verdict(_history(COLLAPSING, distance)).cause
    assert byol_no_ema is not None and byol_no_ema.guard == "target_network"
    # without a predictor measured (SimSiam with its predictor removed): the predictor
    no_predictor = [{"online_target_cosine": 0.96}] * 6
    removed = run_verdict(
        _history(COLLAPSING, no_predictor, ema_momentum=0.0), configuration={"predictor": False}
    ).cause
    assert removed is not None and removed.guard == "predictor"


def test_stop_gradient_comes_from_the_configuration_and_says_so() -> None:
    history = _history(COLLAPSING, [{"online_target_cosine": 0.998}] * 6)
    configuration = configuration_of({"method": "simsiam", "options": {"stop_gradient": False}})
    cause = run_verdict(history, configuration=configuration).cause
    assert cause is not None and cause.guard == "stop_gradient"
    assert cause.reason.startswith("From the configuration (stop_gradient false")
    assert "cosine 0.998" in cause.reason
    assert cause.onset_epoch == run_verdict(history).onset_epoch
    # without the configuration nothing measured tells: undetermined, not a guess
    blind = run_verdict(history).cause
    assert blind is not None and blind.guard == "undetermined"
    assert "configuration.stop_gradient" in blind.signals_checked


def test_an_undetermined_cause_says_what_the_configuration_gave() -> None:
    """The configuration's fields are among the signals checked: the reason lists what the
    run gave of them (stop-gradient on), not that none of them was logged, and names the
    epoch it read, then the signals no check reads."""
    history = _history(COLLAPSING, [{"online_target_cosine": 0.998, "my_signal": 1.5}] * 6)
    configuration = configuration_of({"method": "simsiam", "options": {"stop_gradient": True}})
    cause = run_verdict(history, configuration=configuration).cause
    assert cause is not None and cause.guard == "undetermined"
    assert "(at epoch 5: " in cause.reason and "none of them was logged" not in cause.reason
    assert "configuration.stop_gradient True" in cause.reason
    assert "online_target_cosine 0.998" in cause.reason
    assert cause.reason.endswith("the run's other signals: my_signal 1.5).")


def test_stop_gradient_is_not_read_where_the_target_is_a_network_of_its_own() -> None:
    """An EMA copy's weights are never trained by gradients (I-JEPA's target encoder), so
    ``stop_gradient: false`` has nothing to act on there."""
    configuration = configuration_of({"method": "ijepa", "options": {"stop_gradient": False}})
    apart = [{"target_param_distance": 0.05, "online_target_cosine": 0.99}] * 6
    cause = run_verdict(_history(COLLAPSING, apart), configuration=configuration).cause
    assert cause is not None and cause.guard == "undetermined"
    # a logged momentum is no such measurement: a SimSiam loop logs its SGD momentum so
    momentum = [{"online_target_cosine": 0.99}] * 6
    history = _history(COLLAPSING, momentum, ema_momentum=0.9)
    simsiam = configuration_of({"method": "simsiam", "options": {"stop_gradient": False}})
    cause = run_verdict(history, configuration=simsiam).cause
    assert cause is not None and cause.guard == "stop_gradient"


def test_a_removed_predictor_is_confirmed_by_the_random_pair_cosine_without_a_target() -> None:
    history = _history(COLLAPSING, [{}] * 6)
    cause = run_verdict(history, configuration={"predictor": False}).cause
    assert cause is not None and cause.guard == "predictor"
    assert "random-pair cosine" in cause.reason


@pytest.mark.parametrize("kind", ["linear", "symmetric"])
def test_a_linear_predictor_is_read_from_the_configuration(kind: str) -> None:
    """A linear or symmetric predictor collapsed at every EMA momentum in docs/causes.md:
    `predictor`, from the configuration; with a target that is the online network as well,
    two guards fire and nothing is named; with a fast EMA, DirectPred's answer (the EMA)
    and the calibration's (the predictor) both fit, and nothing is named either."""
    logs = [{"target_param_distance": 0.006, "online_target_cosine": 0.96}] * 6
    options = {"predictor_kind": kind, "base_momentum": 0.99}
    configuration = configuration_of({"method": "byol", "options": options})
    history = _history(COLLAPSING, logs, ema_momentum=0.99)
    cause = run_verdict(history, configuration=configuration).cause
    assert cause is not None and cause.guard == "predictor"
    assert cause.reason.startswith(f"From the configuration (predictor_kind {kind}")
    assert "configuration.predictor_kind" in cause.signals_checked
    fast = run_verdict(_history(COLLAPSING, logs, ema_momentum=0.9), configuration=configuration)
    assert fast.cause is not None and fast.cause.guard == "undetermined"
    assert "fast EMA target (momentum 0.9 at epoch 1)" in fast.cause.reason
    assert "Table 3" in fast.cause.reason
    # a target that is the online network (momentum 0): DirectPred's answer is the EMA too
    same = [{"target_param_distance": 0.0, "online_target_cosine": 0.96}] * 6
    none = run_verdict(_history(COLLAPSING, same, ema_momentum=0.0), configuration=configuration)
    assert none.cause is not None and none.cause.guard == "undetermined"
    assert "fast EMA target (momentum 0 at epoch 1)" in none.cause.reason
    # the MLP predictor (and a config from before predictor_kind existed) is no cause
    for mlp in ({"predictor_kind": "mlp"}, {}):
        config = configuration_of({"method": "byol", "options": mlp})
        blind = run_verdict(_history(COLLAPSING, logs), configuration=config).cause
        assert blind is not None and blind.guard == "undetermined"


# what a predictor against a target branch measures (SimSiam: the prediction's cosine to
# the stop-gradient target), without which weight decay is never named
BRANCH = {"online_target_cosine": 0.99}


def test_weight_decay_far_above_the_survival_threshold() -> None:
    logs = [{"weight_decay": 0.5, **BRANCH}] * 6
    history = _history(COLLAPSING, logs, lr=0.05)
    cause = run_verdict(history, configuration=SGD).cause
    assert cause is not None and cause.guard == "weight_decay"
    assert "Weight decay 0.5 at learning rate 0.05 (SGD)" in cause.reason
    assert "2.5e-02 per step" in cause.reason
    assert "configuration.optimizer" in cause.signals_checked
    # the default weight decay is no cause
    default = _history(COLLAPSING, [{"weight_decay": 5e-4, **BRANCH}] * 6, lr=0.05)
    blind = run_verdict(default, configuration=SGD).cause
    assert blind is not None and blind.guard == "undetermined"


def test_weight_decay_is_not_named_without_an_asymmetric_branch() -> None:
    """A contrastive loop (no target branch measured) at the same shrink: SimCLR at lr x wd
    4e-3 stayed healthy where SimSiam collapsed (contract/cause_thresholds.py), so its
    collapse is not put on the weight decay."""
    contrastive = _history(COLLAPSING, [{"weight_decay": 0.5}] * 6, lr=0.05)
    cause = run_verdict(contrastive, configuration=SGD).cause
    assert cause is not None and cause.guard == "undetermined"
    assert "online_target_cosine" in cause.signals_checked


@pytest.mark.parametrize("optimizer", ["adamw", "AdamW", "lars", "LARS-SGD", None])
def test_weight_decay_is_read_under_plain_sgd_only(optimizer: str | None) -> None:
    """docs/causes.md: AdamW at lr 3e-2 collapsed with weight decay 1 and without it, LARS
    with weight decay 1 stayed healthy: lr x wd names nothing there, nor where the
    optimiser is not given."""
    configuration = configuration_of({} if optimizer is None else {"optimizer": optimizer})
    history = _history(COLLAPSING, [{"weight_decay": 1.0, **BRANCH}] * 6, lr=0.03)
    cause = run_verdict(history, configuration=configuration).cause
    assert cause is not None and cause.guard == "undetermined"
    named = run_verdict(history, configuration={"optimizer": "torch.optim.SGD"}).cause
    assert named is not None and named.guard == "weight_decay"


def test_weight_decay_names_only_a_complete_collapse_against_a_predictor() -> None:
    """Weight decay drives every eigen-mode to 0 (Tian et al., Sec. 4): a dimensional
    collapse at a high lr x wd is a learning rate's (docs/causes.md: every learning-rate
    collapse was dimensional); a DINO teacher is no predictor against a target."""
    history = _history(HEALTHY, [{"weight_decay": 1e-3, **BRANCH}] * 6, lr=4.0)
    squeezed = _metrics(1.0, 0).model_copy(
        update={"effective_rank": 2.0, "participation_ratio": 1.5, "dim": D}
    )
    for record in history[4:]:
        record.projector = squeezed
    verdict = run_verdict(history, configuration=SGD)
    assert verdict.kind == "dimensional_collapse"
    assert verdict.cause is not None and verdict.cause.guard == "undetermined"
    dino = _dino_logs([1.3, 2.0, 2.0, 2.0, 2.0, 2.0], [1.6, 1.2, 1.0, 1.0, 1.0, 1.0])
    with_decay = [{**logs, "weight_decay": 0.4, **BRANCH} for logs in dino]
    cause = run_verdict(_history(COLLAPSING, with_decay, lr=0.03), configuration=SGD).cause
    assert cause is not None and cause.guard == "undetermined"


def test_the_peak_shrink_counts_even_when_the_cosine_schedule_ended_near_zero() -> None:
    history = _history(COLLAPSING, [{"weight_decay": 0.5, **BRANCH}] * 6)
    for record, lr in zip(history, [0.05, 0.05, 0.04, 0.02, 0.005, 0.0], strict=True):
        record.lr = lr
    cause = run_verdict(history, configuration=SGD).cause
    assert cause is not None and cause.guard == "weight_decay"
    assert "2.5e-02 per step" in cause.reason


def test_unbalanced_codes_and_uniform_codes_both_name_balancing() -> None:
    log_k = math.log(30)
    unbalanced = [
        {"usage_entropy_after_balancing": u, "log_k": log_k}
        for u in [3.3, 3.2, 2.0, 0.5, 0.1, 0.05]
    ]
    cause = run_verdict(_history(COLLAPSING, unbalanced)).cause
    assert cause is not None and cause.guard == "balancing"
    assert "effective 1.1 of 30 prototypes" in cause.reason
    assert cause.onset_epoch == 3
    uniform = [{"assignment_entropy": a, "log_k": log_k} for a in [2.0, 3.0, 3.39, 3.4, 3.4, 3.4]]
    weakened = [{**logs, "sinkhorn_epsilon": 1.0} for logs in uniform]
    cause = run_verdict(_history(COLLAPSING, weakened)).cause
    assert cause is not None and cause.guard == "balancing"
    assert "uniform over the 30 prototypes" in cause.reason
    assert "epsilon at 1" in cause.reason


def test_uniform_codes_at_sinkhorns_usual_epsilon_name_nothing() -> None:
    """Sinkhorn makes every code uniform for an embedding collapsed for any reason (its scores
    all equal), so uniform codes name balancing only with epsilon logged as weakened."""
    log_k = math.log(30)
    uniform = [{"assignment_entropy": a, "log_k": log_k} for a in [2.0, 3.0, 3.39, 3.4, 3.4, 3.4]]
    for logs in (uniform, [{**logs, "sinkhorn_epsilon": 0.05} for logs in uniform]):
        cause = run_verdict(_history(COLLAPSING, logs)).cause
        assert cause is not None and cause.guard == "undetermined"
        assert "sinkhorn_epsilon" in cause.signals_checked


def _codes_piling_onto_one_prototype(epoch: int, k: int = 30) -> np.ndarray:
    """(N, K) balanced codes of a clustering loop whose balancing fails: epoch by epoch more
    samples go to prototype 0, until all of them do."""
    rng = np.random.default_rng(epoch)
    assigned = np.where(rng.random(N_PROBE) < epoch / 3, 0, rng.integers(0, k, N_PROBE))
    codes = np.full((N_PROBE, k), 0.01 / (k - 1), dtype=np.float32)
    codes[np.arange(N_PROBE), assigned] = 0.99
    return codes


def test_codes_piled_onto_one_prototype_name_balancing_a_teacher_alone_nothing() -> None:
    """SwAV's codes after balancing sent as ``codes=``: the balancing check reads them. The
    same probabilities sent as a DINO ``teacher=`` with no student name no guard (a DINO loop
    without centering and a SwAV loop without Sinkhorn look alike and need different
    fixes), nor do they with DINO's momentum logged beside them."""

    def external(name: str, scalars: dict[str, float]) -> Cause | None:
        history: list[EpochRecord] = []
        for epoch, weight in enumerate(COLLAPSING):
            z = _embedding(weight, epoch).numpy().astype(np.float32)
            codes = _codes_piling_onto_one_prototype(epoch)
            history.append(
                probe_epoch_record(
                    epoch, z, history=history, scalars=scalars, internals={name: codes}
                )
            )
        verdict = history[-1].verdict
        assert verdict is not None and verdict.kind == "complete_collapse"
        return verdict.cause

    clustering = external("codes", {})
    assert clustering is not None and clustering.guard == "balancing", clustering
    assert "of 30 prototypes" in clustering.reason
    for scalars in ({}, {"ema_momentum": 0.996}):
        teacher_alone = external("teacher", scalars)
        assert teacher_alone is not None and teacher_alone.guard == "undetermined"
        assert "teacher_entropy" in teacher_alone.signals_checked
        assert "logs student= too" in teacher_alone.advice


def test_the_variance_hinge_at_its_ceiling_names_the_variance_term() -> None:
    logs = [
        {"loss_variance": v, "dims_under_variance_hinge": 1.0}
        for v in [0.6, 0.62, 0.85, 0.95, 0.99, 1.0]
    ]
    cause = run_verdict(_history(COLLAPSING, logs)).cause
    assert cause is not None and cause.guard == "variance_term"
    assert "hinge term is 1.00 of its ceiling" in cause.reason
    assert "100% of the dimensions under the hinge" in cause.reason
    assert cause.onset_epoch == 2
    # every dimension under the hinge is no evidence by itself: healthy VICReg has it too
    healthy_hinge = [{"loss_variance": 0.62, "dims_under_variance_hinge": 1.0}] * 6
    other = run_verdict(_history(COLLAPSING, healthy_hinge)).cause
    assert other is not None and other.guard == "undetermined"
    # logged weighted (VICReg's mu = 25 times a healthy 0.1): not the hinge the limit is for
    weighted = [{"loss_variance": 25 * 0.1, "dims_under_variance_hinge": 1.0}] * 6
    other = run_verdict(_history(COLLAPSING, weighted)).cause
    assert other is not None and other.guard == "undetermined"


def test_a_sigreg_statistic_that_never_fell_names_the_variance_term() -> None:
    """LeJEPA without SIGReg: the probe's statistic rises from epoch 0 towards the value of
    every embedding at the origin; with SIGReg it falls (docs/causes.md). SIGReg is LeJEPA's
    variance term in the closed vocabulary."""
    rising = [{"sigreg_statistic": v} for v in [73.0, 88.0, 95.0, 99.0, 101.0, 101.3]]
    cause = run_verdict(_history(COLLAPSING, rising)).cause
    assert cause is not None and cause.guard == "variance_term"
    assert "SIGReg, is not at work: its statistic on the probe is 101 against 73" in cause.reason
    assert cause.onset_epoch == 1
    assert "sigreg_statistic" in cause.signals_checked
    # a statistic SIGReg drove down names nothing, collapsed or not
    falling = [{"sigreg_statistic": v} for v in [73.0, 60.0, 52.0, 48.0, 44.0, 43.0]]
    other = run_verdict(_history(COLLAPSING, falling)).cause
    assert other is not None and other.guard == "undetermined"
    assert run_verdict(_history(HEALTHY, rising)).cause is None


def test_correlated_dimensions_name_decorrelation_only_for_a_dimensional_collapse() -> None:
    spread_over_three = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    history = _history(spread_over_three, [{"off_diagonal_energy": 60.0}] * 6)
    # the same embedding squeezed into 2 directions at the last two epochs
    squeezed = _metrics(1.0, 0).model_copy(
        update={"effective_rank": 2.0, "participation_ratio": 1.5, "dim": D}
    )
    for record in history[4:]:
        record.projector = squeezed
    verdict = run_verdict(history)
    assert verdict.kind == "dimensional_collapse"
    assert verdict.cause is not None and verdict.cause.guard == "decorrelation"
    assert f"95% of its ceiling d - 1 = {D - 1}" in verdict.cause.reason
    # complete collapse with the same energy: not a decorrelation failure
    complete = run_verdict(_history(COLLAPSING, [{"off_diagonal_energy": 60.0}] * 6)).cause
    assert complete is not None and complete.guard == "undetermined"


def test_a_guard_at_full_weight_is_not_named_for_its_symptom() -> None:
    """Every collapse to a point saturates VICReg's variance hinge and raises SIGReg's
    statistic: with the term weighted as the papers do, the signature is a symptom."""
    hinge = [{"loss_variance": v} for v in [0.3, 0.5, 0.7, 0.9, 0.99, 0.99]]
    history = _history(COLLAPSING, hinge)
    for weights, guard in (
        ({"variance_weight": 0.1, "invariance_weight": 25.0}, "variance_term"),
        ({"variance_weight": 25.0, "invariance_weight": 25.0}, "undetermined"),
        ({}, "variance_term"),  # an external loop that does not say: the signature decides
    ):
        configuration = configuration_of({"method": "vicreg", "options": weights})
        cause = run_verdict(history, configuration=configuration).cause
        assert cause is not None and cause.guard == guard, weights
    rising = [{"sigreg_statistic": v} for v in [73.0, 88.0, 95.0, 99.0, 101.0, 101.3]]
    for weight, guard in ((0.0, "variance_term"), (0.05, "undetermined")):
        configuration = configuration_of({"method": "lejepa", "options": {"sigreg_weight": weight}})
        cause = run_verdict(_history(COLLAPSING, rising), configuration=configuration).cause
        assert cause is not None and cause.guard == guard, weight
        assert "configuration.sigreg_weight" in cause.signals_checked


def test_two_guards_firing_give_undetermined_naming_both() -> None:
    logs = [{"loss_variance": 1.0, "weight_decay": 0.5, **BRANCH}] * 6
    cause = run_verdict(_history(COLLAPSING, logs, lr=0.05), configuration=SGD).cause
    assert cause is not None and cause.guard == "undetermined"
    assert "variance_term and weight_decay" in cause.reason


def test_every_epoch_verdict_carries_its_own_cause() -> None:
    entropy = [1.3, 1.0, 0.4, 0.1, 0.05, 0.05]
    kl = [1.6, 1.2, 0.3, 0.03, 0.02, 0.02]
    logs = _dino_logs(entropy, kl, usage_entropy_after_balancing=0.5)
    history = _history(COLLAPSING, logs, ema_momentum=0.99)
    causes = [epoch_verdict(history[: i + 1]).cause for i in range(len(history))]
    assert [c.guard if c else None for c in causes[:3]] == [None, None, None]
    assert all(c is not None and c.guard == "centering" for c in causes[3:])


def test_an_external_run_with_the_same_internals_gets_the_same_cause() -> None:
    """The probe path (an external run's epochs) and a built-in run's records: same logs,
    same cause; the method is never read."""
    entropy = [3.3, 4.0, 4.5, 4.8, 4.84, 4.85]
    kl = [0.9, 0.6, 0.4, 0.2, 0.2, 0.2]
    temperatures = {"teacher_temperature": 0.1, "student_temperature": 0.1}
    logs = _dino_logs(entropy, kl, ema_momentum=0.996, **temperatures)
    built_in = run_verdict(_history(COLLAPSING, logs)).cause
    history: list[EpochRecord] = []
    for epoch, weight in enumerate(COLLAPSING):
        z = _embedding(weight, epoch).numpy().astype(np.float32)
        history.append(probe_epoch_record(epoch, z, history=history, scalars=logs[epoch]))
    external = history[-1].verdict
    assert external is not None and external.cause is not None and built_in is not None
    assert external.cause.guard == built_in.guard == "sharpening"
    assert external.cause.reason == built_in.reason


@pytest.mark.parametrize(
    ("entropy", "kl", "usage", "settings"),
    [  # as no centering: every sample on one prototype; as no sharpening: uniform
        ([1.3, 1.0, 0.4, 0.1, 0.05, 0.0], [1.6, 1.2, 0.3, 0.03, 0.02, 0.0], 0.0, {}),
        (
            [3.3, 4.0, 4.5, 4.8, 4.84, 4.85],
            [0.9, 0.6, 0.4, 0.2, 0.2, 0.2],
            LOG_K,
            {"teacher_temperature": 0.1, "student_temperature": 0.1},
        ),
    ],
)
def test_a_dino_signature_without_the_teachers_momentum_is_not_guessed(
    entropy: list[float], kl: list[float], usage: float, settings: dict[str, float]
) -> None:
    """A teacher that is the student piles onto one prototype or flattens too (an external
    loop with momentum 0 logged nothing else: h 0, KL 0): with neither the guard's setting
    nor the momentum logged, the cause is undetermined and says what to log."""
    logs = _dino_logs(entropy, kl, usage_entropy_after_balancing=usage)
    unknown = run_verdict(_history(COLLAPSING, logs)).cause
    assert unknown is not None and unknown.guard == "undetermined"
    assert "a teacher that is the student itself" in unknown.reason
    assert "ema_momentum" in unknown.advice
    copy = run_verdict(_history(COLLAPSING, logs, ema_momentum=0.0)).cause
    assert copy is not None and copy.guard == "target_network"
    # the teacher apart from the student, and the guard's setting where it must be logged
    logged = [{**record, **settings} for record in logs]
    apart = run_verdict(_history(COLLAPSING, logged, ema_momentum=0.99)).cause
    assert apart is not None and apart.guard in ("centering", "sharpening")


def test_a_cause_stored_as_sigreg_reads_as_the_variance_term() -> None:
    stored = {"guard": "sigreg", "reason": "x", "onset_epoch": 1, "advice": "y"}
    assert Cause.model_validate(stored).guard == "variance_term"


def test_schedule_aliases_name_declared_signals() -> None:
    declared = set(METHOD_INTERNALS) | set(EpochRecord.model_fields)
    assert set(SCHEDULE_ALIASES.values()) <= declared


def test_records_written_before_causes_keep_opening() -> None:
    old = {"kind": "complete_collapse", "onset_epoch": 3, "reason": "x", "findings": []}
    assert Verdict.model_validate(old).cause is None
    cause = run_verdict(_history(COLLAPSING, [{}] * 6)).cause
    assert cause is not None
    assert cause.guard in CAUSE_GUARDS


@pytest.mark.parametrize("share", [0.0, CAUSE_THRESHOLDS.kl_share_collapsed * 0.9])
def test_diagnose_cause_is_none_for_healthy_whatever_the_signals(share: float) -> None:
    history = _history(HEALTHY, _dino_logs([0.0] * 6, [share * LOG_K] * 6))
    assert diagnose_cause(history, "healthy", None) is None


def test_a_logged_schedule_that_contradicts_the_dino_signature_leaves_it_undetermined() -> None:
    """dino with the paper's head init on the CPU: h/ln K near 1 and KL near 0, but the
    teacher is sharper than the student and the centre moves: neither guard is off, so
    neither is named."""
    entropy = [3.3, 4.0, 4.5, 4.8, 4.84, 4.85]
    kl = [0.9, 0.6, 0.4, 0.2, 0.2, 0.2]
    logs = _dino_logs(entropy, kl, teacher_temperature=0.04, student_temperature=0.1)
    cause = run_verdict(_history(COLLAPSING, logs)).cause
    assert cause is not None and cause.guard == "undetermined"
    assert "teacher_temperature 0.04" in cause.reason
    low = _dino_logs([1.3, 1.0, 0.4, 0.1, 0.05, 0.05], [1.6, 1.2, 0.3, 0.03, 0.02, 0.02])
    moving_centre = [{**record, "center_norm": 1.7} for record in low]
    cause = run_verdict(_history(COLLAPSING, moving_centre)).cause
    assert cause is not None and cause.guard == "undetermined"


def test_a_student_giving_the_teachers_prototype_nothing_has_a_stored_finite_kl() -> None:
    """A student that gives 0 to the teacher's prototype would make KL(P_t‖P_s) infinite,
    which the store (finite numbers only) could not keep: the student's probabilities are
    floored at float32's smallest, so the KL is about 87 nats, stored, and the record opens
    again. Left out, it would also hide that a student was sent (the balancing check reads
    a teacher sent alone as a clustering loop's codes)."""
    z = _embedding(1.0, 0).numpy().astype(np.float32)
    teacher = np.zeros((N_PROBE, 4), np.float32)
    teacher[:, 0] = 1
    student = np.zeros((N_PROBE, 4), np.float32)
    student[:, 1] = 1
    record = probe_epoch_record(
        0, z, history=[], internals={"teacher": teacher, "student": student}
    )
    assert record.logs["teacher_student_kl"] == pytest.approx(87.3, abs=0.1)
    assert record.logs["teacher_entropy"] == 0
    assert EpochRecord.model_validate(record.model_dump(mode="json")).logs == record.logs


def test_a_sweep_cell_names_the_cause_its_seeds_agree_on() -> None:
    from backend.sweep_schemas import SweepRunOut, _cell_cause

    def run(seed: int, kind: str, guard: str | None) -> SweepRunOut:
        cause = None if guard is None else {"guard": guard, "reason": "r", "advice": "a"}
        return SweepRunOut.model_validate(
            {
                "id": f"r{seed}",
                "url": f"/runs/r{seed}",
                "seed": seed,
                "status": "succeeded",
                "progress": 1.0,
                "last_epoch": 5,
                "epochs": 5,
                "verdict_kind": kind,
                "onset_epoch": 2 if guard else None,
                "cause": cause,
                "stopped_early": None,
                "error": None,
                "final": None,
            }
        )

    agree = [run(0, "complete_collapse", "centering"), run(1, "complete_collapse", "centering")]
    assert _cell_cause("complete_collapse", agree) == "centering"
    differ = [run(0, "complete_collapse", "centering"), run(1, "complete_collapse", "sharpening")]
    assert _cell_cause("complete_collapse", differ) == "undetermined"
    # a seed of another kind does not vote; a healthy cell has no cause
    mixed = [run(0, "complete_collapse", "negatives"), run(1, "dimensional_collapse", "predictor")]
    assert _cell_cause("complete_collapse", mixed) == "negatives"
    assert _cell_cause("healthy", [run(0, "healthy", None)]) is None


def test_a_centre_measured_at_zero_stands_in_for_a_vanishing_kl() -> None:
    """dino-no-centering at K = 1024 ends with KL/ln K 0.10 but a centre that never moved."""
    entropy = [4.0, 1.0, 0.5, 0.4, 0.35, 0.35]
    kl = [1.4, 0.9, 0.8, 0.75, 0.72, 0.72]
    logs = [
        {"teacher_entropy": h, "teacher_student_kl": k, "log_k": math.log(1024)}
        for h, k in zip(entropy, kl, strict=True)
    ]
    cause = run_verdict(_history(COLLAPSING, [{**r, "center_norm": 0.0} for r in logs])).cause
    assert cause is not None and cause.guard == "centering"
    assert cause.onset_epoch == 1
    unknown_centre = run_verdict(_history(COLLAPSING, logs)).cause
    assert unknown_centre is not None and unknown_centre.guard == "undetermined"


def test_with_the_centre_measured_at_zero_fewer_than_sqrt_k_prototypes_name_centering() -> None:
    """dino-no-centering on digits seed 1 ended at h/ln K 0.35 with KL/ln K 0.08: above the
    one third the entropy alone needs, below the half (sqrt(K) prototypes) it needs with the
    centre measured at 0; runs with both guards end at 0.87-0.99."""
    entropy = [4.6, 3.0, 2.2, 1.9, 1.75, 1.71]
    kl = [1.2, 0.9, 0.6, 0.5, 0.42, 0.39]
    logs = _dino_logs(entropy, kl, teacher_temperature=0.04, student_temperature=0.1)
    uncentred = [{**record, "center_norm": 0.0} for record in logs]
    cause = run_verdict(_history(COLLAPSING, uncentred)).cause
    assert cause is not None and cause.guard == "centering"
    assert cause.onset_epoch == 2  # 3.0 / 4.85 = 0.62 at epoch 1, 0.45 at epoch 2
    for centre in ({}, {"center_norm": 1.7}):  # not logged, or moving: entropy alone
        logged = [{**record, **centre} for record in logs]
        blind = run_verdict(_history(COLLAPSING, logged)).cause
        assert blind is not None and blind.guard == "undetermined"
    # half of ln K or more is not the dominance signature, centre or not
    flat = _dino_logs([4.6, 3.6, 3.2, 3.0, 2.9, 2.8], kl, center_norm=0.0)
    cause = run_verdict(_history(COLLAPSING, flat)).cause
    assert cause is not None and cause.guard == "undetermined"


@pytest.mark.parametrize(
    ("share", "expected"), [(0.05, "centering"), (0.22, "undetermined"), (0.30, "undetermined")]
)
def test_without_a_logged_centre_only_a_teacher_on_one_prototype_names_centering(
    share: float, expected: str
) -> None:
    """A loop logging its momentum but not its centre: loops with every guard on that
    collapsed for other reasons ended with the teacher on a fifth to a third of ln K with a
    low KL, loops without centering at 0.00-0.14 (contract/cause_thresholds.py), their
    samples on the same few prototypes (the mean assignment's entropy under half ln K)."""
    kl = [1.6, 1.0, 0.5, 0.1, 0.1, 0.1]
    entropy = [LOG_K * 0.9, LOG_K * 0.6, LOG_K * 0.4, *[LOG_K * share] * 3]
    piled = _dino_logs(entropy, kl, usage_entropy_after_balancing=LOG_K * 0.3)
    cause = run_verdict(_history(COLLAPSING, piled, ema_momentum=0.99)).cause
    assert cause is not None and cause.guard == expected
    if expected == "undetermined":  # the same teacher with its centre measured at 0: named
        uncentred = _dino_logs(entropy, kl, center_norm=0.0)
        named = run_verdict(_history(COLLAPSING, uncentred, ema_momentum=0.99)).cause
        assert named is not None and named.guard == "centering"
    else:  # a sharp teacher spreading the samples over the prototypes: a centred one
        spread = _dino_logs(entropy, kl, usage_entropy_after_balancing=LOG_K * 0.85)
        centred = run_verdict(_history(COLLAPSING, spread, ema_momentum=0.99)).cause
        assert centred is not None and centred.guard == "undetermined"


@pytest.mark.parametrize("share", [0.99, 0.93])
def test_without_logged_temperatures_a_uniform_teacher_names_no_sharpening(share: float) -> None:
    """Loops with every guard on that collapsed otherwise ended as uniform too (up to 0.994
    of ln K, no-sharpening loops 0.977-0.999): without the temperatures the cause is
    undetermined and says what to log; with them logged equal, sharpening."""
    kl = [1.6, 1.0, 0.5, 0.1, 0.1, 0.1]
    entropy = [LOG_K * 0.5, LOG_K * 0.7, LOG_K * 0.8, *[LOG_K * share] * 3]
    cause = run_verdict(_history(COLLAPSING, _dino_logs(entropy, kl), ema_momentum=0.99)).cause
    assert cause is not None and cause.guard == "undetermined"
    assert "the temperatures were not logged" in cause.reason
    assert "teacher_temperature" in cause.advice
    equal = _dino_logs(entropy, kl, teacher_temperature=0.1, student_temperature=0.1)
    logged = run_verdict(_history(COLLAPSING, equal, ema_momentum=0.99)).cause
    assert logged is not None and logged.guard == "sharpening"


def test_a_guard_failing_while_the_embedding_is_healthy_is_a_finding_not_a_cause() -> None:
    """A DINO-style loop without centering whose teacher piles onto a few prototypes while
    z keeps its directions: healthy, no cause, and the teacher's signature said. A centred
    teacher as sharp says nothing, nor does a guard read from the configuration."""
    entropy = [1.3, 1.0, 0.4, 0.1, 0.05, 0.05]
    kl = [1.6, 1.2, 0.3, 0.2, 0.2, 0.2]
    uncentred = run_verdict(_history(HEALTHY, _dino_logs(entropy, kl, center_norm=0.0)))
    assert uncentred.kind == "healthy" and uncentred.cause is None
    warned = [f for f in uncentred.findings if f.startswith("a guard's signal fires")]
    assert len(warned) == 1 and "(centering): the teacher's entropy h(P_t) fell" in warned[0]
    centred = run_verdict(_history(HEALTHY, _dino_logs(entropy, kl, center_norm=0.8)))
    assert not any(f.startswith("a guard's signal") for f in centred.findings)
    no_stop_gradient = configuration_of({"method": "simsiam", "stop_gradient": False})
    configured = run_verdict(_history(HEALTHY, [{}] * 6), configuration=no_stop_gradient)
    assert not any(f.startswith("a guard's signal") for f in configured.findings)
