"""Why a run collapsed: the guard that failed, read from the measured signals.

Every family keeps its embedding from collapsing with a guard (docs/causes.md lists them):
negatives (contrastive), balanced assignments (clustering), an asymmetric branch (predictor,
stop-gradient, a momentum target), variance and decorrelation terms (redundancy reduction),
centering and sharpening (DINO), SIGReg (LeJEPA). Each guard has a signature in the
mechanism signals of the epoch record (``EpochRecord.logs`` under the names declared in
``contract.metrics``, and the schedule fields ``lr`` and ``ema_momentum``); a check per
guard reads it. The diagnosis never reads the method's name or its option flags: a built-in
ablation and an external run that sends the same internals get the same cause. Two guards
leave no trace a probe can measure (stop-gradient and the predictor's presence change the
gradient, not the embeddings; a linear predictor's matrix is measured, but none of its
signals told its collapses apart): for them the run's configuration is read, and the reason
says so and cites the measurement that confirms the collapse they cause.

Exactly one check firing names its guard; none, or several, give ``undetermined`` with the
signals read: a wrong cause is worse than none. Thresholds and their evidence:
:class:`contract.cause_thresholds.CauseThresholds` (also the collapsed levels of the charts);
the runs behind them: docs/causes.md (``bench/causes.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from contract import Cause, CauseGuard, EpochRecord, VerdictKind
from contract.cause_thresholds import CAUSE_THRESHOLDS, CauseThresholds

# The signals the checks read (EpochRecord.logs keys; lr and ema_momentum are record fields).
TEACHER_ENTROPY = "teacher_entropy"
TEACHER_STUDENT_KL = "teacher_student_kl"
LOG_K = "log_k"
CENTER_NORM = "center_norm"
TEACHER_TEMPERATURE = "teacher_temperature"
STUDENT_TEMPERATURE = "student_temperature"
ONLINE_TARGET_COSINE = "online_target_cosine"
TARGET_PARAM_DISTANCE = "target_param_distance"
PREDICTOR_SYMMETRY = "predictor_symmetry"
EFFECTIVE_NEGATIVES = "effective_negatives"
INFONCE_REPULSION = "infonce_repulsion"
ASSIGNMENT_ENTROPY = "assignment_entropy"
USAGE_AFTER_BALANCING = "usage_entropy_after_balancing"
SINKHORN_EPSILON = "sinkhorn_epsilon"
DIMS_UNDER_HINGE = "dims_under_variance_hinge"
LOSS_VARIANCE = "loss_variance"
OFF_DIAGONAL_ENERGY = "off_diagonal_energy"
SIGREG_STATISTIC = "sigreg_statistic"
WEIGHT_DECAY = "weight_decay"
LR = "lr"
EMA_MOMENTUM = "ema_momentum"


# How the configuration's fields are named among the signals checked (private: the module's
# public upper-case strings are the measured signals, tests/test_metric_registry.py)
_CONFIGURATION = "configuration."


def configuration_signal(field: str) -> str:
    """How a configuration field is named among the signals checked."""
    return _CONFIGURATION + field


@dataclass(frozen=True)
class Finding:
    """One guard's check that fired: the guard, why (numbers), what to do, since when."""

    guard: CauseGuard
    reason: str
    advice: str
    onset_epoch: int | None


@dataclass
class _Reader:
    """Reads a run's signals and remembers which ones it looked at (present or not)."""

    history: Sequence[EpochRecord]
    # the collapse shows in the raw scale only, its directions intact: no configuration-read
    # guard is named (their collapses fold the directions: spread or rank)
    scale_only: bool = False
    checked: list[str] = field(default_factory=list)

    def note(self, name: str) -> None:
        """Remember that ``name`` was looked at."""
        if name not in self.checked:
            self.checked.append(name)

    def setting(self, configuration: Mapping[str, Any] | None, key: str) -> Any:
        """The configuration's ``key`` (None without one), noted as ``configuration.key``."""
        self.note(configuration_signal(key))
        return None if configuration is None else configuration.get(key)

    def value(self, record: EpochRecord, name: str) -> float | None:
        self.note(name)
        if name == LR and record.lr is not None:
            return record.lr
        if name == EMA_MOMENTUM and record.ema_momentum is not None:
            return record.ema_momentum
        found = record.logs.get(name)
        return None if found is None or not math.isfinite(found) else float(found)

    def last(self, name: str) -> float | None:
        return self.value(self.history[-1], name)

    def since(self, holds: Callable[[EpochRecord], bool]) -> int | None:
        """First epoch (after 0) of the final streak in which ``holds``; None if it does
        not hold at the last epoch."""
        start = None
        for record in self.history[1:]:
            start = (start if start is not None else record.epoch) if holds(record) else None
        return start


