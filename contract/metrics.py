"""The metric registry: every diagnostic of Collapse Lab, declared once.

A metric is declared where its value lives, with everything the rest of the system needs:

- a field of :class:`EmbeddingMetrics` (measured on each embedding, backbone h and projector
  z) or of the epoch record (``EpochRecord.loss``, ``lr``...: measured on the run), annotated
  with :func:`measured`: ``effective_rank: Annotated[float, measured(...)]``. The field *is*
  the typed record's field (the engine fills it, the verdict reads it, the API serves it);
- a property of :class:`EmbeddingMetrics` marked :func:`derived` for a quantity computed from
  recorded ones (``spread``, from the spectrum): defined once here, never stored;
- an entry of :data:`METHOD_INTERNALS` for a method's own scalar that the trainer or an
  external client puts in ``EpochRecord.logs`` under the metric's name (a loss term, DINO's
  teacher entropy): null for the methods it does not apply to.

From these declarations come the catalogue (:func:`metric_catalogue`, ``GET /api/metrics``)
from which the run page, the compare page and the reports build their charts, the sweep's
per-run metrics (``backend.sweep_schemas.FinalMetrics``), the export columns and the
README's metric table (``scripts/metric_table.py``, checked by tests/test_metric_registry.py).
How to add a metric: docs/metrics.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel, Field, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from contract.cause_thresholds import CAUSE_THRESHOLDS as _LIMITS
from contract.strict import StrictModel

MeasuredOn = Literal["embedding", "run", "method_internals"]
# every_epoch: measured after every epoch; every_few_epochs: only every RunConfig.lidar_every
# (an expensive measurement: its extra forward passes are timed apart, EpochRecord.lidar_time_s)
CostTier = Literal["every_epoch", "every_few_epochs"]
# Levels that depend on the run: its embedding size d (of the representation shown), the
# kNN chance level 1/classes, the value its method's loss takes at the trivial solution, its
# configured learning rate; z_dim and z_dim_minus_one are d and d - 1 of z, the projector's
# output, whichever representation the chart shows (the method internals are measured on z).
LevelContext = Literal["dim", "chance", "collapse_loss", "base_lr", "z_dim", "z_dim_minus_one"]
ChartKind = Literal["line", "spectrum", "shares", "plane"]
SweepSpace = Literal["projector", "backbone"]


class Level(StrictModel):
    """A reference level (healthy or collapsed): a number, a value of the run's context,
    another metric of the same epoch record (``field``), or the metric's own value at the
    run's first epoch (``epoch0``), drawn as a labelled line on the chart; ``times`` scales
    the last three (a threshold as a share of them: 1/3 of ln K, 0.9 of epoch 0). ``label``
    may say ``{value}``, filled with the level (``digits`` decimals when given). A level with
    none of them is described in words only (``label``). A chart draws a metric's levels only
    for a run that has values of the metric."""

    value: float | None = None
    context: LevelContext | None = None
    field: str | None = Field(
        None,
        description="Another metric of the same record: a field of the embedding shown, or a "
        "method internal (EpochRecord.logs).",
    )
    epoch0: bool = Field(
        False,
        description="The metric's own first value in the run (epoch 0, the untrained network): "
        "a level relative to where the run started.",
    )
    times: float = Field(
        1.0, description="Multiplies the context's, the field's or the epoch-0 value."
    )
    label: str
    digits: int | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Level:
        sources = [self.value is not None, self.context is not None, self.field is not None]
        if sum([*sources, self.epoch0]) > 1:
            raise ValueError(f"level {self.label!r}: a value, a context, a field or epoch0")
        if self.times != 1 and not any([*sources[1:], self.epoch0]):
            raise ValueError(f"level {self.label!r}: times scales a context, field or epoch0")
        return self


class SweepUse(StrictModel):
    """How a sweep shows the metric of each run's last epoch: map shade and line plot."""

    label: str = Field(description="The map's and the line plot's title for it.")
    space: SweepSpace = Field("projector", description="Taken from z (projector) or h.")
    higher_is_healthier: bool
    scale_max: float | None = Field(
        None, description="The shade's top; None: the largest value in the sweep."
    )
    default: bool = Field(
        False,
        description="Shown until another is chosen, first in the menus (one metric: the "
        "verdict's own measure).",
    )


class Metric(StrictModel):
    """One diagnostic's declaration: what a reader, a chart and a sweep need to know."""

    measured_on: MeasuredOn
    title: str = Field(description="Short name: the chart's legend entry, the table's row.")
    unit: str
    formula: str
    paper: str = ""
    healthy: Level | None = None
    collapsed: Level | None = None
    cost: CostTier = "every_epoch"
    chart: str | None = Field(None, description="Id of the chart it is drawn on (CHARTS).")
    axis: Literal["y", "y2"] = "y"
    sweep: SweepUse | None = Field(None, description="None: not offered by sweeps.")
    export: bool = Field(True, description="A column of the epoch CSV export (scalars only).")
    help: str = Field(
        "", description="One sentence for the chart's reader: what a change of it means."
    )

    @property
    def description(self) -> str:
        """The JSON schema's description of the record field."""
        return f"{self.formula} ({self.paper})" if self.paper else self.formula


@dataclass(frozen=True)
class Declares:
    """The :class:`Metric` a record field declares (``Annotated`` metadata); it also gives
    the field its JSON-schema description, so the OpenAPI document says what it measures."""

    metric: Metric

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["description"] = self.metric.description
        return schema


def measured(
    measured_on: MeasuredOn = "embedding",
    *,
    title: str,
    unit: str,
    formula: str,
    paper: str = "",
    healthy: Level | None = None,
    collapsed: Level | None = None,
    cost: CostTier = "every_epoch",
    chart: str | None = None,
    axis: Literal["y", "y2"] = "y",
    sweep: SweepUse | None = None,
    export: bool = True,
    help: str = "",
) -> Declares:
    """The declaration of the field it annotates: ``x: Annotated[float, measured(...)]``."""
    return Declares(
        Metric(
            measured_on=measured_on,
            title=title,
            unit=unit,
            formula=formula,
            paper=paper,
            healthy=healthy,
            collapsed=collapsed,
            cost=cost,
            chart=chart,
            axis=axis,
            sweep=sweep,
            export=export,
            help=help,
        )
    )


_Getter = TypeVar("_Getter", bound=Callable[..., Any])


def derived(declaration: Declares) -> Callable[[_Getter], _Getter]:
    """Mark a property getter of a record model as a derived metric (put it under
    ``@property``): computed from recorded fields, never stored, catalogued like the rest."""

    def mark(getter: _Getter) -> _Getter:
        getter.__dict__["declares"] = declaration
        return getter

    return mark


def spread_of(spectrum: Iterable[float | None]) -> float:
    """sqrt of the total variance of z/||z|| from its log spectrum, in [0, 1]."""
    return math.sqrt(sum(math.exp(v) for v in spectrum if v is not None))


