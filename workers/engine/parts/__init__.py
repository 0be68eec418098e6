"""Small typed building blocks shared by the SSL methods: MLP heads, the EMA target update,
Sinkhorn-Knopp equipartition and k-means."""

from workers.engine.parts.ema import cosine_momentum, ema_update
from workers.engine.parts.heads import mlp
from workers.engine.parts.kmeans import kmeans
from workers.engine.parts.sinkhorn import sinkhorn_knopp

__all__ = ["cosine_momentum", "ema_update", "kmeans", "mlp", "sinkhorn_knopp"]