def _dino(reader: _Reader, t: CauseThresholds) -> Finding | None:
    """Centering or sharpening from the teacher's entropy and KL(P_t‖P_s) (DINO Sec. 5.3)."""

    def shares(record: EpochRecord) -> tuple[float, float] | None:
        h = reader.value(record, TEACHER_ENTROPY)
        kl = reader.value(record, TEACHER_STUDENT_KL)
        log_k = reader.value(record, LOG_K)
        if h is None or kl is None or not log_k:
            return None
        return h / log_k, kl / log_k

    if shares(reader.history[-1]) is None:
        return None
    h, kl, log_k = (reader.last(n) or 0.0 for n in (TEACHER_ENTROPY, TEACHER_STUDENT_KL, LOG_K))
    center = reader.last(CENTER_NORM)
    teacher = reader.last(TEACHER_TEMPERATURE)
    student = reader.last(STUDENT_TEMPERATURE)
    # A logged schedule that contradicts the signature (a centre that moves, a teacher
    # sharper than the student) leaves the cause undetermined: the CPU dino preset reaches
    # h/ln K 0.96 and KL/ln K 0.04 with both guards on (docs/causes.md). A centre measured
    # at 0 stands in for KL -> 0 (no-centering runs at K = 1024 end at KL/ln K 0.09-0.10).
    centred = center is not None and center > t.same_network
    uncentred = center is not None and not centred
    sharpened = (
        teacher is not None and student is not None and teacher < t.sharpening_ratio * student
    )
    unsharpened = (
        teacher is not None and student is not None and teacher >= t.sharpening_ratio * student
    )
    # A teacher that is the student itself (momentum 0) ends with either signature too: its
    # entropy falls to 0 when it piles onto one prototype, rises to ln K when its logits
    # flatten (dino-no-momentum: h/ln K 0.94-0.97, docs/causes.md). So is a teacher with
    # every guard on that collapsed for another reason. Sharpening is named only with both
    # temperatures logged (the teacher as warm as the student); centering with the centre
    # logged at 0, or with the teacher known to be apart from the student and on the same
    # few prototypes for every sample (contract/cause_thresholds.py).
    apart = _target_apart(reader, t)

    def kl_low(share: float) -> bool:
        return share <= t.kl_share_collapsed

    def no_centering(r: EpochRecord) -> bool:
        s = shares(r)
        if s is None or centred:
            return False
        if uncentred:  # the guard's own setting is measured off
            return s[0] <= t.entropy_share_uncentred
        # the centre not logged: only a teacher on about one prototype tells (runs with
        # both guards that collapse for other reasons fall to a fifth of ln K), the same
        # few for every sample: a centred teacher, however sharp, spreads the samples over
        # the prototypes (what centering is for), so their mean assignment uses many
        usage = reader.value(r, USAGE_AFTER_BALANCING)
        log_k = reader.value(r, LOG_K)
        return (
            s[0] <= t.entropy_share_no_centering
            and kl_low(s[1])
            and usage is not None
            and log_k is not None
            and log_k > 0
            and usage / log_k < t.usage_share_unbalanced
        )

    def no_sharpening(r: EpochRecord) -> bool:
        s = shares(r)
        return (
            s is not None
            and s[0] >= t.entropy_share_no_sharpening
            and s[1] <= t.kl_share_collapsed
            and not sharpened
        )

    numbers = f"h(P_t) {h:.2f} nats of ln K = {log_k:.2f} and KL(P_t‖P_s) {kl:.3f}"
    if no_centering(reader.history[-1]):
        if not uncentred and apart is not True:
            return _teacher_unknown(
                "a missing centering",
                "the centre's norm",
                numbers,
                apart,
                reader.since(no_centering),
            )
        center_clause = (
            "; the centre's norm is 0: it is never updated"
            if uncentred
            else f"; centre norm {center:.2f}"
            if center is not None
            else ""
        )
        return Finding(
            "centering",
            f"the teacher's entropy h(P_t) fell to {h:.2f} nats of ln K = {log_k:.2f} (an "
            f"effective {math.exp(h):.1f} of {math.exp(log_k):.0f} prototypes per sample) and "
            f"KL(P_t‖P_s) to {kl:.3f}: the teacher piles onto a few prototypes, the signature "
            f"of missing centering{center_clause}.",
            "Centre the teacher's output (subtract an EMA of its batch mean, momentum 0.9) or "
            "soften the sharpening (Caron et al., ICCV 2021, Sec. 3.1 and 5.3).",
            reader.since(no_centering),
        )
    if no_sharpening(reader.history[-1]):
        if not unsharpened and apart is not True:
            return _teacher_unknown(
                "a missing sharpening",
                "both temperatures",
                numbers,
                apart,
                reader.since(no_sharpening),
            )
        if not unsharpened:
            # loops with every guard on that collapsed otherwise ended as uniform (h/ln K up
            # to 0.994, contract/cause_thresholds.py): only the temperatures tell
            return Finding(
                "undetermined",
                f"the teacher's {numbers} are the signature of a missing sharpening, and of a "
                "collapse with the teacher sharpened (loops with every guard on ended as "
                "uniform too): the temperatures were not logged to tell them apart.",
                "Log schedules={'teacher_temperature': ..., 'student_temperature': ...} with "
                "teacher= and student= (client/PROTOCOL.md, section 8).",
                reader.since(no_sharpening),
            )
        temperatures = ""
        if teacher is not None and student is not None:
            temperatures = (
                f"; teacher temperature {teacher:.3g} against the student's {student:.3g}"
            )
        elif teacher is not None:
            temperatures = f"; teacher temperature {teacher:.3g}"
        return Finding(
            "sharpening",
            f"the teacher's entropy h(P_t) rose to {h:.2f} nats of ln K = {log_k:.2f} while "
            f"KL(P_t‖P_s) fell to {kl:.3f}: the teacher's output is nearly uniform over the "
            f"{math.exp(log_k):.0f} prototypes, the signature of missing sharpening"
            f"{temperatures}.",
            "Sharpen the teacher: a teacher temperature well below the student's (0.04 warmed "
            "up to 0.07 against 0.1; Caron et al., ICCV 2021, Sec. 3.1 and 5.3).",
            reader.since(no_sharpening),
        )
    return None