def participation_of(spectrum: Sequence[float]) -> float:
    """(sum lambda)^2 / sum lambda^2 of a log spectrum's eigenvalues; 0 without variance."""
    eigenvalues = [math.exp(value) for value in spectrum]
    if not eigenvalues or max(eigenvalues) <= 2e-20:  # the spectrum's floor: no variance
        return 0.0
    return sum(eigenvalues) ** 2 / sum(value * value for value in eigenvalues)


_HEALTHY_D = Level(context="dim", label="isotropic: d = {value}")
_ONE_DIRECTION = Level(value=1, label="one direction 1")


# The raw z's two sizes (scale, total_scale): their paper and reference levels.
_RAW_SIZE_PAPER = (
    "Balestriero & LeCun, arXiv 2511.08544 (without SIGReg every embedding shrinks to the origin)"
)
_RAW_SIZE_HELD = Level(label="near or above its epoch-0 value")
_AT_ONE_POINT = Level(value=0, label="every embedding at one point: 0")


class EmbeddingMetrics(StrictModel):
    """The diagnostics of one embedding (backbone h or projector z) on the probe set; see
    :func:`workers.engine.metrics.embedding_diagnostics` for each formula's code. Every field
    is a metric declaration (:func:`measured`); fields added later are None in older records.
    """

    dim: Annotated[
        int, measured(title="dimension d", unit="dimensions", formula="Embedding dimension d.")
    ]
    std_l2: Annotated[
        float,
        measured(
            title="std_l2",
            unit="",
            formula="Mean over dims of the std over samples of z/||z||",
            paper="Chen & He, CVPR 2021, Sec. 4.1",
            healthy=Level(label="about 1/sqrt(d)"),
            collapsed=Level(value=0, label="complete collapse 0"),
        ),
    ]
    std_l2_sqrt_d: Annotated[
        float,
        measured(
            title="std_l2·√d",
            unit="",
            formula="std_l2 * sqrt(d): about 1 when healthy, 0 collapsed",
            paper="Chen & He, CVPR 2021, Sec. 4.1",
            healthy=Level(value=1, label="healthy ≈ 1"),
            collapsed=Level(value=0, label="complete collapse 0"),
            chart="std",
            sweep=SweepUse(label="final std_l2·√d of z", higher_is_healthier=True, scale_max=1),
        ),
    ]
    effective_rank: Annotated[
        float,
        measured(
            title="effective rank",
            unit="dimensions",
            formula="RankMe: exp(entropy of the normalised singular values of z), 1 .. min(N, d)",
            paper="Garrido et al., ICML 2023",
            healthy=Level(context="dim", label="d = {value} (upper bound)"),
            collapsed=Level(value=1, label="complete collapse 1"),
            chart="rank",
            sweep=SweepUse(label="final effective rank of z", higher_is_healthier=True),
        ),
    ]
    spectrum: Annotated[
        list[float],
        measured(
            title="log singular values",
            unit="log σ",
            formula="Sorted log eigenvalues of the covariance of z/||z||",
            paper="Jing et al., ICLR 2022",
            healthy=Level(label="flat up to index d"),
            collapsed=Level(label="a sharp drop after the first few"),
            chart="spectrum",
        ),
    ]
    alignment: Annotated[
        float | None,
        measured(
            title="alignment",
            unit="",
            formula="E||f(x)-f(x+)||^2 of l2-normalised positive pairs",
            paper="Wang & Isola, ICML 2020",
            healthy=Level(label="low, with low uniformity"),
            collapsed=Level(value=0, label="0 (with uniformity 0)"),
            chart="plane",
        ),
    ]
    uniformity: Annotated[
        float,
        measured(
            title="uniformity",
            unit="nats",
            formula="log E exp(-2||f(x)-f(y)||^2)",
            paper="Wang & Isola, ICML 2020",
            healthy=Level(value=-4, label="uniform on the sphere ≈ −4"),
            collapsed=Level(value=0, label="one point 0"),
            chart="plane",
        ),
    ]
    cos_pos: Annotated[
        float | None,
        measured(
            title="positive pairs",
            unit="cosine",
            formula="Mean cosine of positive pairs",
            healthy=Level(label="well above the random pairs'"),
            collapsed=Level(value=1, label="collapsed: both → 1"),
            chart="cosine",
        ),
    ]
    cos_rand: Annotated[
        float,
        measured(
            title="random pairs",
            unit="cosine",
            formula="Mean cosine of random pairs",
            healthy=Level(value=0, label="healthy random pairs ≈ 0"),
            collapsed=Level(value=1, label="collapsed: both → 1"),
            chart="cosine",
        ),
    ]
    knn_top1: Annotated[
        float | None,
        measured(
            title="kNN top-1",
            unit="accuracy",
            formula="k-NN (k = 20, weighted cosine) top-1 accuracy of the probe against the bank",
            paper="Wu et al., CVPR 2018",
            collapsed=Level(context="chance", label="chance {value}"),
            chart="knn",
            sweep=SweepUse(
                label="final kNN top-1 of h",
                space="backbone",
                higher_is_healthier=True,
                scale_max=1,
            ),
        ),
    ]
    cluster_entropy: Annotated[
        float | None,
        measured(
            title="cluster entropy",
            unit="nats",
            formula="Entropy of cluster / prototype usage (SwAV, DeepCluster)",
            healthy=Level(
                field="cluster_entropy_max", label="log K = {value} (balanced)", digits=2
            ),
            collapsed=Level(value=0, label="one cluster 0"),
            chart="clusters",
        ),
    ] = None
    cluster_entropy_max: Annotated[
        float | None,
        measured(title="log K", unit="nats", formula="log K: the cluster entropy's maximum"),
    ] = None
    participation_ratio: Annotated[
        float | None,
        measured(
            title="participation ratio",
            unit="directions",
            formula="(sum λ)^2 / sum λ^2 of the covariance of z/||z||: directions used",
            paper="Gao et al., bioRxiv 2017",
            healthy=_HEALTHY_D,
            collapsed=_ONE_DIRECTION,
            chart="directions",
            sweep=SweepUse(label="final participation ratio of z", higher_is_healthier=True),
        ),
    ] = None
    nesum: Annotated[
        float | None,
        measured(
            title="NESum",
            unit="directions",
            formula="sum λ / λ_1: 1 one direction, d isotropic",
            paper="He & Ozay, ICML 2022",
            healthy=_HEALTHY_D,
            collapsed=_ONE_DIRECTION,
            chart="directions",
        ),
    ] = None
    w2_uniformity: Annotated[
        float | None,
        measured(
            title="W2 uniformity",
            unit="",
            formula="W2 distance of z/||z|| (as a Gaussian) to N(0, I/d): 0 isotropic, "
            "sqrt(2) constant",
            paper="Fang et al., 2024",
            healthy=Level(value=0, label="isotropic 0"),
            collapsed=Level(value=math.sqrt(2), label="one point √2"),
            chart="w2",
        ),
    ] = None
    variance_shares: Annotated[
        list[float] | None,
        measured(
            title="variance shares",
            unit="share",
            formula="Share of the variance of z/||z|| on each top principal direction",
            healthy=Level(label="each about 1/d"),
            collapsed=Level(label="piled onto a few bars"),
            chart="shares",
        ),
    ] = None
    cluster_perplexity: Annotated[
        float | None,
        measured(
            title="clusters used (perplexity)",
            unit="clusters",
            formula="exp(entropy of the mean soft assignment): effective clusters used, 1 .. K",
            paper="Govindarajan et al., arXiv 2410.14060",
            healthy=Level(field="num_prototypes", label="K = {value} prototypes"),
            collapsed=Level(value=1, label="one prototype 1"),
            chart="prototypes",
        ),
    ] = None
    distinct_prototypes: Annotated[
        int | None,
        measured(
            title="distinct prototypes",
            unit="prototypes",
            formula="Prototype groups with cosine < 0.9 to each other (complete linkage): 1 .. K",
            paper="Govindarajan et al., arXiv 2410.14060",
            healthy=Level(field="num_prototypes", label="K = {value} prototypes"),
            collapsed=Level(value=1, label="one prototype 1"),
            chart="prototypes",
        ),
    ] = None
    distinct_samples: Annotated[
        int | None,
        measured(
            title="distinct samples",
            unit="samples",
            formula="The same count for K probe embeddings: how distinct the data lets K "
            "prototypes be",
        ),
    ] = None
    num_prototypes: Annotated[
        int | None,
        measured(title="K", unit="prototypes", formula="K, the number of prototypes"),
    ] = None
    lidar: Annotated[
        float | None,
        measured(
            title="LiDAR",
            unit="directions",
            formula="Effective rank of the LDA matrix of images (classes) vs their views: "
            "1 .. min(n-1, d)",
            paper="Thilak et al., ICLR 2024",
            healthy=_HEALTHY_D,
            collapsed=_ONE_DIRECTION,
            cost="every_few_epochs",
            chart="directions",
        ),
    ] = None
    augmentation_variance_ratio: Annotated[
        float | None,
        measured(
            title="augmentation / data variance",
            unit="ratio",
            formula="Views' within-image variance over the data's variance along the top "
            "principal directions of the probe embedding (variance-weighted mean): 0 views "
            "agree, 1 views vary as much as the images",
            paper="Jing et al., ICLR 2022, mechanism 1",
            healthy=Level(value=0, label="views of an image agree: 0"),
            collapsed=Level(value=1, label="views vary as much as the images: 1"),
            chart="augmentation",
        ),
    ] = None
    augmentation_variance_ratios: Annotated[
        list[float] | None,
        measured(
            title="augmentation / data variance per direction",
            unit="ratio",
            formula="The same ratio along each of the top principal directions, largest first",
            paper="Jing et al., ICLR 2022, mechanism 1",
        ),
    ] = None

    scale: Annotated[
        float | None,
        measured(
            title="scale: std of raw z along its top direction",
            unit="z's own units",
            formula="Std of the raw z (not normalised) along its top principal direction: how "
            "far apart the embeddings lie in the units a Euclidean loss sees",
            paper=_RAW_SIZE_PAPER,
            healthy=_RAW_SIZE_HELD,
            collapsed=_AT_ONE_POINT,
            chart="scale",
            help="The other measures divide z by its norm; only this one sees an embedding "
            "shrinking to the origin, the trivial solution of a loss on raw distances.",
        ),
    ] = None
    total_scale: Annotated[
        float | None,
        measured(
            title="total scale: RMS distance of raw z from its mean",
            unit="z's own units",
            formula="sqrt of the total variance of the raw z (the trace of its covariance): "
            "the whole cloud's size, which, unlike the top direction's std, holds when "
            "variance spreads out of one direction into many",
            paper=_RAW_SIZE_PAPER,
            healthy=_RAW_SIZE_HELD,
            collapsed=_AT_ONE_POINT,
            chart="scale",
            help="The verdict calls the raw z shrunk only when this and the top direction's "
            "std both fell: an untrained network's anisotropic output that training spreads "
            "over many directions loses top-direction std, not size.",
        ),
    ] = None

    @property
    @derived(
        measured(
            title="spread",
            unit="",
            formula="sqrt(total variance of z/||z||) = sqrt(sum exp(spectrum)): about 1 "
            "isotropic, 0 one point; 1 - spread^2 is about the random-pair cosine",
            paper="the verdict's measure, workers/engine/verdict.py",
            healthy=Level(value=1, label="isotropic ≈ 1"),
            collapsed=Level(value=0, label="one point 0"),
            sweep=SweepUse(
                label="final spread √(total variance of z/‖z‖)",
                higher_is_healthier=True,
                scale_max=1,
                default=True,
            ),
        )
    )
    def spread(self) -> float:
        return spread_of(self.spectrum)


