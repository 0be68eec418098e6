"""PyTorch Lightning callback: embed a fixed probe set after every epoch and send it to
Collapse Lab (``pip install 'collapse-lab-client[lightning]'``).

::

    from collapse_lab.lightning import CollapseLabCallback

    callback = CollapseLabCallback("http://localhost:8000", probe=probe_images, labels=probe_labels)
    trainer = Trainer(max_epochs=100, callbacks=[callback])
    trainer.fit(model, train_loader)

The default ``embed`` follows lightly's and solo-learn's naming: ``h = module.backbone(x)``
and ``z = module.projection_head(h)`` (or ``module.projector(h)``; a DINO-style module's
``student_backbone`` and ``student_head``). Anything else: pass
``embed=lambda module, x: (h, z)``.

The method internals (the mechanism panels and the cause of a collapse) are picked up by the
same names where they exist (:func:`default_internals`): a target branch
(``teacher_backbone``/``teacher_head``, lightly's ``backbone_momentum``/
``projection_head_momentum``, solo-learn's ``momentum_backbone``/``momentum_projector``), a
predictor (``prediction_head`` or ``predictor``: its outputs, and its matrix when linear), a
``momentum`` attribute (or solo-learn's ``momentum_updater.cur_tau``), the optimiser's
learning rate and weight decay. With a teacher branch and a DINO-style criterion (lightly's
``DINOLoss`` in ``module.criterion``, ``loss_fn`` or ``dino_loss``), the teacher's and the
student's probabilities are sent instead of the teacher's output, with both temperatures and
the centre's norm; with lightly's ``SwaVLoss`` there, its Sinkhorn ε and temperature, and
with ``module.prototypes`` (lightly's ``SwaVPrototypes``) the codes the loss balances.
Anything else: pass
``internals=lambda module, x, z: {"teacher": ..., "student": ...}``.
"""

from __future__ import annotations

import inspect
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, RandomSampler

try:
    from lightning.pytorch import Callback, LightningModule, Trainer
except ImportError:  # the older standalone package
    try:
        from pytorch_lightning import (  # type: ignore[assignment]
            Callback,
            LightningModule,
            Trainer,
        )
    except ImportError as error:
        raise ImportError(
            "collapse_lab.lightning needs PyTorch Lightning: "
            "pip install 'collapse-lab-client[lightning]'"
        ) from error

from .monitor import CollapseLabWarning, Monitor, _claim_default_key, default_resume_key

EmbedFn = Callable[[nn.Module, Tensor], tuple[Tensor | None, Tensor]]
# (module, x, z) -> per-sample internals of the batch: "target", "p", "teacher", "student",
# "codes"
InternalsFn = Callable[[nn.Module, Tensor, Tensor], Mapping[str, Tensor]]
# (target backbone, target head) attribute names: DINO-style, lightly's BYOL, solo-learn's
_TARGET_BRANCHES = (
    ("teacher_backbone", "teacher_head"),
    ("backbone_momentum", "projection_head_momentum"),
    ("momentum_backbone", "momentum_projector"),
)
_ONLINE_BRANCHES = (
    ("student_backbone", "student_head"),
    ("backbone", "projection_head"),
    ("backbone", "projector"),
)
# Attributes that may hold the criterion (lightly's examples call it "criterion"): a
# DINO-style one has student_temp, teacher_temp and a tensor center, as lightly's DINOLoss;
# a SwAV-style one sinkhorn_epsilon and temperature, as lightly's SwaVLoss.
_CRITERIA = ("criterion", "loss_fn", "dino_loss", "swav_loss")
# log_epoch's own parameters (internals and schedules included): a logged metric of one of
# these names is not forwarded, it would meet the keyword the callback passes itself
_RESERVED = frozenset(inspect.signature(Monitor.log_epoch).parameters) - {"self", "scalars"}


def _branch(
    module: nn.Module, names: tuple[tuple[str, str], ...]
) -> tuple[nn.Module, nn.Module] | None:
    """The first (backbone, head) pair of submodules the module has by these names."""
    for backbone, head in names:
        pair = getattr(module, backbone, None), getattr(module, head, None)
        if isinstance(pair[0], nn.Module) and isinstance(pair[1], nn.Module):
            return pair[0], pair[1]
    return None


