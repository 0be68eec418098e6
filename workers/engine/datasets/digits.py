"""``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images).

Upscaled bilinearly to ``image_size`` and replicated to 3 channels (so colour jitter and the
lightly recipe treat it as RGB, like the other datasets). One labelled set: the probe is a
held-out part of it (the registry's rule ``held_out``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from workers.engine.datasets import LoadRequest
from workers.engine.images import ImageData


def load_digits(request: LoadRequest) -> ImageData:
    """All 1,797 digits, uint8 (N, 3, S, S), the class names from the registry."""
    from sklearn.datasets import load_digits as sklearn_digits  # only digits need sklearn

    bunch = sklearn_digits()
    size = request.config.image_size
    pixels = torch.from_numpy(bunch.images.astype(np.float32) * (255.0 / 16.0))  # (N, 8, 8)
    upscaled = F.interpolate(
        pixels.unsqueeze(1), size=(size, size), mode="bilinear", align_corners=False
    )
    images = upscaled.round_().clamp_(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    return ImageData.from_tensor(images, labels, list(request.spec.class_names or ()))
