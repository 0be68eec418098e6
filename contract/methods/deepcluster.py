"""DeepCluster's torch-free part: its options and catalogue entry (the API reads these).

Caron, Bojanowski, Joulin, Douze. "Deep Clustering for Unsupervised Learning of Visual
Features". ECCV 2018 (pseudo-labels, empty-cluster reassignment, balanced sampling), in the
DeepCluster-v2 form of Caron et al., NeurIPS 2020 (spherical k-means on projector outputs,
the centroids serve as the classifier's prototypes).
The training code is :mod:`workers.engine.methods.deepcluster`.
"""

from __future__ import annotations

from pydantic import Field

from contract.methods.base import MethodSpec
from contract.strict import StrictInput


class DeepClusterOptions(StrictInput):
    num_clusters: int = Field(
        100, ge=2, le=10_000, description="k of k-means (about 10x the number of classes)."
    )
    reassign_empty: bool = Field(
        True,
        description="When a k-means cluster empties, split a random non-empty one in two "
        "(perturbed copy of its centroid). Off: empty clusters stay dead.",
    )
    balanced_sampling: bool = Field(
        True,
        description="Sample training images with weights inversely proportional to the size "
        "of their cluster, so big clusters cannot dominate. Off: uniform shuffle.",
    )
    temperature: float = Field(
        0.1, gt=0, le=10, description="Temperature of the softmax over the prototypes."
    )


DEEPCLUSTER_SPEC = MethodSpec(
    name="deepcluster",
    title="DeepCluster",
    paper=(
        "Caron, Bojanowski, Joulin, Douze. Deep Clustering for Unsupervised Learning of Visual "
        "Features. ECCV 2018; DeepCluster-v2 variant from Caron et al., NeurIPS 2020."
    ),
    family="clustering",
    options=DeepClusterOptions,
    defaults={
        "optimizer": "sgd",
        "lr": 0.3,
        "weight_decay": 1e-5,
        "batch_size": 128,
        "proj_hidden_dim": 512,
        "proj_dim": 128,
    },
    implementation="workers.engine.methods.deepcluster:DeepCluster",
    z_description=(
        "The projector's output, the features k-means clusters each epoch; the cluster "
        "assignments give the assignment panel."
    ),
)
