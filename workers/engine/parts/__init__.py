"""Small typed building blocks shared by the SSL methods: MLP heads, linear predictors, the
EMA target update, Sinkhorn-Knopp equipartition, k-means and exact BatchNorm statistics for
evaluation."""

from workers.engine.parts.batchnorm import has_batchnorm, recompute_batchnorm_statistics
from workers.engine.parts.ema import cosine_momentum, ema_update
from workers.engine.parts.heads import LinearPredictor, mlp
from workers.engine.parts.kmeans import KMeansStats, kmeans
from workers.engine.parts.off_diagonal import off_diagonal
from workers.engine.parts.sinkhorn import sinkhorn_knopp

__all__ = [
    "KMeansStats",
    "LinearPredictor",
    "cosine_momentum",
    "ema_update",
    "has_batchnorm",
    "kmeans",
    "mlp",
    "off_diagonal",
    "recompute_batchnorm_statistics",
    "sinkhorn_knopp",
]