# Method-specific scalars in EpochRecord.logs, declared like the rest (docs/metrics.md):
# measured_on="method_internals", null (absent from logs) for the methods they do not fit.
# The mechanism signals (docs/mechanisms.md) are computed on the fixed probe by each method's
# probe_logs hook with the functions of workers/engine/mechanisms.py, or by the ingest from an
# external loop's internals; each family's signals share its charts (Chart.group).
def _internal(**declaration: Any) -> Metric:
    return Metric(measured_on="method_internals", **declaration)


_PAPER_DIRECTPRED = "Tian, Chen & Ganguli, ICML 2021 (arXiv 2102.06810)"
_LEAST_SQUARES = (
    "; for a non-linear predictor W_p is the least-squares linear map from z to p on the probe"
)
# said on the page too: what the three predictor signals measure for an MLP predictor
_LEAST_SQUARES_HELP = " An MLP predictor is read through its least-squares linear map."
_LN_K = Level(field="cluster_entropy_max", label="ln K = {value}: balanced", digits=2)
_ONE_CLUSTER = Level(value=0, label="one cluster takes all: 0")

METHOD_INTERNALS: dict[str, Metric] = {
    # -- asymmetric branch: BYOL, SimSiam, I-JEPA
    "online_target_cosine": _internal(
        title="online–target cosine",
        unit="cosine",
        formula="Mean cosine between the online branch's output (predictor p, or z without "
        "one) and the target branch's projection of the other view, on the probe",
        paper="Grill et al., NeurIPS 2020; Chen & He, CVPR 2021",
        healthy=Level(label="below 1 while the online branch learns"),
        collapsed=Level(value=1, label="online copies target: 1"),
        chart="asymmetric",
        help="How closely the online branch predicts the target; pinned at 1 together with a "
        "falling spread, the two branches agree on a constant.",
    ),
    "projection_target_cosine": _internal(
        title="projection–target cosine",
        unit="cosine",
        formula="Mean cosine between the online projection z (the predictor's input) and the "
        "target branch's projection of the other view, on the probe",
        paper="Grill et al., NeurIPS 2020; Chen & He, CVPR 2021",
        healthy=Level(label="below 1: the predictor has a gap to close"),
        collapsed=Level(value=1, label="online projection = target: 1"),
        chart="asymmetric",
        help="The online–target gap before the predictor: at 1 the online projection already "
        "is the target, so the predictor is the identity and the branches are symmetric.",
    ),
    "target_param_distance": _internal(
        title="‖θ_target − θ_online‖ / ‖θ_online‖",
        unit="relative distance",
        formula="Relative distance of the momentum target's parameters to the online "
        "network's; absent where the target is the online network by construction "
        "(SimSiam: a stop-gradient, no separate target)",
        paper="Grill et al., NeurIPS 2020, Table 5; Caron et al., ICCV 2021, Fig. 6",
        collapsed=Level(value=0, label="target = online network: 0"),
        chart="asymmetric",
        help="How far the momentum target lags the online network; 0 means the EMA does "
        "nothing (momentum 0), where BYOL, DINO and I-JEPA report collapse.",
    ),
    "rank_differential": _internal(
        title="rank differential",
        unit="dimensions",
        formula="erank(target) − erank(prediction), RankMe of each on the probe",
        paper="Zhuo et al., ICLR 2023",
        healthy=Level(label="> 0: the target keeps more directions"),
        collapsed=Level(value=0, label="no differential: 0"),
        chart="asymmetric",
        axis="y2",
        help="The asymmetric branch learns while the target's effective rank stays above the "
        "prediction's; at 0 it no longer pulls the embedding towards more directions.",
    ),
    # I-JEPA's targets on its training batches
    "target_std_l2_sqrt_d": _internal(
        title="target std_l2·√d (training batches)",
        unit="",
        formula="std_l2 * sqrt(d) of the target encoder's mean patch token over each training "
        "batch, averaged over the epoch's steps (I-JEPA)",
        paper="Chen & He, CVPR 2021, Sec. 4.1",
        healthy=Level(value=1, label="healthy ≈ 1"),
        collapsed=Level(value=0, label="target collapsed: 0"),
        chart="asymmetric",
        help="The probe's std_l2·√d of z (the same token) on the images the loss regresses "
        "onto as it trains; near 0, the targets are one point and the prediction is trivial.",
    ),
    "predictor_commutator": _internal(
        title="‖[F, W_p]‖ / ‖F‖‖W_p‖",
        unit="",
        formula="Normalised commutator of the predictor W_p with F = E[z z^T], the "
        "correlation of its inputs on the probe" + _LEAST_SQUARES,
        paper=_PAPER_DIRECTPRED,
        healthy=Level(value=0, label="commutes with F: 0"),
        collapsed=Level(label="large: W_p ignores F's eigenbasis"),
        chart="predictor",
        help="A working predictor shares the eigenbasis of its inputs' correlation "
        "(DirectPred); a commutator that stays large means it does not." + _LEAST_SQUARES_HELP,
    ),
    "predictor_eigen_alignment": _internal(
        title="cos(W_p u_j, u_j)",
        unit="cosine",
        formula="Mean over the top 8 eigenvectors u_j of F of cos(W_p u_j, u_j)" + _LEAST_SQUARES,
        paper=_PAPER_DIRECTPRED,
        healthy=Level(value=1, label="eigenvectors kept: 1"),
        collapsed=Level(label="≈ 0 random, < 0 reversed"),
        chart="predictor",
        help="1 when the predictor maps each leading direction of its inputs onto itself, as "
        "Tian et al.'s analysis predicts for a non-collapsing BYOL or SimSiam."
        + _LEAST_SQUARES_HELP,
    ),
    "predictor_symmetry": _internal(
        title="‖sym(W_p)‖ / ‖W_p‖",
        unit="",
        formula="||(W_p + W_p^T) / 2||_F / ||W_p||_F" + _LEAST_SQUARES,
        paper=_PAPER_DIRECTPRED,
        healthy=Level(value=1, label="symmetric: 1"),
        collapsed=Level(value=0.7071, label="random: 1/√2"),
        chart="predictor",
        help="Tian et al. find the predictor grows symmetric in training; a symmetric "
        "predictor with a too-fast EMA is one of DirectPred's collapse settings (Table 3)."
        + _LEAST_SQUARES_HELP,
    ),
    # -- contrastive: SimCLR and any InfoNCE
    "infonce_alignment": _internal(
        title="InfoNCE alignment −s_pos/τ",
        unit="nats",
        formula="Mean over the 2N anchors of −s_ip/τ, the positive part of NT-Xent on the "
        "probe's two views (s the cosine)",
        paper="Wang & Isola, ICML 2020; Chen et al., ICML 2020",
        healthy=Level(label="falls towards −1/τ"),
        collapsed=Level(label="−1/τ with the repulsion at ln(2N−1) + 1/τ: all views equal"),
        chart="infonce",
        help="The part of the loss that pulls two views of an image together; alone "
        "(without the repulsion) it is minimised by a constant embedding.",
    ),
    "infonce_repulsion": _internal(
        title="InfoNCE repulsion log Σ exp(s/τ)",
        unit="nats",
        formula="Mean over anchors of log Σ_{k≠i} exp(s_ik/τ); alignment + repulsion = "
        "the NT-Xent loss",
        paper="Wang & Isola, ICML 2020; Chen et al., ICML 2020",
        healthy=Level(label="falls as the embedding spreads"),
        collapsed=Level(label="rises to ln(2N−1) + 1/τ"),
        chart="infonce",
        help="The negatives' part of the loss, the guard of the contrastive family; "
        "rising while the alignment falls, the negatives are losing.",
    ),
    "temperature": _internal(
        title="InfoNCE temperature τ",
        unit="",
        formula="The softmax temperature of the contrastive loss",
        paper="Chen et al., ICML 2020",
        chart="infonce",
        axis="y2",
        help="Scales the alignment (−1/τ at best) and how hard the negatives push; drawn "
        "beside the split it sets.",
    ),
    "effective_negatives": _internal(
        title="effective negatives",
        unit="negatives",
        formula="exp(entropy) of the softmax weights over the 2N − 2 negatives of each "
        "anchor, averaged (perplexity)",
        paper="Wang & Isola, ICML 2020 (uniformity); Chen et al., ICML 2020",
        healthy=Level(label="a large share of the 2N − 2"),
        # the negatives cause's threshold (docs/causes.md)
        collapsed=Level(
            value=_LIMITS.effective_negatives_none,
            label=f"under {_LIMITS.effective_negatives_none:g}: one hard negative carries the "
            "repulsion",
        ),
        chart="negatives",
        help="How many negatives actually push each anchor; all 2N − 2 weigh the same in a "
        "random (or a point-collapsed) embedding, a few dominate in a low-dimensional one.",
    ),
    "projector_layer_alignment": _internal(
        title="projector layer alignment |⟨u_a, v_b⟩|",
        unit="cosine",
        formula="Mean over the top 8 singular pairs of |<u_i(W_a), v_i(W_b)>| for adjacent "
        "projector layers W_a, W_b (left singular vectors of one, right of the next)",
        paper="Jing et al., ICLR 2022, mechanism 2",
        healthy=Level(label="≈ √(2/πh) at initialisation"),
        collapsed=Level(value=1, label="aligned: 1"),
        chart="negatives",
        axis="y2",
        help="Jing et al.'s second mechanism: adjacent layers align their singular vectors "
        "and the weak directions die, a dimensional collapse driven by the projector.",
    ),
    # -- clustering: SwAV, DeepCluster, DINO's prototypes
    "assignment_entropy": _internal(
        title="assignment entropy",
        unit="nats",
        formula="Mean per-sample entropy of the assignments the loss uses (SwAV's Sinkhorn "
        "codes, DINO's centred teacher, DeepCluster's one-hot pseudo-labels: 0) on the probe",
        paper="Caron et al., NeurIPS 2020; Caron et al., ICCV 2021, Sec. 5.3",
        healthy=Level(label="between 0 and ln K"),
        # the balancing cause's uniform-codes threshold (docs/causes.md)
        collapsed=_LN_K.model_copy(
            update={
                "times": _LIMITS.assignment_share_uniform,
                "label": f"{_LIMITS.assignment_share_uniform:g} ln K = {{value}}: codes uniform",
            }
        ),
        chart="assignments",
        help="How sharp each image's assignment is: at ln K the targets are uniform (nothing "
        "to learn), at 0 with a low usage entropy every image goes to one cluster.",
    ),
    "usage_entropy_before_balancing": _internal(
        title="usage entropy before balancing",
        unit="nats",
        formula="Entropy of the mean assignment without the balancing step (SwAV: "
        "softmax(scores/ε) without Sinkhorn; DINO: the teacher without centering; "
        "DeepCluster: the clusters of the training set at the previous centroids)",
        paper="Caron et al., NeurIPS 2020, Sec. 3.1; Caron et al., ECCV 2018, Sec. 3.3",
        healthy=_LN_K,
        collapsed=_ONE_CLUSTER,
        chart="assignments",
        help="What the network alone would do with the clusters; far below the balanced "
        "usage, balancing is doing all the work of keeping clusters alive.",
    ),
    "usage_entropy_after_balancing": _internal(
        title="usage entropy after balancing",
        unit="nats",
        formula="Entropy of the mean assignment the loss uses (Sinkhorn's codes, the centred "
        "teacher, k-means after empty-cluster reassignment)",
        paper="Caron et al., NeurIPS 2020, Sec. 3.1; Caron et al., ECCV 2018, Sec. 3.3",
        healthy=_LN_K,
        # the balancing cause's threshold (docs/causes.md): e^(ln K / 2) = √K clusters
        collapsed=_LN_K.model_copy(
            update={
                "times": _LIMITS.usage_share_unbalanced,
                "label": "½ ln K = {value}: fewer than √K clusters used",
            }
        ),
        chart="assignments",
        help="The usage the balancing step achieves; falling to 0 means it no longer "
        "spreads images over the clusters (weak Sinkhorn, no centering).",
    ),
    "clusters_reassigned": _internal(
        title="clusters reassigned",
        unit="clusters",
        formula="Empty clusters split off a non-empty one during this epoch's k-means "
        "(DeepCluster's empty-cluster reassignment)",
        paper="Caron et al., ECCV 2018, Sec. 3.3",
        healthy=Level(label="a few, falling"),
        collapsed=Level(label="many every epoch: the features pile into few clusters"),
        chart="assignments",
        axis="y2",
        help="How many clusters emptied this epoch and had to be refilled; a steady stream "
        "means the features keep collapsing into fewer clusters.",
    ),
    "sinkhorn_epsilon": _internal(
        title="Sinkhorn ε",
        unit="",
        formula="The entropic regularisation of the codes: Sinkhorn-Knopp balances "
        "exp(scores / ε) (softmax(scores / ε) without it)",
        paper="Caron et al., NeurIPS 2020, Sec. 3.1; Cuturi, NeurIPS 2013",
        chart="assignments",
        axis="y2",
        help="The balancing's temperature: a large ε flattens every code towards uniform "
        "(the codes' sharpness climbs to ln K; ε = 1 did in docs/causes.md); drawn beside "
        "the usage and sharpness it sets.",
    ),
    "prediction_temperature": _internal(
        title="prediction temperature τ",
        unit="",
        formula="The temperature of the predicted assignment softmax(z Cᵀ / τ) the codes "
        "are predicted from (SwAV's swapped prediction)",
        paper="Caron et al., NeurIPS 2020, Eq. 2",
        chart="assignments",
        axis="y2",
        help="How sharp the predicted assignment is that the loss pulls towards the "
        "codes; drawn beside ε, the codes' own temperature.",
    ),
    # -- redundancy reduction: Barlow Twins, VICReg, LeJEPA
    "loss_invariance": _internal(
        title="VICReg invariance",
        unit="MSE",
        formula="MSE(z1, z2) of the probe's two views, unweighted",
        paper="Bardes et al., ICLR 2022, Eq. 5",
        healthy=Level(label="low, with the variance term near 0"),
        collapsed=Level(value=0, label="0 with the variance term at 1: collapsed"),
        chart="redundancy_terms",
        help="The pull between views; reaching 0 while the variance term rises is collapse.",
    ),
    "loss_variance": _internal(
        title="VICReg variance hinge",
        unit="",
        formula="mean_j max(0, 1 − sqrt(Var(z_j) + ε)) over both views, unweighted",
        paper="Bardes et al., ICLR 2022, Eq. 1",
        healthy=Level(value=0, label="every dimension spread: 0"),
        collapsed=Level(value=1, label="no variance left: 1"),
        chart="redundancy_terms",
        help="VICReg's guard against collapse; at 1 no dimension varies any more.",
    ),
    "loss_covariance": _internal(
        title="VICReg covariance",
        unit="",
        formula="Σ_{i≠j} Cov(z)_ij² / d summed over both views, unweighted",
        paper="Bardes et al., ICLR 2022, Eq. 3-4",
        healthy=Level(label="small"),
        collapsed=Level(label="rises when dimensions become copies"),
        chart="redundancy_terms",
        help="The decorrelation guard; high when dimensions carry the same information.",
    ),
    "loss_on_diagonal": _internal(
        title="Barlow Twins on-diagonal",
        unit="",
        formula="Σ_i (1 − C_ii)² of the probe's cross-correlation matrix C",
        paper="Zbontar et al., ICML 2021, Eq. 1",
        healthy=Level(value=0, label="views agree: 0"),
        collapsed=Level(context="z_dim", label="d = {value}: no agreement"),
        chart="redundancy_terms",
        help="The invariance part of Barlow Twins: 0 when each dimension agrees between views.",
    ),
    "loss_off_diagonal": _internal(
        title="Barlow Twins off-diagonal",
        unit="",
        formula="Σ_{i≠j} C_ij² of the probe's cross-correlation matrix C, unweighted",
        paper="Zbontar et al., ICML 2021, Eq. 1",
        healthy=Level(value=0, label="decorrelated: 0"),
        collapsed=Level(label="up to d(d−1): all dimensions one variable"),
        chart="redundancy_terms",
        help="The redundancy-reduction guard; it grows as dimensions become copies of each other.",
    ),
    "sigreg_statistic": _internal(
        title="SIGReg statistic",
        unit="",
        formula="SIGReg: the Epps-Pulley statistic of 1-D projections of the probe's two views "
        "against N(0, 1), on fixed random slices (it grows with the probe's N)",
        paper="Balestriero & LeCun, arXiv 2511.08544, 2025",
        healthy=Level(label="falls from its epoch-0 value: towards an isotropic Gaussian"),
        # the variance_term cause's SIGReg threshold (docs/causes.md)
        collapsed=Level(
            epoch0=True,
            times=_LIMITS.sigreg_not_reduced,
            label=f"{_LIMITS.sigreg_not_reduced:g} × epoch 0 = {{value}}: not reduced, SIGReg idle",
        ),
        chart="redundancy_terms",
        help="LeJEPA's only guard: how far the embedding is from an isotropic Gaussian; a "
        "healthy run drives it below its epoch-0 value.",
    ),
    "dims_under_variance_hinge": _internal(
        title="dimensions under the variance hinge",
        unit="fraction",
        formula="Fraction of dimensions with std over the probe sqrt(Var(z_j) + ε) < γ = 1",
        paper="Bardes et al., ICLR 2022, Eq. 1",
        healthy=Level(value=0, label="none under the hinge: 0"),
        collapsed=Level(value=1, label="all shrunk: 1"),
        chart="redundancy_geometry",
        help="How many dimensions the variance term is still pushing out; near 1 with a small "
        "variance weight, the invariance term has won.",
    ),
    "off_diagonal_energy": _internal(
        title="off-diagonal correlation energy",
        unit="",
        formula="Σ_{i≠j} C_ij² / d, C the correlation matrix of z over the probe",
        paper="Zbontar et al., ICML 2021; Bardes et al., ICLR 2022",
        healthy=Level(value=0, label="decorrelated: 0"),
        # the decorrelation cause's threshold (docs/causes.md)
        collapsed=Level(
            context="z_dim_minus_one",
            times=_LIMITS.off_diagonal_share,
            label="half the ceiling d − 1: {value}",
        ),
        chart="redundancy_geometry",
        axis="y2",
        help="How redundant the dimensions are; rising towards d − 1 is dimensional collapse "
        "onto a few directions.",
    ),
    # -- DINO (Caron et al., ICCV 2021, Sec. 5.3): H(P_t, P_s) = h(P_t) + KL(P_t || P_s)
    "teacher_entropy": _internal(
        title="teacher entropy h(P_t)",
        unit="nats",
        formula="Mean entropy of the teacher's centred, sharpened softmax over the K "
        "prototypes, on the probe",
        paper="Caron et al., ICCV 2021, Sec. 5.3",
        healthy=Level(label="between 0 and ln K"),
        # the centering cause's entropy share (docs/causes.md), with a small KL
        collapsed=Level(
            field="log_k",
            times=_LIMITS.entropy_share_no_centering,
            digits=2,
            label="0.1 ln K = {value}: no centering",
        ),
        chart="dino",
        help="0: one prototype takes every image (centering failed); at ln K (the line "
        "below) the teacher is uniform (sharpening failed).",
    ),
    "teacher_student_kl": _internal(
        title="KL(P_t ‖ P_s)",
        unit="nats",
        formula="Mean KL divergence from the teacher's to the student's softmax on the probe",
        paper="Caron et al., ICCV 2021, Sec. 5.3",
        healthy=Level(label="above 0: the student still learns"),
        # both DINO causes' KL share (docs/causes.md)
        collapsed=Level(
            field="log_k",
            times=_LIMITS.kl_share_collapsed,
            digits=2,
            label=f"{_LIMITS.kl_share_collapsed:g} ln K = {{value}}: student = teacher",
        ),
        chart="dino",
        help="What the student still has to learn from the teacher; 0 in both kinds of "
        "DINO collapse.",
    ),
    "log_k": _internal(
        title="ln K (no sharpening)",
        unit="nats",
        formula="ln K, the entropy of a uniform teacher over the K prototypes",
        paper="Caron et al., ICCV 2021, Sec. 5.3",
        # the sharpening cause's entropy share (docs/causes.md), with a small KL
        collapsed=Level(
            field="log_k",
            times=_LIMITS.entropy_share_no_sharpening,
            digits=2,
            label=f"{_LIMITS.entropy_share_no_sharpening:g} ln K = {{value}}: no sharpening",
        ),
        chart="dino",
        help="The ceiling of the teacher's entropy: a teacher at 0.9 ln K or above, its KL to "
        "the student small, has stopped sharpening.",
    ),
    "center_norm": _internal(
        title="centre norm ‖c‖",
        unit="logit units",
        formula="ℓ2 norm of the teacher's centre c (an EMA of its mean logits)",
        paper="Caron et al., ICCV 2021, Eq. 4",
        healthy=Level(label="settles after a few epochs"),
        collapsed=Level(value=0, label="no centering: 0"),
        chart="dino_center",
        help="The offset centering removes from the teacher's logits; 0 means no centering.",
    ),
    # -- the schedules that move the collapse boundary, drawn beside what they explain
    "teacher_temperature": _internal(
        title="teacher temperature τ_t",
        unit="",
        formula="The teacher's softmax temperature (its warm-up schedule) at the epoch",
        paper="Caron et al., ICCV 2021, Sec. 3.1",
        healthy=Level(label="below the student's: sharpening"),
        chart="dino",
        axis="y2",
        help="Sharpening is a teacher temperature below the student's; raised to it, the "
        "teacher's entropy climbs to ln K.",
    ),
    "student_temperature": _internal(
        title="student temperature τ_s",
        unit="",
        formula="The student's softmax temperature",
        paper="Caron et al., ICCV 2021, Sec. 3.1",
        chart="dino",
        axis="y2",
        help="The reference the teacher's temperature is compared with.",
    ),
    "weight_decay": _internal(
        title="weight decay",
        unit="",
        formula="The optimiser's weight decay at the epoch",
        paper=_PAPER_DIRECTPRED + ", Sec. 5 (the weight decay the predictor survives)",
        chart="optimiser",
        help="With the learning rate it sets the per-step shrink lr × wd: under plain SGD, "
        f"above {_LIMITS.shrink_per_step:g} it drove SimSiam and BYOL to collapse (the "
        "weight_decay cause); drawn also beside the predictor, whose alignment it erodes.",
    ),
}