def _target_branch_measured(reader: _Reader) -> bool:
    """Whether the run sends a target branch to measure (``target=`` or ``teacher=``): only
    then is a logged momentum the target's EMA, not an optimiser's (0 for plain SGD)."""
    return any(reader.last(name) is not None for name in (ONLINE_TARGET_COSINE, TEACHER_ENTROPY))


def _target_apart(reader: _Reader, t: CauseThresholds) -> bool | None:
    """Whether the target (a teacher) is known not to be the online network (the student): a
    logged parameter distance of the two above 0, else a logged EMA momentum above 0 beside
    a measured target branch; None when neither tells."""
    distance = reader.last(TARGET_PARAM_DISTANCE)
    if distance is not None:
        return distance > t.same_network
    momentum = reader.last(EMA_MOMENTUM)
    if momentum is None or not _target_branch_measured(reader):
        return None
    return momentum > t.same_network


def _teacher_unknown(
    signature: str, setting: str, numbers: str, apart: bool | None, onset: int | None
) -> Finding | None:
    """A DINO signature the logged signals cannot tell from a teacher that is the student:
    left to the target-network check when the teacher is known to be the student, else
    ``undetermined`` with what to log (client/PROTOCOL.md, section 8)."""
    if apart is False:
        return None
    return Finding(
        "undetermined",
        f"the teacher's {numbers} are the signature of {signature}, and of a teacher that is "
        f"the student itself: neither {setting} nor the EMA momentum was logged to tell them "
        "apart.",
        "Log schedules={'ema_momentum': ..., 'teacher_temperature': ..., "
        "'student_temperature': ..., 'center_norm': ...} with teacher= and student= "
        "(client/PROTOCOL.md, section 8).",
        onset,
    )


def _target_network(reader: _Reader, t: CauseThresholds) -> Finding | None:
    """A momentum target switched off: a target network of its own whose parameters are the
    online network's (a measured distance of 0: BYOL Table 5, DINO Fig. 6 and I-JEPA report
    collapse there), or a DINO-style teacher (``teacher=``) logged with EMA momentum 0.

    A logged momentum is not read beside a target branch of the BYOL family (``target=``):
    a SimSiam loop, which has no target network, logs momentum 0 by convention (BYOL with
    tau = 0) and trains; the blind audit's SimSiam loops that collapsed with their
    stop-gradient or predictor removed were named ``target_network`` so (docs/causes.md, "A
    blind audit"). Nor is it read without a target branch: a loop that logs its optimiser's
    momentum under that name (0 for plain SGD or Adam) has no target to blame."""
    momentum = reader.last(EMA_MOMENTUM)
    distance = reader.last(TARGET_PARAM_DISTANCE)
    if distance is not None:
        same = distance <= t.same_network
        measured = (
            f"the target's parameters are {distance:.2g} (relative distance) from the "
            "online network's"
        )
    elif momentum is not None and reader.last(TEACHER_ENTROPY) is not None:
        same = momentum <= t.same_network
        measured = f"the logged EMA momentum is {momentum:.3g}"
    else:
        return None
    if not same:
        return None
    cosine = reader.last(ONLINE_TARGET_COSINE)
    kl = reader.last(TEACHER_STUDENT_KL)
    confirm = (
        f"; online-target cosine {cosine:.3f}"
        if cosine is not None
        else f"; KL(P_t‖P_s) {kl:.3f}"
        if kl is not None
        else ""
    )

    def same_network(r: EpochRecord) -> bool:
        d = reader.value(r, TARGET_PARAM_DISTANCE)
        m = reader.value(r, EMA_MOMENTUM)
        value = d if d is not None else m
        return value is not None and value <= t.same_network

    return Finding(
        "target_network",
        f"{measured}: the target is the online network itself, with no slow-moving "
        f"target to anchor it{confirm}.",
        "Use a momentum target (EMA momentum 0.99-0.996, raised towards 1 on a cosine; "
        "Grill et al., NeurIPS 2020, Table 5; Caron et al., ICCV 2021, Fig. 6).",
        reader.since(same_network),
    )