def default_embed(module: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(h, z)`` = ``(backbone(x) flattened, projection_head(h))`` by the first online
    branch's names in ``_ONLINE_BRANCHES``: a DINO-style module's student, lightly's and
    solo-learn's (``projector`` for the latter)."""
    branch = _branch(module, _ONLINE_BRANCHES)
    if branch is None:
        names = ", ".join(f"{b} and {h}" for b, h in _ONLINE_BRANCHES)
        raise AttributeError(
            f"{type(module).__name__} has none of {names}: "
            "pass embed=callable(module, x) -> (h, z) to CollapseLabCallback"
        )
    backbone, head = branch
    h = backbone(x).flatten(start_dim=1)
    return h, head(h)


def _numbers(found: Any, *names: str) -> bool:
    """Whether ``found`` has a real number (not a bool) in each attribute of ``names``."""
    values = [getattr(found, name, None) for name in names]
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _criterion(module: nn.Module, fits: Callable[[Any], bool]) -> Any:
    """The first of the module's ``_CRITERIA`` attributes that ``fits``, else None."""
    for name in _CRITERIA:
        found = getattr(module, name, None)
        if found is not None and fits(found):
            return found
    return None


def _dino_criterion(module: nn.Module) -> Any:
    """The module's DINO-style criterion (both temperatures and a tensor ``center``, as
    lightly's ``DINOLoss``) when it also has a teacher branch, else None."""
    if _branch(module, _TARGET_BRANCHES) is None:
        return None
    return _criterion(
        module,
        lambda c: (
            isinstance(getattr(c, "center", None), Tensor)
            and _numbers(c, "student_temp", "teacher_temp")
        ),
    )


def _swav_criterion(module: nn.Module) -> Any:
    """The module's SwAV-style criterion (a ``sinkhorn_epsilon`` and a ``temperature``, as
    lightly's ``SwaVLoss``), else None."""
    return _criterion(module, lambda c: _numbers(c, "sinkhorn_epsilon", "temperature"))


def _teacher_temperature(module: nn.Module, criterion: Any) -> float:
    """The temperature lightly's DINOLoss sharpens with when called with
    ``epoch=module.current_epoch``: its warm-up schedule's value for the first
    ``warmup_teacher_temp_epochs`` epochs, ``teacher_temp`` after (and without an epoch)."""
    epoch = getattr(module, "current_epoch", None)
    schedule = getattr(criterion, "teacher_temp_schedule", None)
    warmup = getattr(criterion, "warmup_teacher_temp_epochs", 0)
    if isinstance(epoch, int) and schedule is not None and epoch < warmup:
        return float(schedule[epoch])
    return float(criterion.teacher_temp)


def _predictor(module: nn.Module) -> nn.Module | None:
    for name in ("prediction_head", "predictor"):
        found = getattr(module, name, None)
        if isinstance(found, nn.Module):
            return found
    return None


def default_internals(module: nn.Module, x: Tensor, z: Tensor) -> dict[str, Tensor]:
    """The per-sample internals lightly's and solo-learn's names give: ``target`` the target
    branch's projection of x, ``p`` the predictor's output for z (the target's width).

    With a DINO-style criterion, ``teacher`` = softmax((teacher output − center) / τ_t)
    instead of ``target``, and ``student`` = softmax(z / τ_s) when z (the student head's
    output under :func:`default_embed`) has the teacher's width. With a SwAV-style criterion
    and ``module.prototypes`` taking z's width, ``codes`` (:func:`swav_codes`)."""
    found: dict[str, Tensor] = {}
    branch = _branch(module, _TARGET_BRANCHES)
    if branch is not None:
        backbone, head = branch
        out = head(backbone(x).flatten(start_dim=1))
        criterion = _dino_criterion(module)
        if criterion is None:
            found["target"] = out
        else:
            # Centred and sharpened as the loss does (client/PROTOCOL.md section 8): the
            # server reads the entropies of these, not of the logits.
            center = criterion.center.float().reshape(-1)
            temperature = _teacher_temperature(module, criterion)
            found["teacher"] = torch.softmax((out.float() - center) / temperature, dim=1)
            if z.shape[1] == center.numel():
                found["student"] = torch.softmax(z.float() / criterion.student_temp, dim=1)
    predictor = _predictor(module)
    if predictor is not None:
        found["p"] = predictor(z)
    swav, prototypes = _swav_criterion(module), getattr(module, "prototypes", None)
    if swav is not None and isinstance(prototypes, nn.Module) and "teacher" not in found:
        layer = next((m for m in prototypes.modules() if isinstance(m, nn.Linear)), None)
        if layer is not None and layer.in_features == z.shape[1]:
            scores = prototypes(nn.functional.normalize(z.float(), dim=1))
            first = scores[0] if isinstance(scores, list | tuple) else scores  # heads: first
            found["codes"] = swav_codes(
                first, int(getattr(swav, "sinkhorn_iterations", 3)), swav.sinkhorn_epsilon
            )
    return found


def swav_codes(scores: Tensor, iterations: int, epsilon: float) -> Tensor:
    """SwAV's codes for a batch (Caron et al., NeurIPS 2020, Sec. 3.1 and Algorithm 1):
    Sinkhorn-Knopp on exp(scores / ε), ``iterations`` alternate normalisations towards equal
    prototype usage, as lightly's ``sinkhorn`` (non-distributed); each row then sums to 1
    (with 0 iterations, a softmax of scores / ε).

    scores: (B, K) cosine similarities of the normalised embeddings to the prototypes.
    Returns (B, K) probabilities."""
    q = torch.exp((scores.float() - scores.max()) / epsilon).T  # (K, B); the max cancels
    q = q / q.sum()
    for _ in range(iterations):
        q = q / q.sum(dim=1, keepdim=True)  # each prototype used equally
        q = q / q.sum(dim=0, keepdim=True) / q.shape[1]  # each sample the same mass, 1/B
    codes = q.T
    return codes / codes.sum(dim=1, keepdim=True)


_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)  # SyncBatchNorm would all-reduce
_BatchNorm = nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d