class Chart(StrictModel):
    """One chart of the run page, the compare page and the report (in this order). A line
    chart draws every metric declared with ``chart=<id>``, one trace each in declaration
    order, with their healthy and collapsed levels; the other kinds have their own builder
    in frontend/js/plots.js."""

    id: str
    kind: ChartKind = "line"
    title: str
    y_title: str
    y2_title: str | None = None
    y_range: tuple[float, float] | None = None
    y2_range: tuple[float, float] | None = Field(
        None, description="The secondary axis's range; None: fitted to its values."
    )
    y_range_mode: Literal["tozero"] | None = None
    y2_range_mode: Literal["tozero"] | None = Field(
        None, description="'tozero': the secondary axis starts at 0 (schedules, counts)."
    )
    y_format: str | None = Field(None, description="A d3 tick format, e.g. '.0%'.")
    hide_when_empty: bool = Field(
        False,
        description="Left out when none of its own metrics (either axis; not its guests of "
        "`also`) has a value (cluster charts, a family's mechanism panel).",
    )
    group: str | None = Field(
        None,
        description="The mechanism family whose panel it belongs to (asymmetric branch, "
        "contrastive, clustering, redundancy reduction, DINO): docs/mechanisms.md.",
    )
    also: dict[str, Literal["y", "y2"]] = Field(
        default_factory=dict,
        description="Metrics declared on another chart drawn here too, on this axis, where a "
        "run has them (without their levels): a schedule beside what it explains.",
    )