def _confirmation(reader: _Reader) -> str:
    """The measured collapse that confirms a guard read from the configuration: the
    projector's random-pair cosine and effective rank, and the online-target cosine."""
    z = reader.history[-1].projector
    cosine = reader.last(ONLINE_TARGET_COSINE)
    target = f"; online-target cosine {cosine:.3f}" if cosine is not None else ""
    return (
        f"random-pair cosine {z.cos_rand:.3f}, effective rank {z.effective_rank:.1f} of "
        f"d={z.dim}{target}"
    )


def _configured_off(reader: _Reader, configuration: Mapping[str, Any] | None, key: str) -> bool:
    """Whether the run's configuration switches ``key`` off (``key: false``) and the
    collapse confirms it: a guard read from the configuration is named only for a collapse of
    the directions (spread or rank), the kind every run without it showed (docs/causes.md),
    never for a raw scale that shrank with its directions intact."""
    return reader.setting(configuration, key) is False and not reader.scale_only


def _stop_gradient(
    reader: _Reader, t: CauseThresholds, configuration: Mapping[str, Any] | None
) -> Finding | None:
    """The stop-gradient switched off, read from the configuration; not where the target is
    measured apart from the online network (a momentum copy's weights are never trained by
    gradients, so the switch has nothing to act on: contract/methods/ijepa.py). Only the
    parameter distance tells: a SimSiam loop logging its SGD momentum as ``momentum`` has
    no momentum target."""
    if not _configured_off(reader, configuration, "stop_gradient"):
        return None
    distance = reader.last(TARGET_PARAM_DISTANCE)
    if distance is not None and distance > t.same_network:
        return None
    return Finding(
        "stop_gradient",
        "from the configuration (stop_gradient false; removing it changes the gradient, not "
        f"the embeddings, so no probe can see it), confirmed by the collapse it causes "
        f"({_confirmation(reader)}).",
        "Put the stop-gradient back on the target branch (Chen & He, CVPR 2021, Sec. 4.1 and "
        "Fig. 2: without it SimSiam collapses at once).",
        None,
    )


# The predictor kinds that collapsed in every short run whatever the EMA momentum (0, 0.9,
# 0.99), where BYOL's MLP predictor stayed healthy at the same momenta (docs/causes.md,
# "A linear or symmetric predictor").
LINEAR_PREDICTOR_KINDS = ("linear", "symmetric")


def _predictor(
    reader: _Reader, t: CauseThresholds, configuration: Mapping[str, Any] | None
) -> Finding | None:
    """The predictor removed (``predictor: false``) or a linear one (``predictor_kind``
    linear or symmetric), both read from the configuration: a linear predictor's matrix is
    measured (its symmetry, eigen-alignment and commutator), but no value of them told its
    collapses apart from healthy runs."""
    off = _configured_off(reader, configuration, "predictor")
    kind = reader.setting(configuration, "predictor_kind")
    if off:
        why = (
            "predictor false: the two branches are the same function, so nothing breaks "
            "their symmetry"
        )
    elif kind in LINEAR_PREDICTOR_KINDS and not reader.scale_only:  # as _configured_off
        form = "W_p = (W + W^T)/2" if kind == "symmetric" else "W_p"
        base = reader.value(reader.history[1], EMA_MOMENTUM) if len(reader.history) > 1 else None
        if base is not None and base < t.fast_ema:
            # DirectPred's Table 3 puts this collapse on the EMA's speed (momentum 0: none),
            # the calibration runs on the predictor's form (docs/causes.md): both fit, so
            # neither is named
            return Finding(
                "undetermined",
                f"a linear predictor (predictor_kind {kind}, {form}) against a fast EMA "
                f"target (momentum {base:.3g} at epoch {reader.history[1].epoch}): Tian, Chen "
                "& Ganguli (ICML 2021, Table 3) put such a collapse on the EMA's speed, the "
                "calibration runs here on the predictor's form (it collapsed at momentum "
                f"0.99 too), so the two are not told apart ({_confirmation(reader)})",
                "Try a slower EMA (0.99-0.996) and an MLP predictor, one at a time (Grill et "
                "al., NeurIPS 2020; Tian, Chen & Ganguli, ICML 2021).",
                None,
            )
        why = (
            f"predictor_kind {kind}: one linear map {form}, which collapsed in every "
            "calibration run whatever the EMA momentum (0, 0.9, 0.99), where the MLP "
            "predictor kept BYOL healthy at the same momenta (docs/causes.md)"
        )
    else:
        return None
    return Finding(
        "predictor",
        f"from the configuration ({why}), confirmed by the collapse it causes "
        f"({_confirmation(reader)}).",
        "Add a predictor on the online branch, an MLP (Chen & He, CVPR 2021, Table 1; Grill "
        "et al., NeurIPS 2020); a linear one needs its eigenvalues aligned with the input "
        "correlation (Tian, Chen & Ganguli, ICML 2021: DirectPred sets them from it).",
        None,
    )