def _initial_batchnorms(
    module: nn.Module,
) -> list[tuple[_BatchNorm, tuple[dict[str, Tensor], float | None]]]:
    """The module's BatchNorm layers that train (in training mode now) but never ran in it,
    with their buffers and momentum: their running statistics are still the initial mean 0
    and variance 1, not the data's, and in eval mode they give every image nearly the same z
    (an untrained CNN's probe at random-pair cosine 1.00), an epoch 0 that reads collapsed.
    The probe measures them with its own statistics, as Collapse Lab's own runs do
    (workers/engine/trainer.py), and they are put back afterwards. A layer frozen in eval
    mode normalises by its running statistics in training too: it is left as it is."""
    return [
        (m, ({name: b.clone() for name, b in m.named_buffers(recurse=False)}, m.momentum))
        for m in module.modules()
        if isinstance(m, _BATCHNORMS)
        and m.training
        and m.track_running_stats
        and m.num_batches_tracked is not None
        and int(m.num_batches_tracked) == 0
    ]


class _Measured(NamedTuple):
    h: Tensor | None
    z: Tensor
    labels: Tensor | None
    views: tuple[Tensor, Tensor] | None
    internals: dict[str, Tensor]
    predictor_weight: Tensor | None
    schedules: dict[str, float]


def _first_optimizer(trainer: Trainer) -> torch.optim.Optimizer | None:
    """The trainer's first optimiser, None before they are set up."""
    optimizers = getattr(trainer, "optimizers", None) or []
    return optimizers[0] if optimizers else None