CHARTS: tuple[Chart, ...] = (
    Chart(
        id="std",
        title="Spread: std of ℓ2-normalised output × √d",
        y_title="std_l2 · √d (1 = healthy)",
        y2_title="learning rate",
        y2_range_mode="tozero",
        y_range=(-0.05, 1.2),
        also={"lr": "y2"},
    ),
    Chart(id="rank", title="Effective rank (RankMe)", y_title="effective rank (dimensions)"),
    Chart(
        id="scale",
        title="Scale of the raw output: std along its top direction, RMS size",
        y_title="z's own units",
        y_range_mode="tozero",
        hide_when_empty=True,
    ),
    Chart(
        id="directions",
        title="Directions used: participation ratio, NESum, LiDAR",
        y_title="directions (1 … d)",
        hide_when_empty=True,
    ),
    Chart(
        id="w2",
        title="Wasserstein-2 uniformity: distance to N(0, I/d)",
        y_title="W2 distance (0 = isotropic)",
        y_range=(-0.05, 1.5),
        hide_when_empty=True,
    ),
    Chart(
        id="cosine",
        title="Cosine similarity: positive vs random pairs",
        y_title="mean cosine (−1 … 1)",
        y_range=(-0.25, 1.1),
    ),
    Chart(
        id="knn",
        title="kNN top-1 accuracy on the probe set (k = 20)",
        y_title="top-1 accuracy",
        y_format=".0%",
        y_range=(0, 1.02),
    ),
    Chart(
        id="loss",
        title="Training loss",
        y_title="loss (method's own units)",
        also={"log_k": "y"},  # DINO's loss against ln K, its value at a uniform teacher
    ),
    Chart(
        id="schedule",
        title="Learning rate and EMA momentum",
        y_title="learning rate",
        y2_title="EMA momentum τ",
        y_range_mode="tozero",
        y2_range=(0, 1.05),
    ),
    Chart(
        id="optimiser",
        title="Weight decay against the learning rate (lr × wd: the per-step shrink)",
        y_title="weight decay",
        y2_title="learning rate",
        y2_range_mode="tozero",
        y_range_mode="tozero",
        hide_when_empty=True,  # shown for every run that logs its weight decay
        also={"lr": "y2"},
    ),
    Chart(
        id="clusters",
        title="Cluster usage: entropy of assignments",
        y_title="entropy (nats)",
        hide_when_empty=True,
    ),
    Chart(
        id="prototypes",
        title="Prototype health: clusters used and distinct prototypes",
        y_title="count (1 … K)",
        hide_when_empty=True,
    ),
    Chart(
        id="augmentation",
        title="Augmentation-to-data variance along the top principal directions",
        y_title="views' variance / images' variance",
        y_range_mode="tozero",
        hide_when_empty=True,
    ),
    Chart(
        id="asymmetric",
        title="Asymmetric branch: online–target agreement, target lag, rank differential",
        y_title="cosine · distance · τ · std·√d",
        y2_title="erank(target) − erank(p)",
        hide_when_empty=True,
        group="asymmetric branch",
        also={"ema_momentum": "y"},  # the target's lag follows its momentum
    ),
    Chart(
        id="predictor",
        title="Predictor against its inputs' correlation F (Tian et al.)",
        y_title="commutator · cosine · symmetry",
        y2_title="weight decay",
        y2_range_mode="tozero",
        hide_when_empty=True,
        group="asymmetric branch",
        also={"weight_decay": "y2"},  # Tian et al.: the weight decay the predictor survives
    ),
    Chart(
        id="infonce",
        title="InfoNCE split: alignment and repulsion",
        y_title="nats",
        y2_title="temperature τ",
        y2_range_mode="tozero",
        hide_when_empty=True,
        group="contrastive",
    ),
    Chart(
        id="negatives",
        title="Effective negatives and projector layer alignment",
        y_title="negatives carrying the softmax mass",
        y2_title="layer alignment |⟨u, v⟩|",
        y_range_mode="tozero",
        y2_range=(0, 1.05),
        hide_when_empty=True,
        group="contrastive",
    ),
    Chart(
        id="assignments",
        title="Assignments: sharpness, and usage before and after balancing",
        y_title="entropy (nats)",
        y2_title="clusters reassigned · ε, τ",
        y2_range_mode="tozero",
        y_range_mode="tozero",
        hide_when_empty=True,
        group="clustering",
    ),
    Chart(
        id="redundancy_terms",
        title="Loss terms, unweighted",
        y_title="term (method's units)",
        y_range_mode="tozero",
        hide_when_empty=True,
        group="redundancy reduction",
    ),
    Chart(
        id="redundancy_geometry",
        title="Dimensions under the variance hinge, off-diagonal correlation",
        y_title="fraction of dimensions",
        y_range=(-0.05, 1.05),
        y2_title="Σ_{i≠j} C_ij² / d",
        hide_when_empty=True,
        group="redundancy reduction",
    ),
    Chart(
        id="dino",
        title="DINO: teacher entropy and teacher–student KL against ln K",
        y_title="nats",
        y2_title="temperature",
        y2_range_mode="tozero",
        y_range_mode="tozero",
        hide_when_empty=True,
        group="DINO",
    ),
    Chart(
        id="dino_center",
        title="DINO: the centre's norm",
        y_title="‖c‖",
        y_range_mode="tozero",
        hide_when_empty=True,
        group="DINO",
    ),
    Chart(
        id="spectrum",
        kind="spectrum",
        title="Singular-value spectrum (log σ, descending) over epochs",
        y_title="singular value index (1 = largest)",
    ),
    Chart(
        id="shares",
        kind="shares",
        title="Variance shares of the top principal directions",
        y_title="share of the variance of z/‖z‖",
    ),
    Chart(
        id="plane",
        kind="plane",
        title="Alignment–uniformity plane (lower-left is better)",
        y_title="alignment  E‖f(x)−f(x⁺)‖²",
    ),
)