def _negatives(
    reader: _Reader, t: CauseThresholds, configuration: Mapping[str, Any] | None
) -> Finding | None:
    """Negatives that carry no softmax mass (measured), or none in the loss at all: the
    probe's InfoNCE split still measures the repulsion the loss leaves out, so their absence
    is read from the configuration and confirmed by the collapse."""
    negatives = reader.last(EFFECTIVE_NEGATIVES)
    repulsion = reader.last(INFONCE_REPULSION)
    advice = (
        "Keep the negatives in the loss, 2N-2 per positive with a large batch (Chen et al., "
        "ICML 2020; Wang & Isola, ICML 2020: uniformity is what the negatives give)."
    )
    if _configured_off(reader, configuration, "negatives"):
        left_out = (
            f"; the repulsion the loss leaves out measures {repulsion:.3f}"
            if repulsion is not None
            else ""
        )
        return Finding(
            "negatives",
            "from the configuration (negatives false: the loss only aligns the views), "
            f"confirmed by the collapse it causes ({_confirmation(reader)}){left_out}.",
            advice,
            None,
        )
    if negatives is None or negatives >= t.effective_negatives_none:
        return None

    def none(r: EpochRecord) -> bool:
        neg = reader.value(r, EFFECTIVE_NEGATIVES)
        return neg is not None and neg < t.effective_negatives_none

    return Finding(
        "negatives",
        f"the softmax mass rests on {negatives:.2f} negatives: nothing pushes different "
        f"images apart, so aligning the views pulls everything together "
        f"({_confirmation(reader)}).",
        advice,
        reader.since(none),
    )


# Measured only where a predictor works against a target branch (BYOL, SimSiam, I-JEPA).
PREDICTOR_SIGNALS = (ONLINE_TARGET_COSINE, PREDICTOR_SYMMETRY)


def _balancing(reader: _Reader, t: CauseThresholds) -> Finding | None:
    """Clustering's balancing (Sinkhorn, empty-cluster reassignment), read from the codes'
    usage and sharpness (the built-in SwAV and DeepCluster, an external loop's ``codes=``).
    DINO's balancing is its centering: a teacher's probabilities (h(P_t) measured) are read
    by :func:`_dino` alone, and with no student there they name nothing. A teacher piled
    onto one prototype looks like unbalanced codes, but a DINO loop without centering and a
    SwAV loop without Sinkhorn need different fixes: only the array's name tells them apart
    (client/PROTOCOL.md, section 8)."""
    if reader.last(TEACHER_ENTROPY) is not None:
        return None
    log_k = reader.last(LOG_K)
    prototypes = reader.history[-1].projector.num_prototypes
    if not log_k and prototypes and prototypes > 1:
        log_k = math.log(prototypes)
    if not log_k:
        return None
    usage = reader.last(USAGE_AFTER_BALANCING)
    sharpness = reader.last(ASSIGNMENT_ENTROPY)
    k = math.exp(log_k)
    if usage is not None and usage / log_k < t.usage_share_unbalanced:
        share = t.usage_share_unbalanced

        def unbalanced(r: EpochRecord) -> bool:
            u = reader.value(r, USAGE_AFTER_BALANCING)
            return u is not None and u / log_k < share

        return Finding(
            "balancing",
            f"after balancing the codes still use an effective {math.exp(usage):.1f} of "
            f"{k:.0f} prototypes (usage entropy {usage:.2f} of ln K = {log_k:.2f}): the "
            "balancing step no longer spreads the samples over the clusters.",
            "Balance the assignments: Sinkhorn-Knopp with 3 iterations and epsilon 0.05 "
            "(Caron et al., NeurIPS 2020, Sec. 3.1; Asano et al., ICLR 2020).",
            reader.since(unbalanced),
        )
    # Uniform codes are also what Sinkhorn makes of an embedding collapsed for any other
    # reason (equal scores): named only with the balancing logged as weakened.
    epsilon = reader.last(SINKHORN_EPSILON)
    weakened = epsilon is not None and epsilon >= t.sinkhorn_epsilon_weak
    if sharpness is not None and sharpness / log_k > t.assignment_share_uniform and weakened:
        share = t.assignment_share_uniform

        def uniform(r: EpochRecord) -> bool:
            a = reader.value(r, ASSIGNMENT_ENTROPY)
            return a is not None and a / log_k > share

        return Finding(
            "balancing",
            f"each sample's code is uniform over the {k:.0f} prototypes (assignment entropy "
            f"{sharpness:.2f} of ln K = {log_k:.2f}) with Sinkhorn's epsilon at {epsilon:.3g}: "
            "the balanced codes carry nothing to predict.",
            "Make the balanced codes sharper: a smaller Sinkhorn epsilon (0.05) with a few "
            "iterations (Caron et al., NeurIPS 2020, Sec. 3.1 and Appendix A).",
            reader.since(uniform),
        )
    return None


