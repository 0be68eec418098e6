"""DeepCluster: classify each image into the k-means cluster its features fell in last epoch.

Caron, Bojanowski, Joulin, Douze. "Deep Clustering for Unsupervised Learning of Visual
Features". ECCV 2018 (pseudo-labels, empty-cluster reassignment, balanced sampling), in the
DeepCluster-v2 form of Caron et al., NeurIPS 2020 (spherical k-means on projector outputs,
the centroids serve as the classifier's prototypes).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from contract import RunConfig
from contract.methods.deepcluster import DEEPCLUSTER_SPEC, DeepClusterOptions
from workers.engine.mechanisms import mean_entropy, one_hot_usage, usage_entropy
from workers.engine.methods.base import LossOutput, Method, StepInfo
from workers.engine.parts import KMeansStats, kmeans, mlp

KMEANS_ITERATIONS = 10


def pseudo_label_loss(
    z: torch.Tensor, centroids: torch.Tensor, labels: torch.Tensor, temperature: float
) -> torch.Tensor:
    """DeepCluster-v2's classification loss: cross-entropy of softmax(ẑ C^T / T) against the
    k-means pseudo-labels. z: (B, d) projector outputs (normalised here), centroids: (K, d)
    unit norm, labels: (B,) int64. Returns a scalar."""
    logits = F.normalize(z, dim=1) @ centroids.t() / temperature
    return F.cross_entropy(logits, labels)


class DeepCluster(Method):
    """Backbone -> 2-layer projector; before each epoch, spherical k-means over the whole
    training set's projector outputs gives pseudo-labels and the (frozen) prototypes."""

    spec = DEEPCLUSTER_SPEC
    centroids: torch.Tensor  # buffer (K, d)
    centroids_fitted: torch.Tensor  # buffer, bool scalar
    pseudo_labels: torch.Tensor  # buffer (N_train,)

    def __init__(self, backbone: nn.Module, rep_dim: int, config: RunConfig) -> None:
        super().__init__(backbone, rep_dim, config)
        self.options: DeepClusterOptions
        k = self.options.num_clusters
        self.projector = mlp(rep_dim, config.proj_hidden_dim, config.proj_dim, 2)
        self.register_buffer("centroids", F.normalize(torch.randn(k, config.proj_dim), dim=1))
        # False until the first k-means: later ones start from the previous centroids
        self.register_buffer("centroids_fitted", torch.tensor(False))
        # recomputed before every epoch, so not part of the checkpoint
        self.register_buffer("pseudo_labels", torch.zeros(0, dtype=torch.long), persistent=False)
        self.cluster_sizes = torch.zeros(k, dtype=torch.long)
        # what this epoch's k-means and its empty-cluster reassignment did (probe_logs)
        self.balancing: dict[str, float] = {}

    def on_epoch_start(self, epoch: int, encode_train_set: Callable[[], torch.Tensor]) -> None:
        """k-means over the projector outputs (N_train, d) of the clean training images.

        The first k-means starts from k-means++ seeds; each later one starts from the previous
        epoch's centroids, so cluster ids stay stable from epoch to epoch. The features have
        moved since those centroids were fitted, so some clusters can lose all their images:
        that is where empty-cluster reassignment matters (Caron et al. 2018, Sec. 3.3).
        """
        features = encode_train_set()
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        k = self.options.num_clusters
        fitted = bool(self.centroids_fitted)
        stats = KMeansStats()
        centroids, labels = kmeans(
            features,
            k,
            KMEANS_ITERATIONS,
            generator,
            reassign_empty=self.options.reassign_empty,
            init=self.centroids if fitted else None,
            stats=stats,
        )
        self.balancing = {
            "usage_entropy_after_balancing": usage_entropy(one_hot_usage(labels, k)),
            "clusters_reassigned": float(stats.reassigned),
        }
        if fitted:  # where the moved features fall at last epoch's centroids, before k-means
            previous = (F.normalize(features.float(), dim=1) @ self.centroids.t()).argmax(dim=1)
            self.balancing["usage_entropy_before_balancing"] = usage_entropy(
                one_hot_usage(previous, k)
            )
        self.centroids.copy_(centroids.to(self.centroids.device))
        self.centroids_fitted.fill_(True)
        self.pseudo_labels = labels.to(self.centroids.device)
        self.cluster_sizes = torch.bincount(labels.cpu(), minlength=self.options.num_clusters)

    def sampling_weights(self) -> torch.Tensor | None:
        """(N_train,) weights 1 / |cluster of the image| (balanced sampling), or None."""
        if not self.options.balanced_sampling or self.pseudo_labels.numel() == 0:
            return None
        return 1.0 / self.cluster_sizes[self.pseudo_labels.cpu()].double()

    def training_loss(
        self, views: list[torch.Tensor], indices: torch.Tensor, step: StepInfo
    ) -> LossOutput:
        if self.pseudo_labels.numel() == 0:
            raise RuntimeError("DeepCluster needs on_epoch_start() before training")
        h = self.backbone(torch.cat(views[:2]))  # (2B, rep_dim)
        z = self.projector(h)
        labels = self.pseudo_labels[indices.to(self.pseudo_labels.device)].repeat(2)
        loss = pseudo_label_loss(z, self.centroids, labels, self.options.temperature)
        return LossOutput(loss, self.monitor())

    @torch.no_grad()
    def cluster_assignments(self, z: torch.Tensor) -> torch.Tensor | None:
        """z: (B, d) -> (B,) index of the nearest centroid (cosine)."""
        return (F.normalize(z, dim=1) @ self.centroids.t()).argmax(dim=1)

    def num_clusters(self) -> int | None:
        return self.options.num_clusters

    @torch.no_grad()
    def cluster_probabilities(self, z: torch.Tensor) -> torch.Tensor | None:
        """z: (B, d) -> (B, K) the classifier's softmax(ẑ C^T / temperature)."""
        logits = F.normalize(z, dim=1) @ self.centroids.t() / self.options.temperature
        return F.softmax(logits.float(), dim=1)

    def prototype_vectors(self) -> torch.Tensor | None:
        return self.centroids.detach()

    @torch.no_grad()
    def probe_logs(self, views: list[torch.Tensor]) -> dict[str, float]:
        """The sharpness of the classifier's softmax on the probe (assignment_entropy) and
        what this epoch's k-means did: the training set's cluster usage at the previous
        centroids (before) and after k-means with its empty-cluster reassignment, and how
        many clusters were reassigned. Before the first k-means (epoch 0) only the first."""
        z = self.projector(self.backbone(views[0]))
        probabilities = self.cluster_probabilities(z)
        assert probabilities is not None
        return {"assignment_entropy": float(mean_entropy(probabilities.double())), **self.balancing}

    def monitor(self) -> dict[str, float]:
        """Cluster usage of the last k-means: non-empty clusters and size entropy (nats)."""
        sizes = self.cluster_sizes.double()
        if sizes.sum() == 0:
            return {}
        p = sizes[sizes > 0] / sizes.sum()
        return {
            "kmeans_nonempty_clusters": float((sizes > 0).sum()),
            "kmeans_entropy": float(-(p * p.log()).sum()),
            "kmeans_entropy_max": math.log(len(sizes)),
        }