class MetricEntry(Metric):
    """A metric as the catalogue serves it: its declaration plus where its value lives."""

    name: str
    derived: bool = Field(False, description="Computed from recorded fields, not stored.")
    value_type: Literal["number", "integer", "list"]
    columns: list[str] = Field(
        description="Its columns in the epoch CSV export (backbone./projector. for an "
        "embedding metric, logs. for a method's internals)."
    )


def _value_type(annotation: Any) -> Literal["number", "integer", "list"]:
    """What a field holds, its None aside: ``list[float] | None`` -> "list"."""
    union = get_origin(annotation) is UnionType
    kinds = {get_origin(arg) or arg for arg in (get_args(annotation) if union else (annotation,))}
    if list in kinds:
        return "list"
    return "integer" if int in kinds else "number"


def metric_places(name: str, measured_on: MeasuredOn) -> list[str]:
    """Where an epoch record keeps a metric's values, as dotted paths (``projector.spread``
    is ``record.projector.spread``, ``logs.x`` is ``record.logs["x"]``): the names of its
    export columns, read by :func:`column_value`."""
    if measured_on == "embedding":
        return [f"backbone.{name}", f"projector.{name}"]
    if measured_on == "method_internals":
        return [f"logs.{name}"]
    return [name]


def column_value(record: BaseModel, column: str) -> Any:
    """The value at an export column's place in an epoch record, a derived metric computed;
    None where the record lacks it (no backbone h, a method internal it did not log)."""
    value: Any = record
    for part in column.split("."):
        if value is None:
            return None
        value = value.get(part) if isinstance(value, dict) else getattr(value, part)
    return value


