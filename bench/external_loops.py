"""The cause of an external run's collapse for the families besides DINO, on loops the
calibration never saw.

Each loop is a plain PyTorch training loop written here, not the engine's methods: an MLP
encoder with BatchNorm (64 -> 256 -> 128 = h) and projector (128 -> 128 -> 64 = z; other
widths and probe sizes with ``--z-dim`` and ``--probe-size``) on 64-d inputs (sklearn's
digits, or ten Gaussian clusters in 64-d), masked-and-noised views, 20 epochs. Each epoch it
logs its probe the way a researcher's loop would through ``collapse_lab.Monitor.log_epoch``:
z, h, labels, the loss, and the internals its family has (``target=``/``p=`` for SimSiam and
BYOL, two views and the temperature for SimCLR, its codes after balancing as ``codes=`` for
SwAV, ``loss_terms`` for VICReg and Barlow Twins, the schedules and, for the guards no probe
can see, the configuration's ``stop_gradient``, ``predictor`` or ``negatives`` flag). Each
epoch is measured in-process by the ingest worker's own code
(:func:`workers.engine.probe.probe_epoch_record`, the schedules renamed by the client's
``SCHEDULE_ALIASES``), and one row per run is printed: verdict, cause, the guard the loop
switched off. A cause other than that guard is wrong (✗); ``undetermined`` is not wrong.

    python -m bench.external_loops                      # 15 loops x 2 datasets x 2 seeds
    python -m bench.external_loops --seeds 2 --loops "byol: momentum 0"
    python -m bench.external_loops --z-dim 512 --probe-size 128  # fewer rows than dimensions
    python -m bench.external_loops --minimal            # z alone, no configuration
    python -m bench.external_loops --weight-decay-grid  # SimSiam's SGD weight decay, longer
"""

from __future__ import annotations

import argparse
import copy
import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from collapse_lab import Monitor
from collapse_lab.monitor import SCHEDULE_ALIASES
from sklearn.datasets import load_digits
from torch import nn

from contract import EpochRecord
from workers.engine.probe import probe_epoch_record

EPOCHS = 20
BATCH_SIZE = 128
PROBE_SIZE = 512
SWAV_PROTOTYPES = 30
SGD_LR = 0.05  # SimSiam's loops (momentum 0.9); the others run AdamW at 1e-3
VIEWS_LOGGED = 256  # probe rows whose two views SimCLR logs for the InfoNCE split


class InProcessLogger:
    """``Monitor.log_epoch``'s keywords, each epoch measured as the ingest worker measures an
    upload: the schedules renamed as the client renames them, then
    :func:`probe_epoch_record` over the run's history with the run's configuration."""

    def __init__(self, configuration: Mapping[str, Any] | None = None) -> None:
        self.configuration = dict(configuration or {})
        self.history: list[EpochRecord] = []

    def log_epoch(
        self,
        epoch: int,
        z: torch.Tensor,
        h: torch.Tensor | None = None,
        labels: Any = None,
        views: tuple[torch.Tensor, torch.Tensor] | None = None,
        loss: float | None = None,
        *,
        loss_terms: Mapping[str, float] | None = None,
        schedules: Mapping[str, float] | None = None,
        **internals: torch.Tensor,
    ) -> None:
        scalars: dict[str, float | None] = dict(loss_terms or {})
        for name, value in (schedules or {}).items():
            scalars[SCHEDULE_ALIASES.get(name, name)] = value
        record = probe_epoch_record(
            epoch,
            z.numpy(),
            history=self.history,
            h=None if h is None else h.numpy(),
            views=None if views is None else (views[0].numpy(), views[1].numpy()),
            labels=None if labels is None else np.asarray(labels),
            loss=loss,
            scalars=scalars,
            internals={name: array.numpy() for name, array in internals.items()},
            configuration=self.configuration,
        )
        self.history.append(record)


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    digits = load_digits()
    return torch.tensor(digits.data, dtype=torch.float32), torch.tensor(digits.target)