def model_internals(module: nn.Module, trainer: Trainer) -> tuple[Tensor | None, dict[str, float]]:
    """The internals of the model rather than of the probe: a linear predictor's matrix,
    and the scalars ``target_param_distance`` (||θ_target − θ_online|| / ||θ_online|| over
    the target branch and its online counterpart, when the names pair them),
    ``ema_momentum`` (a ``momentum`` attribute, only beside a target branch, or solo-learn's
    ``momentum_updater.cur_tau``), ``lr``, ``weight_decay``, and with a DINO-style criterion
    ``teacher_temperature``, ``student_temperature`` and ``center_norm``, with a SwAV-style
    criterion ``sinkhorn_epsilon`` and ``prediction_temperature``."""
    scalars: dict[str, float] = {}
    predictor = _predictor(module)
    weight = predictor.weight.detach() if isinstance(predictor, nn.Linear) else None
    branch = _branch(module, _TARGET_BRANCHES)
    online = _branch(module, _ONLINE_BRANCHES)
    if branch is not None and online is not None:
        # detached: the callback runs outside the training step's no_grad
        target_params = [p.detach() for m in branch for p in m.parameters()]
        online_params = [p.detach() for m in online for p in m.parameters()]
        if [p.shape for p in target_params] == [p.shape for p in online_params]:
            difference = sum(
                float((t - o).double().pow(2).sum())
                for t, o in zip(target_params, online_params, strict=True)
            )
            norm = sum(float(o.double().pow(2).sum()) for o in online_params)
            if norm > 0:
                scalars["target_param_distance"] = (difference / norm) ** 0.5
    # Only a module with a target branch has an EMA momentum: elsewhere an attribute named
    # momentum is likely the optimiser's, and read as the EMA's (0: the target is the online
    # network) it would name the wrong cause.
    momentum = getattr(module, "momentum", None) if branch is not None else None
    updater = getattr(module, "momentum_updater", None)
    if momentum is None and updater is not None:
        momentum = getattr(updater, "cur_tau", None)
    if isinstance(momentum, int | float) and not isinstance(momentum, bool):
        scalars["ema_momentum"] = float(momentum)
    criterion = _dino_criterion(module)
    if criterion is not None:
        scalars["teacher_temperature"] = _teacher_temperature(module, criterion)
        scalars["student_temperature"] = float(criterion.student_temp)
        scalars["center_norm"] = float(criterion.center.norm())
    swav = _swav_criterion(module)
    if swav is not None:
        scalars["sinkhorn_epsilon"] = float(swav.sinkhorn_epsilon)
        scalars["prediction_temperature"] = float(swav.temperature)
    optimizer = _first_optimizer(trainer)
    if optimizer is not None:
        group = optimizer.param_groups[0]
        for name in ("lr", "weight_decay"):
            if isinstance(group.get(name), int | float):
                scalars[name] = float(group[name])
    return weight, scalars