def _columns(name: str, metric: Metric, value_type: str) -> list[str]:
    """Its export columns: its places, for a scalar with ``export`` (lists are in the JSON)."""
    if not metric.export or value_type == "list":
        return []
    return metric_places(name, metric.measured_on)


def declared_fields(model: type[BaseModel]) -> dict[str, Metric]:
    """The metric declarations among a model's fields, by field name."""
    found = {}
    for name, info in model.model_fields.items():
        for item in info.metadata:
            if isinstance(item, Declares):
                found[name] = item.metric
    return found


def _derived_properties(model: type[BaseModel]) -> dict[str, Metric]:
    found = {}
    for name, value in vars(model).items():
        if isinstance(value, property) and "declares" in getattr(value.fget, "__dict__", {}):
            found[name] = value.fget.__dict__["declares"].metric
    return found


def _entries(model: type[BaseModel]) -> list[MetricEntry]:
    entries = []
    for name, metric in declared_fields(model).items():
        value_type = _value_type(model.model_fields[name].annotation)
        entries.append(
            MetricEntry(
                **metric.model_dump(),
                name=name,
                value_type=value_type,
                columns=_columns(name, metric, value_type),
            )
        )
    for name, metric in _derived_properties(model).items():
        entries.append(
            MetricEntry(
                **metric.model_dump(),
                name=name,
                derived=True,
                value_type="number",
                columns=_columns(name, metric, "number"),
            )
        )
    return entries