def _guard_at_full_weight(
    reader: _Reader, configuration: Mapping[str, Any] | None, key: str, full: float
) -> bool:
    """Whether the configuration weighs a guard's term ``key`` at ``full`` or more. Its
    signature (a variance hinge at its ceiling, a SIGReg statistic not reduced) is also what
    any collapse to a point shows, so a guard at full weight is not named: something else
    overpowered it (the same rule as a logged schedule contradicting a DINO signature)."""
    weight = reader.setting(configuration, key)
    return isinstance(weight, int | float) and not isinstance(weight, bool) and weight >= full


def _variance_term(
    reader: _Reader, t: CauseThresholds, configuration: Mapping[str, Any] | None
) -> Finding | None:
    """The variance hinge at its ceiling: the unweighted hinge term mean_j max(0, γ - std_j)
    near γ = 1 means every dimension's std has shrunk towards 0 (VICReg Eq. 1). Not named
    with the variance term weighted at least as much as the invariance (VICReg's μ = λ)."""
    invariance = reader.setting(configuration, "invariance_weight")
    if isinstance(invariance, int | float) and _guard_at_full_weight(
        reader, configuration, "variance_weight", max(float(invariance), 1e-12)
    ):
        return None
    hinge = reader.last(LOSS_VARIANCE)
    under = reader.last(DIMS_UNDER_HINGE)
    # The unweighted hinge lies in [0, 1]; above 1 the loop logged it weighted (mu x hinge),
    # a scale the threshold was not chosen on.
    if hinge is None or not t.variance_hinge <= hinge <= 1 + 1e-6:
        return None
    limit = t.variance_hinge

    def shrunk(r: EpochRecord) -> bool:
        h = reader.value(r, LOSS_VARIANCE)
        return h is not None and h >= limit

    share = f" ({under:.0%} of the dimensions under the hinge)" if under is not None else ""
    return Finding(
        "variance_term",
        f"the variance hinge term is {hinge:.2f} of its ceiling 1: the dimensions' standard "
        f"deviations have shrunk to about {1 - hinge:.2f} of the target 1{share}, and the "
        "variance term no longer holds the embedding apart.",
        "Strengthen the variance term (VICReg's mu = 25 with lambda = 25, nu = 1; Bardes, "
        "Ponce & LeCun, ICLR 2022, Sec. 4.3 and Table 7).",
        reader.since(shrunk),
    )


def _decorrelation(reader: _Reader, t: CauseThresholds, kind: VerdictKind) -> Finding | None:
    """A dimensional collapse whose dimensions are correlated: the off-diagonal energy
    sum_(i!=j) C_ij^2 / d as a share of its ceiling d - 1 (every pair fully correlated)."""
    energy = reader.last(OFF_DIAGONAL_ENERGY)
    d = reader.history[-1].projector.dim
    if kind != "dimensional_collapse" or energy is None or d < 2:
        return None
    share = energy / (d - 1)
    if share <= t.off_diagonal_share:
        return None
    limit = t.off_diagonal_share

    def correlated(r: EpochRecord) -> bool:
        e = reader.value(r, OFF_DIAGONAL_ENERGY)
        return e is not None and e / (d - 1) > limit

    return Finding(
        "decorrelation",
        f"the off-diagonal correlation energy of z is {energy:.1f}, {share:.0%} of its "
        f"ceiling d - 1 = {d - 1} (every pair of dimensions fully correlated): the "
        "dimensions carry the same information.",
        "Weigh the decorrelation term back in (Barlow Twins lambda = 5e-3 per off-diagonal "
        "entry, Zbontar et al., ICML 2021; VICReg nu = 1, Bardes et al., ICLR 2022).",
        reader.since(correlated),
    )