def _clusters() -> tuple[torch.Tensor, torch.Tensor]:
    """2,000 points in ten Gaussian clusters in 64-d, each cluster its own covariance."""
    generator = torch.Generator().manual_seed(1234)
    labels = torch.arange(2000) % 10
    centres = 3 * torch.randn(10, 64, generator=generator)
    mixing = torch.randn(10, 64, 64, generator=generator) / 8
    noise = torch.randn(2000, 64, 1, generator=generator)
    return centres[labels] + (mixing[labels] @ noise).squeeze(-1), labels


DATASETS: dict[str, Callable[[], tuple[torch.Tensor, torch.Tensor]]] = {
    "digits": _digits,
    "clusters": _clusters,
}


def _mlp(*widths: int) -> nn.Sequential:
    """Linear -> BatchNorm -> ReLU between each pair of widths, a bare Linear at the end."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers += [nn.BatchNorm1d(b), nn.ReLU()]
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class Shape:
    """The width of z (the projector's hidden layer is max(128, z_dim), the predictor's
    bottleneck z_dim / 2) and the probe's rows."""

    z_dim: int = 64
    probe_size: int = PROBE_SIZE

    @property
    def name(self) -> str:
        return f"z{self.z_dim}, probe {self.probe_size}"


class Encoder(nn.Module):
    """x (B, 64) -> (h (B, 128), z (B, z_dim))."""

    def __init__(self, z_dim: int = 64) -> None:
        super().__init__()
        self.backbone = nn.Sequential(_mlp(64, 256, 128), nn.BatchNorm1d(128), nn.ReLU())
        self.projector = _mlp(128, max(128, z_dim), z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.backbone(x)
        return h, self.projector(h)


@dataclass
class Loop:
    """One external loop: its family, what it switches off, and the guard that names."""

    family: str
    settings: dict[str, Any] = field(default_factory=dict)
    guard: str | None = None  # None: every guard on


LOOPS: dict[str, Loop] = {
    "simsiam": Loop("simsiam"),
    "simsiam: no stop-gradient": Loop("simsiam", {"stop_gradient": False}, "stop_gradient"),
    "simsiam: no predictor": Loop("simsiam", {"predictor": False}, "predictor"),
    "simsiam: weight decay 0.2": Loop("simsiam", {"weight_decay": 0.2}, "weight_decay"),
    "byol": Loop("byol"),
    "byol: momentum 0": Loop("byol", {"momentum": 0.0}, "target_network"),
    "simclr": Loop("simclr"),
    "simclr: no negatives": Loop("simclr", {"negatives": False}, "negatives"),
    "vicreg": Loop("vicreg"),
    "vicreg: variance weight 0": Loop("vicreg", {"variance_weight": 0.0}, "variance_term"),
    "vicreg: covariance weight 0": Loop("vicreg", {"covariance_weight": 0.0}, "decorrelation"),
    "swav": Loop("swav"),
    "swav: no sinkhorn": Loop("swav", {"sinkhorn_iterations": 0}, "balancing"),
    "barlow twins": Loop("barlow"),
    "barlow twins: no off-diagonal": Loop("barlow", {"off_diagonal_weight": 0.0}, "decorrelation"),
}


def _negative_cosine(p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -F.cosine_similarity(p, target, dim=1).mean()


def _nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float, negatives: bool) -> torch.Tensor:
    """SimCLR's loss over 2B views (Chen et al., ICML 2020); without negatives only the
    positive pair's alignment term remains."""
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    if not negatives:
        return -(a * b).sum(1).mean() / temperature
    both = torch.cat([a, b])
    logits = both @ both.T / temperature
    logits.fill_diagonal_(float("-inf"))
    n = len(a)
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(logits, positives)


def _codes(scores: torch.Tensor, iterations: int, epsilon: float = 0.05) -> torch.Tensor:
    """SwAV's codes (Caron et al., NeurIPS 2020, Sec. 3.1): Sinkhorn-Knopp on exp(scores/eps)
    for equal prototype usage, rows summing to 1; with 0 iterations a plain softmax."""
    q = torch.exp((scores - scores.max()) / epsilon)
    for _ in range(iterations):
        q = q / q.sum(0, keepdim=True) / q.shape[1]
        q = q / q.sum(1, keepdim=True) / q.shape[0]
    return q / q.sum(1, keepdim=True)


def _vicreg_terms(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Invariance, unweighted variance hinge, covariance (Bardes et al., ICLR 2022, Eq. 1-4)."""
    invariance = F.mse_loss(a, b)
    variance = covariance = a.new_zeros(())
    for x in (a, b):
        x = x - x.mean(0)
        std = torch.sqrt(x.var(0) + 1e-4)
        variance = variance + F.relu(1 - std).mean() / 2
        cov = x.T @ x / (len(x) - 1)
        off = cov - torch.diag(torch.diag(cov))
        covariance = covariance + off.pow(2).sum() / x.shape[1]
    return invariance, variance, covariance


def _barlow_terms(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """On- and off-diagonal terms of the standardised cross-correlation (Zbontar et al.,
    ICML 2021, Eq. 1)."""
    a = (a - a.mean(0)) / (a.std(0) + 1e-5)
    b = (b - b.mean(0)) / (b.std(0) + 1e-5)
    c = a.T @ b / len(a)
    on = (1 - torch.diag(c)).pow(2).sum()
    off = (c - torch.diag(torch.diag(c))).pow(2).sum()
    return on, off


def loop_configuration(loop: Loop) -> dict[str, Any]:
    """The config the loop reports: its optimiser's name and the guards it switches off."""
    optimizer = "SGD" if loop.family == "simsiam" else "AdamW"
    flags = {key: value for key, value in loop.settings.items() if isinstance(value, bool)}
    return {"optimizer": optimizer} | flags


def run_loop(
    loop: Loop,
    dataset: str,
    seed: int,
    logger: Monitor | InProcessLogger,
    epochs: int = EPOCHS,
    shape: Shape = Shape(),
    minimal: bool = False,
) -> None:
    """Train ``loop`` for ``epochs`` epochs, logging epoch 0 (untrained) and each epoch to
    ``logger`` (a ``collapse_lab.Monitor`` or an :class:`InProcessLogger`); ``minimal``: z
    alone, as the least a researcher logs (no h, labels, loss, internals or schedules)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x, y = DATASETS[dataset]()
    x = (x - x.mean(0)) / (x.std(0) + 1e-3)
    order = torch.randperm(len(x), generator=generator)
    probe, probe_labels = x[order[: shape.probe_size]], y[order[: shape.probe_size]]
    s = loop.settings

    def augment(t: torch.Tensor) -> torch.Tensor:  # masked inputs and noise
        keep = torch.rand(t.shape, generator=generator) > 0.3
        return t * keep + 0.4 * torch.randn(t.shape, generator=generator)

    encoder = Encoder(shape.z_dim)
    predictor = _mlp(shape.z_dim, shape.z_dim // 2, shape.z_dim)
    prototypes = nn.Linear(shape.z_dim, SWAV_PROTOTYPES, bias=False)
    iterations = s.get("sinkhorn_iterations", 3)
    target = copy.deepcopy(encoder).requires_grad_(False)
    momentum = s.get("momentum", 0.99)
    with_predictor = s.get("predictor", True)
    params = [*encoder.parameters()]
    if loop.family in ("simsiam", "byol") and with_predictor:
        params += [*predictor.parameters()]
    if loop.family == "swav":
        params += [*prototypes.parameters()]

    def scores(z: torch.Tensor) -> torch.Tensor:  # cosine to each prototype
        return F.normalize(z, dim=1) @ F.normalize(prototypes.weight, dim=1).T

    optimizer: torch.optim.Optimizer
    if loop_configuration(loop)["optimizer"] == "SGD":
        lr, weight_decay = SGD_LR, s.get("weight_decay", 1e-4)
        optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    else:
        lr, weight_decay = 1e-3, 1e-5
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    temperature = 0.2

    def predict(z: torch.Tensor) -> torch.Tensor:
        return predictor(z) if with_predictor else z

    def step(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        (_, za), (_, zb) = encoder(a), encoder(b)
        if loop.family == "simsiam":
            stop = s.get("stop_gradient", True)
            ta, tb = (za.detach(), zb.detach()) if stop else (za, zb)
            loss = (_negative_cosine(predict(za), tb) + _negative_cosine(predict(zb), ta)) / 2
            return loss, {}
        if loop.family == "byol":
            with torch.no_grad():
                ta, tb = target(a)[1], target(b)[1]
            loss = (_negative_cosine(predict(za), tb) + _negative_cosine(predict(zb), ta)) / 2
            return loss, {}
        if loop.family == "simclr":
            return _nt_xent(za, zb, temperature, s.get("negatives", True)), {}
        if loop.family == "swav":
            sa, sb = scores(za), scores(zb)
            with torch.no_grad():
                qa, qb = _codes(sa, iterations), _codes(sb, iterations)
            swapped = (qa * F.log_softmax(sb / temperature, dim=1)).sum(1) + (
                qb * F.log_softmax(sa / temperature, dim=1)
            ).sum(1)
            return -swapped.mean() / 2, {}
        if loop.family == "vicreg":
            inv, var, cov = _vicreg_terms(za, zb)
            loss = (
                25 * inv
                + s.get("variance_weight", 25.0) * var
                + s.get("covariance_weight", 1.0) * cov
            )
            terms = {"loss_invariance": inv, "loss_variance": var, "loss_covariance": cov}
            return loss, {name: value.item() for name, value in terms.items()}
        on, off = _barlow_terms(za, zb)
        loss = on + s.get("off_diagonal_weight", 5e-3) * off
        return loss, {"loss_on_diagonal": on.item(), "loss_off_diagonal": off.item()}

    def log(epoch: int, loss: float | None, terms: Mapping[str, float]) -> None:
        encoder.eval()
        predictor.eval()
        target.eval()
        with torch.no_grad():
            h, z = encoder(probe)
            internals: dict[str, torch.Tensor] = {}
            views = None
            schedules = {"lr": lr, "weight_decay": weight_decay}
            if loop.family == "simsiam":
                # SimSiam's target branch is the online network on the other view
                internals = {"target": encoder(augment(probe))[1], "p": predict(z)}
            elif loop.family == "byol":
                internals = {"target": target(probe)[1], "p": predict(z)}
                schedules["momentum"] = momentum
            elif loop.family == "swav":
                internals = {"codes": _codes(scores(z), iterations)}  # after balancing
            elif loop.family == "simclr":
                rows = probe[:VIEWS_LOGGED]
                views = (encoder(augment(rows))[1], encoder(augment(rows))[1])
                schedules["temperature"] = temperature
            if minimal:  # the rest measured all the same: the random stream is unchanged
                logger.log_epoch(epoch, z)
            else:
                logger.log_epoch(
                    epoch,
                    z,
                    h,
                    labels=probe_labels,
                    views=views,
                    loss=loss,
                    loss_terms=terms,
                    schedules=schedules,
                    **internals,
                )
        encoder.train()
        predictor.train()
        target.train()

    log(0, None, {})
    for epoch in range(1, epochs + 1):
        sums: dict[str, float] = {}
        batches = torch.split(x[torch.randperm(len(x), generator=generator)], BATCH_SIZE)
        for batch in batches:
            if len(batch) < 2:
                continue
            loss, terms = step(augment(batch), augment(batch))
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            if loop.family == "byol":
                with torch.no_grad():
                    for t, o in zip(target.parameters(), encoder.parameters(), strict=True):
                        t.mul_(momentum).add_((1 - momentum) * o)
                    for tb, ob in zip(target.buffers(), encoder.buffers(), strict=True):
                        tb.copy_(ob)
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value / len(batches)
        log(epoch, loss.item(), sums)


# SimSiam's SGD weight decay at SGD_LR, 40 epochs: where the longer loops
# collapse against the check's per-step shrink limit (docs/causes.md, "Weight decay and the
# optimiser")
WEIGHT_DECAY_GRID = (0.02, 0.04, 0.06, 0.08, 0.12)
WEIGHT_DECAY_GRID_EPOCHS = 40


def weight_decay_grid(datasets: list[str], seeds: list[int]) -> None:
    print("| weight decay | lr × wd | dataset | " + " | ".join(f"seed {s}" for s in seeds) + " |")
    print("| ---: | ---: | --- |" + " --- |" * len(seeds))
    for weight_decay in WEIGHT_DECAY_GRID:
        loop = Loop("simsiam", {"weight_decay": weight_decay}, "weight_decay")
        for dataset in datasets:
            cells = []
            for seed in seeds:
                logger = InProcessLogger(loop_configuration(loop))
                run_loop(loop, dataset, seed, logger, WEIGHT_DECAY_GRID_EPOCHS)
                verdict = logger.history[-1].verdict
                assert verdict is not None
                onset = f"@{verdict.onset_epoch}" if verdict.onset_epoch is not None else ""
                cause = f" {verdict.cause.guard}" if verdict.cause else ""
                cells.append(f"{verdict.kind}{onset}{cause}")
            print(
                f"| {weight_decay} | {weight_decay * SGD_LR:.0e} | {dataset} | "
                + " | ".join(cells)
                + " |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--loops", default=",".join(LOOPS), help="names, comma-separated")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--z-dim", type=int, default=Shape.z_dim, help="width of z")
    parser.add_argument("--probe-size", type=int, default=Shape.probe_size, help="probe rows")
    parser.add_argument(
        "--minimal",
        action="store_true",
        help="log z alone, with no configuration (the guard can then only be undetermined)",
    )
    parser.add_argument(
        "--weight-decay-grid",
        action="store_true",
        help=f"SimSiam at weight decays {WEIGHT_DECAY_GRID}, {WEIGHT_DECAY_GRID_EPOCHS} epochs",
    )
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.weight_decay_grid:
        weight_decay_grid(args.datasets.split(","), seeds)
        return
    shape = Shape(args.z_dim, args.probe_size)
    print(f"{shape.name}" + (", z logged alone" if args.minimal else "") + "\n")
    print("| loop | dataset | seed | verdict | cause | expected | reason |")
    print("| --- | --- | ---: | --- | --- | --- | --- |")
    started = time.perf_counter()
    counts = {"right": 0, "undetermined": 0, "wrong": 0, "healthy": 0, "healthy, cause": 0}
    counts["control with an epoch not healthy"] = 0  # a false alarm, even if it passed
    for name in args.loops.split(","):
        loop = LOOPS[name.strip()]
        for dataset in args.datasets.split(","):
            for seed in seeds:
                logger = InProcessLogger({} if args.minimal else loop_configuration(loop))
                run_loop(loop, dataset, seed, logger, args.epochs, shape, args.minimal)
                if loop.guard is None and any(
                    r.verdict is not None and r.verdict.kind != "healthy" for r in logger.history
                ):
                    counts["control with an epoch not healthy"] += 1
                last = logger.history[-1].verdict
                assert last is not None
                cause = last.cause
                guard = cause.guard if cause else "—"
                if last.kind == "healthy":
                    counts["healthy, cause" if cause else "healthy"] += 1
                    mark = ""
                elif guard == "undetermined":
                    counts["undetermined"] += 1
                    mark = ""
                else:
                    right = guard == loop.guard
                    counts["right" if right else "wrong"] += 1
                    mark = "" if right else " ✗"
                onset = f"@{last.onset_epoch}" if last.onset_epoch is not None else ""
                reason = cause.reason.replace("|", "/") if cause else ""
                print(
                    f"| {name} | {dataset} | {seed} | {last.kind}{onset} | {guard}{mark} | "
                    f"{loop.guard or '—'} | {reason} |",
                    flush=True,
                )
    print(f"\n{counts} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