def all_metrics(epoch_record: type[BaseModel]) -> list[MetricEntry]:
    """Every declared metric: the embedding's, the run's (fields of ``epoch_record``), the
    methods' internals. ``epoch_record`` is passed in because records.py imports this module."""
    internals = [
        MetricEntry(
            **metric.model_dump(),
            name=name,
            value_type="number",
            columns=_columns(name, metric, "number"),
        )
        for name, metric in METHOD_INTERNALS.items()
    ]
    return [*_entries(EmbeddingMetrics), *_entries(epoch_record), *internals]


def check_registry(entries: Sequence[MetricEntry]) -> None:
    """Raise ValueError when a declaration names a chart, a level field or a name twice that
    does not exist, or a chart draws a metric twice: a misspelt metric fails at import, not
    silently on a page."""
    charts = {chart.id for chart in CHARTS}
    names = [entry.name for entry in entries]
    repeated = {name for name in names if names.count(name) > 1}
    if repeated:
        raise ValueError(f"metrics declared twice: {sorted(repeated)}")
    # a level's field: a scalar of the embedding shown, or a method internal (logs)
    fields = {*EmbeddingMetrics.model_fields, *METHOD_INTERNALS}
    for entry in entries:
        if entry.chart is not None and entry.chart not in charts:
            raise ValueError(f"metric {entry.name!r}: no chart {entry.chart!r}")
        for level in (entry.healthy, entry.collapsed):
            if level is not None and level.field is not None and level.field not in fields:
                raise ValueError(f"metric {entry.name!r}: a level names no field {level.field!r}")
        if entry.measured_on != "method_internals" and entry.name in METHOD_INTERNALS:
            raise ValueError(f"metric {entry.name!r} is declared as a method internal too")
    declared = set(names)
    chart_of = {entry.name: entry.chart for entry in entries}
    for chart in CHARTS:
        if unknown := set(chart.also) - declared:
            raise ValueError(f"chart {chart.id!r} draws undeclared metrics {sorted(unknown)}")
        if own := sorted(name for name in chart.also if chart_of.get(name) == chart.id):
            raise ValueError(f"chart {chart.id!r} draws its own metrics {own} as guests too")
    defaults = [entry.name for entry in entries if entry.sweep and entry.sweep.default]
    if len(defaults) != 1:
        raise ValueError(f"one sweep metric must be the default, not {defaults}")


def sweep_metrics(entries: Sequence[MetricEntry]) -> list[MetricEntry]:
    """The metrics a sweep offers per run (its last epoch): the default first, then in
    declaration order."""
    offered = [(entry, entry.sweep) for entry in entries if entry.sweep is not None]
    return [entry for entry, _ in sorted(offered, key=lambda pair: not pair[1].default)]