def _sigreg(
    reader: _Reader, t: CauseThresholds, configuration: Mapping[str, Any] | None
) -> Finding | None:
    """LeJEPA's one guard: SIGReg pulls the embedding towards an isotropic Gaussian, so its
    statistic on the probe falls in a healthy run. Not reduced from epoch 0, the embedding
    has gone where the prediction term alone takes it: to the origin. Not named with SIGReg
    at the paper's weight or more."""
    if _guard_at_full_weight(reader, configuration, "sigreg_weight", t.sigreg_weight_full):
        return None
    start = reader.value(reader.history[0], SIGREG_STATISTIC)
    now = reader.last(SIGREG_STATISTIC)
    if start is None or now is None or start <= 0 or now < t.sigreg_not_reduced * start:
        return None
    limit = t.sigreg_not_reduced * start

    def not_reduced(r: EpochRecord) -> bool:
        value = reader.value(r, SIGREG_STATISTIC)
        return value is not None and value >= limit

    z0, z = reader.history[0].projector, reader.history[-1].projector
    scale = (
        f"; the raw z's scale fell from {z0.scale:.3g} to {z.scale:.3g}"
        if z0.scale is not None and z.scale is not None
        else ""
    )
    # The closed vocabulary (docs/causes.md) has no guard of SIGReg's own: it is LeJEPA's
    # variance (and decorrelation) term, and what fails without it is the variance.
    return Finding(
        "variance_term",
        f"LeJEPA's variance term, SIGReg, is not at work: its statistic on the probe is "
        f"{now:.3g} against {start:.3g} at epoch 0: nothing pulls the embedding towards an "
        f"isotropic Gaussian, so the views' prediction term alone shrinks it towards the "
        f"origin{scale}.",
        "Weigh SIGReg in (lambda = 0.05 with 1024 slices; Balestriero & LeCun, arXiv "
        "2511.08544: without it the prediction term's trivial solution is a constant).",
        reader.since(not_reduced),
    )


def _plain_sgd(reader: _Reader, configuration: Mapping[str, Any] | None) -> bool:
    """Whether the configuration's ``optimizer`` is SGD without a trust ratio ("sgd",
    "SGD", "torch.optim.SGD"; not LARS or LAMB, not Adam or AdamW)."""
    optimizer = reader.setting(configuration, "optimizer")
    if not isinstance(optimizer, str):
        return False
    lowered = optimizer.lower()
    return "sgd" in lowered and not any(other in lowered for other in ("lars", "lamb", "adam"))


def _weight_decay(
    reader: _Reader,
    t: CauseThresholds,
    configuration: Mapping[str, Any] | None,
    kind: VerdictKind,
) -> Finding | None:
    """The per-step shrink lr x wd at its peak (a cosine schedule ends near 0, but the
    weights were already driven to 0 while the learning rate was high), under plain SGD:
    AdamW and LARS decay by other rules, on which the product predicted nothing. Read only
    where a predictor works against a target branch (Tian et al.'s analysis; SimCLR with
    SGD at lr x wd 4e-3 stayed healthy where SimSiam collapsed, and a DINO teacher's
    probabilities are no predictor's: docs/causes.md), and only for a complete collapse:
    weight decay drives every eigen-mode to 0 (Tian et al., Sec. 4), and every
    weight-decay collapse of the calibration was complete where the learning-rate
    collapses, whose lr x wd can pass the limit too, were dimensional (all but one of 15,
    complete from epoch 9 of 10, at lr x wd 1.25e-3)."""
    if kind != "complete_collapse" or reader.last(TEACHER_ENTROPY) is not None:
        return None
    if all(reader.last(name) is None for name in PREDICTOR_SIGNALS):
        return None
    shrinks = []
    for record in reader.history[1:]:
        wd, lr = reader.value(record, WEIGHT_DECAY), reader.value(record, LR)
        if wd is not None and lr is not None:
            shrinks.append((wd * lr, wd, lr, record.epoch))
    if not shrinks or not _plain_sgd(reader, configuration):
        return None
    peak, wd, lr, _ = max(shrinks)
    if peak <= t.shrink_per_step:
        return None
    limit = t.shrink_per_step
    first = next(epoch for shrink, _, _, epoch in shrinks if shrink > limit)
    return Finding(
        "weight_decay",
        f"weight decay {wd:.3g} at learning rate {lr:.3g} (SGD) shrinks every weight by "
        f"{peak:.1e} per step, above the {limit:.1e} past which the calibration runs "
        "collapsed (docs/causes.md).",
        "Lower the weight decay (1e-4 to 5e-4 for SGD; Tian, Chen & Ganguli, ICML 2021, "
        "Sec. 4: a large weight decay makes the trivial solution the only stable one).",
        first,
    )


def guard_findings(
    history: Sequence[EpochRecord],
    kind: VerdictKind,
    configuration: Mapping[str, Any] | None = None,
    thresholds: CauseThresholds = CAUSE_THRESHOLDS,
    scale_only: bool = False,
) -> tuple[list[Finding], list[str]]:
    """Every guard check that fires at the last epoch of ``history``, whatever the verdict
    (the bench counts them on healthy runs as false alarms), and the signals read.
    ``scale_only``: the collapse is the raw z shrinking with its directions intact."""
    reader = _Reader(history, scale_only)
    found = [
        _dino(reader, thresholds),
        _target_network(reader, thresholds),
        _stop_gradient(reader, thresholds, configuration),
        _predictor(reader, thresholds, configuration),
        _negatives(reader, thresholds, configuration),
        _balancing(reader, thresholds),
        _variance_term(reader, thresholds, configuration),
        _decorrelation(reader, thresholds, kind),
        _sigreg(reader, thresholds, configuration),
        _weight_decay(reader, thresholds, configuration, kind),
    ]
    return [f for f in found if f is not None], reader.checked