class CollapseLabCallback(Callback):
    """Logs epoch 0 (the untrained network) when training starts, then every
    ``every_n_epochs`` train epochs, and the last epoch when fit ends; closes the run (failed
    on an exception).

    ``probe``: a fixed (N, ...) tensor of probe inputs, or a DataLoader over them without
    shuffling (``(x, y, ...)`` batches give the labels when ``labels`` is not passed); its
    transforms must be deterministic, the probe being the same images every epoch.
    ``view_transform``: optional batched augmentation applied twice to each probe batch on
    the module's device; the two embeddings are sent as positive pairs (alignment, positive
    cosine), at the cost of two more forward passes.

    Embedding runs under ``torch.no_grad`` in eval mode (each submodule's mode restored
    afterwards), in batches of ``batch_size``, on global rank 0 only; epoch k is the network
    after k training epochs.

    **Resume**: the run's resume key and id are saved in the checkpoint (the callback's
    state), so ``trainer.fit(model, ckpt_path=...)`` continues the same run (same page, the
    epoch-0 baseline kept) instead of starting one; the key is ``resume=`` when given, else
    the scheduler's (a requeued SLURM job), else a new one per callback.

    **Stop on collapse**: with ``stop_on_collapse=N``, once the server's verdict has been
    complete collapse for N logged epochs, ``trainer.should_stop`` is set (on every rank)
    and the run page says the client stopped the run at that epoch. The verdict comes from
    the server a little after each upload (``bench/bench_stop_delay.py``), so the stop
    lands at the first epoch end after it. ``loss_key``
    names the logged metric sent as the loss; the other scalar ``trainer.callback_metrics``
    go along as scalars. ``config`` defaults to the module's hyperparameters. Further
    keyword arguments go to :class:`Monitor` (``token``, ``name``, ``precision``, buffer
    sizes); ``self.monitor`` is it, once fit starts (a later fit with this callback that
    starts from epoch 0 again gets a run of its own; one that goes on from the last logged
    epoch continues the run). With sharded strategies (FSDP,
    DeepSpeed stage 3) rank 0 cannot run the model alone: pass an ``embed`` that gathers.

    **Method internals**: ``internals(module, x, z)`` returns the batch's per-sample
    internals (``target``, ``p``, ``teacher``, ``student``, ``codes``; :meth:`Monitor.log_epoch`);
    :func:`default_internals` finds the target branch and the predictor by lightly's and
    solo-learn's names, and a DINO-style module's teacher and student probabilities;
    ``internals=None`` sends none. :func:`model_internals` adds the
    linear predictor's matrix, the target's parameter distance, the EMA momentum, the
    learning rate, the weight decay, DINO's temperatures and centre norm, and SwAV's
    Sinkhorn ε and temperature.
    """

    def __init__(
        self,
        url: str | None,
        probe: Tensor | DataLoader[Any],
        labels: Any = None,
        embed: EmbedFn = default_embed,
        every_n_epochs: int = 1,
        *,
        view_transform: Callable[[Tensor], Tensor] | None = None,
        batch_size: int = 512,
        loss_key: str = "train_loss",
        config: Mapping[str, Any] | None = None,
        finish_timeout: float = 60.0,
        stop_on_collapse: int | None = None,
        resume: str | None = None,
        internals: InternalsFn | None = default_internals,
        **monitor_kwargs: Any,
    ) -> None:
        super().__init__()
        if every_n_epochs < 1:
            raise ValueError("every_n_epochs must be at least 1")
        if stop_on_collapse is not None and stop_on_collapse < 1:
            raise ValueError("stop_on_collapse must be at least 1 (logged epochs)")
        if isinstance(probe, DataLoader) and isinstance(probe.sampler, RandomSampler):
            raise ValueError("the probe DataLoader shuffles: the probe must be the same each epoch")
        if not isinstance(probe, Tensor | DataLoader):
            raise TypeError(f"probe must be a Tensor or a DataLoader, not {type(probe).__name__}")
        self.url = url
        self.probe = probe
        self.labels = labels
        self.embed = embed
        self.internals = internals
        self.every_n_epochs = every_n_epochs
        self.view_transform = view_transform
        self.batch_size = batch_size
        self.loss_key = loss_key
        self.config = config
        self.finish_timeout = finish_timeout
        self.monitor_kwargs = monitor_kwargs
        self.stop_on_collapse = stop_on_collapse
        self.resume_key = resume
        self._resume_given = resume  # what a later fit that starts over begins from
        self.run_id: str | None = None  # of the run this fit logs to (saved in checkpoints)
        self.monitor: Monitor | None = None
        self._last_logged: int | None = None
        self._stop_reason: str | None = None  # stop_on_collapse's decision, recorded at fit end
        # the metrics the last validation logged and the epoch it ran in: Lightning keeps
        # them in callback_metrics until the next one, so an epoch without validation
        # would send them again as its own
        self._validation_metrics: set[str] = set()
        self._validated_epoch: int | None = None
        self._before_validation: dict[str, Any] = {}

    # ----------------------------------------------------------------- checkpoint state

    def state_dict(self) -> dict[str, Any]:
        return {"resume_key": self.resume_key, "run_id": self.run_id}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """A fit resumed from a checkpoint continues the checkpointed run."""
        self.resume_key = state_dict.get("resume_key") or self.resume_key
        self.run_id = state_dict.get("run_id")

    # ----------------------------------------------------------------- Lightning hooks

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Not on_fit_start: a resumed fit restores the epoch counter (and, with some
        # strategies, the callback state) after it.
        if not trainer.is_global_zero or (self.monitor is not None and not self.monitor.closed):
            return
        if getattr(trainer, "fast_dev_run", False):  # a smoke test, as Lightning's loggers skip
            return
        if self.monitor is not None and trainer.current_epoch == 0:
            # a later fit with this callback that starts over (epoch 0 again): a new training,
            # so a run of its own; one that goes on from a checkpoint continues the run
            self.resume_key, self.run_id, self._last_logged = self._resume_given, None, None
        self._stop_reason = None
        config = self.config if self.config is not None else dict(pl_module.hparams)
        # the optimiser's class tells the server how weight decay acts (plain SGD only is
        # read as a cause: workers/engine/cause.py); the researcher's own key wins
        optimizer = _first_optimizer(trainer)
        if optimizer is not None and "optimizer" not in config:
            config = {**config, "optimizer": type(optimizer).__name__}
        # measured before the run is opened: a module the probe cannot be embedded with (no
        # heads by the expected names, an embed that raises) fails the fit with its error
        # and leaves no empty failed run behind
        first = self._measure(trainer, pl_module)
        if self.resume_key is None:  # the scheduler's key, else one this fit's checkpoints keep
            name = self.monitor_kwargs.get("name") or "lightning"
            self.resume_key = _claim_default_key(default_resume_key(name, config))
            self.resume_key = self.resume_key or f"lightning:{uuid.uuid4().hex}"
        self.monitor = Monitor(
            self.url,
            config={**config, "max_epochs": trainer.max_epochs},
            source={"integration": "lightning"},
            resume=self.resume_key,
            **self.monitor_kwargs,
        )
        if self.run_id is not None and self.monitor.run_id not in (None, self.run_id):
            warnings.warn(
                f"Collapse Lab: the checkpoint's run {self.run_id} was not found again; "
                f"logging to run {self.monitor.run_id}",
                CollapseLabWarning,
                stacklevel=2,
            )
        self.run_id = self.monitor.run_id or self.run_id
        stored = self.monitor.last_stored_epoch
        if stored is None or trainer.current_epoch > stored:  # resumed: the run has it
            self._send(trainer, trainer.current_epoch, first)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epoch = trainer.current_epoch + 1  # current_epoch still counts the one just trained
        if self.monitor is not None and epoch % self.every_n_epochs == 0:
            self._log(trainer, pl_module, epoch)
        if self.stop_on_collapse is not None:
            self._stop_if_collapsed(trainer, epoch)

    def _stop_if_collapsed(self, trainer: Trainer, epoch: int) -> None:
        """Rank 0 decides from the server's verdict; every rank stops together."""
        # one snapshot: the sender thread may replace the verdict meanwhile
        verdict, streak = self.monitor.judgement if self.monitor is not None else (None, 0)
        assert self.stop_on_collapse is not None
        decision = trainer.strategy.broadcast(streak >= self.stop_on_collapse, src=0)
        if not decision or trainer.should_stop:
            return
        trainer.should_stop = True
        if self.monitor is not None:
            onset = verdict.onset_epoch if verdict is not None else None
            # The verdict may be of an earlier epoch than this one: epochs faster than the
            # server's measuring run ahead of it
            judged = (
                f", in the server's verdict of epoch {verdict.epoch}" if verdict is not None else ""
            )
            # recorded at fit end, at the epoch training really stopped (min_epochs may
            # keep it going after should_stop)
            self._stop_reason = (
                f"complete collapse held {streak} logged epochs (since epoch {onset}{judged}, "
                f"read after epoch {epoch}); stop_on_collapse={self.stop_on_collapse}"
            )

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._before_validation = dict(trainer.callback_metrics)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        before = self._before_validation
        self._validation_metrics = {
            name
            for name, value in trainer.callback_metrics.items()
            if name not in before or not torch.equal(before[name], value)
        }
        self._validated_epoch = trainer.current_epoch

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.monitor is None or self.monitor.closed:
            return
        last = max(self._last_logged or -1, self.monitor.last_stored_epoch or -1)
        if trainer.current_epoch > last:
            self._log(trainer, pl_module, trainer.current_epoch)
        if self._stop_reason is not None and trainer.should_stop:
            self.monitor.record_stop(trainer.current_epoch, self._stop_reason)
        self.monitor.finish(timeout=self.finish_timeout)

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        if self.monitor is not None:
            error = f"{type(exception).__name__}: {exception}"
            self.monitor.finish(timeout=self.finish_timeout, error=error)

    # ----------------------------------------------------------------- embedding

    def _log(self, trainer: Trainer, pl_module: LightningModule, epoch: int) -> None:
        self._send(trainer, epoch, self._measure(trainer, pl_module))

    def _measure(self, trainer: Trainer, pl_module: LightningModule) -> _Measured:
        """What one epoch sends that the module itself gives: the probe's embedding and
        internals, the predictor's weight and the schedules."""
        return _Measured(*self._embed_probe(pl_module), *model_internals(pl_module, trainer))

    def _send(self, trainer: Trainer, epoch: int, measured: _Measured) -> None:
        assert self.monitor is not None
        h, z, labels, views, internals, weight, schedules = measured
        stale = self._validation_metrics if self._validated_epoch != epoch - 1 else set()
        logged = {
            name: value
            for name, value in trainer.callback_metrics.items()
            if isinstance(value, Tensor) and value.numel() == 1 and name not in stale
        }
        loss = logged.pop(self.loss_key, None)  # before the filter: loss_key may be "loss"
        metrics = {
            name: value
            for name, value in logged.items()
            if name not in _RESERVED and name not in schedules
        }
        arrays_and_scalars: dict[str, Any] = {**internals, **metrics}  # no name in both
        self.monitor.log_epoch(
            epoch,
            z,
            h=h,
            labels=self.labels if self.labels is not None else labels,
            views=views,
            loss=loss,
            predictor_weight=weight,
            schedules=schedules,
            **arrays_and_scalars,
        )
        self._last_logged = epoch

    def _batches(self) -> Iterator[tuple[Tensor, Tensor | None]]:
        if isinstance(self.probe, Tensor):
            for start in range(0, len(self.probe), self.batch_size):
                yield self.probe[start : start + self.batch_size], None
            return
        for batch in self.probe:
            if isinstance(batch, tuple | list):
                labels = batch[1] if len(batch) > 1 and isinstance(batch[1], Tensor) else None
                yield batch[0], labels
            else:
                yield batch, None

    def _probe_statistics(self, module: LightningModule, norms: list[_BatchNorm]) -> None:
        """The probe's own mean and variance in each of ``norms`` (exact averages over its
        batches), for the eval-mode passes that follow: the passes that measure the probe
        (the online branch, and the internals' target or teacher branch) run once with them
        in training mode; the rest of the module stays in eval."""
        if not norms:
            return
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average over the batches
            norm.train()
        for x, _ in self._batches():
            if len(x) < 2:  # one row has no variance to measure
                continue
            x = x.to(module.device)
            _, z = self.embed(module, x)
            if self.internals is not None:
                self.internals(module, x, z)
        for norm in norms:
            norm.eval()

    def _embed_probe(
        self, module: LightningModule
    ) -> tuple[
        Tensor | None, Tensor, Tensor | None, tuple[Tensor, Tensor] | None, dict[str, Tensor]
    ]:
        """(h, z, labels from the loader, views, internals) of the whole probe, on the CPU."""
        # Restore each submodule's own mode: a frozen backbone kept in eval stays in eval.
        modes = [(m, m.training) for m in module.modules()]
        initial = _initial_batchnorms(module)
        module.eval()
        hs, zs, ys, views_a, views_b = [], [], [], [], []
        parts: dict[str, list[Tensor]] = {}
        try:
            with torch.no_grad():
                self._probe_statistics(module, [norm for norm, _ in initial])
                for x, y in self._batches():
                    x = x.to(module.device)
                    h, z = self.embed(module, x)
                    zs.append(z.float().cpu())
                    if self.internals is not None:
                        for name, value in self.internals(module, x, z).items():
                            parts.setdefault(name, []).append(value.float().cpu())
                    if h is not None:
                        hs.append(h.float().cpu())
                    if y is not None:
                        ys.append(y.cpu())
                    if self.view_transform is not None:
                        views_a.append(self.embed(module, self.view_transform(x))[1].float().cpu())
                        views_b.append(self.embed(module, self.view_transform(x))[1].float().cpu())
        finally:
            for submodule, training in modes:
                submodule.training = training
            for norm, (buffers, momentum) in initial:  # training starts from its own state
                for name, value in buffers.items():
                    getattr(norm, name).copy_(value)
                norm.momentum = momentum
        return (
            torch.cat(hs) if len(hs) == len(zs) else None,
            torch.cat(zs),
            torch.cat(ys) if ys and len(ys) == len(zs) else None,
            (torch.cat(views_a), torch.cat(views_b)) if views_a else None,
            {name: torch.cat(values) for name, values in parts.items() if len(values) == len(zs)},
        )