# Guards named from the run's configuration (no probe can see them): there from epoch 0,
# they warn of nothing.
CONFIGURATION_GUARDS: frozenset[str] = frozenset({"stop_gradient", "predictor", "negatives"})


def guard_warnings(
    history: Sequence[EpochRecord],
    configuration: Mapping[str, Any] | None = None,
    thresholds: CauseThresholds = CAUSE_THRESHOLDS,
) -> list[str]:
    """The guards whose measured signal fires at the last epoch while the embedding is still
    healthy, one sentence each: a guard failing before the embedding shows it (DINO's
    teacher on a few prototypes while z keeps its directions). Measured on the zoo
    (docs/causes.md, "Early warning, measured"): such a signal came before 26 of 102
    collapses, and on 16 of 82 runs that stayed healthy within 10 epochs, every one of them
    a run with a guard weakened."""
    found, _ = guard_findings(history, "healthy", configuration, thresholds)
    return [
        f"a guard's signal fires while the embedding is still healthy ({f.guard}): "
        f"{f.reason[0].lower() + f.reason[1:]}"
        for f in found
        if f.guard not in CONFIGURATION_GUARDS and f.guard != "undetermined"
    ]


def _signal_values(
    history: Sequence[EpochRecord], names: list[str], configuration: Mapping[str, Any] | None
) -> str:
    """'name value, ...' of the signals present at the last epoch, and of the configuration's
    fields among ``names`` that the run gave ("configuration.stop_gradient True")."""
    reader = _Reader(history)
    values = []
    given = configuration or {}
    for name in names:
        if name.startswith(_CONFIGURATION):
            field = name.removeprefix(_CONFIGURATION)
            if field in given:
                values.append(f"{name} {given[field]}")
            continue
        value = reader.last(name)
        if value is not None:
            values.append(f"{name} {value:.3g}")
    return ", ".join(values)


def diagnose_cause(
    history: Sequence[EpochRecord],
    kind: VerdictKind,
    onset_epoch: int | None,
    configuration: Mapping[str, Any] | None = None,
    thresholds: CauseThresholds = CAUSE_THRESHOLDS,
    scale_only: bool = False,
) -> Cause | None:
    """The cause of the verdict ``kind`` at the last epoch of ``history``: None when
    healthy, the one guard whose check fired, else ``undetermined`` with the signals read.

    ``configuration``: the run's configuration with the method's options at the top level
    (``{"stop_gradient": False, ...}``), read only for the guards no probe can see, and not
    when ``scale_only`` (the verdict saw the raw z shrink, its directions intact)."""
    if kind == "healthy":
        return None
    found, checked = guard_findings(history, kind, configuration, thresholds, scale_only)
    if len(found) == 1:
        one = found[0]
        return Cause(
            guard=one.guard,
            reason=one.reason[0].upper() + one.reason[1:],
            onset_epoch=one.onset_epoch if one.onset_epoch is not None else onset_epoch,
            advice=one.advice,
            signals_checked=checked,
        )
    values = _signal_values(history, checked, configuration)
    epoch = history[-1].epoch
    if found:
        guards = " and ".join(
            f.guard if f.guard != "undetermined" else "an ambiguous signature" for f in found
        )
        reason = (
            f"Several guards' signals fired ({guards}), so none is named: "
            + "; ".join(f.reason.rstrip(".") for f in found)
            + "."
        )
        advice = "Fix one at a time, starting with the first: " + " ".join(f.advice for f in found)
    else:
        unchecked = sorted(set(history[-1].logs) - set(checked))
        others = _signal_values(history, unchecked, None)
        read = f"at epoch {epoch}: {values}" if values else "none of them was logged"
        measured = f" ({read}; the run's other signals: {others})" if others else f" ({read})"
        reason = (
            f"No guard's signal singles out a cause among the {len(checked)} signals the "
            f"guards look for{measured}."
        )
        advice = (
            "Log the method's internals (docs/causes.md lists what each guard needs), or try "
            "a lower learning rate and weight decay (Tian, Chen & Ganguli, ICML 2021)."
        )
        last = history[-1].logs
        if TEACHER_ENTROPY in last and TEACHER_STUDENT_KL not in last:
            advice += (
                " A teacher's probabilities came without the student's: a DINO-style loop "
                "logs student= too, a clustering loop sends its codes as codes= "
                "(client/PROTOCOL.md, section 8)."
            )
    return Cause(
        guard="undetermined",
        reason=reason,
        onset_epoch=onset_epoch,
        advice=advice,
        signals_checked=checked,
    )


def configuration_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """A run config as the diagnosis reads it: its fields and its method's options at the
    top level (an external run's free-form config passes through the same way)."""
    options = config.get("options")
    flat = {k: v for k, v in config.items() if k != "options"}
    if isinstance(options, Mapping):
        flat.update(options)
    return flat
