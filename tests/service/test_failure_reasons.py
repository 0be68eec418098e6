"""Training failures become one readable line on the run (and in its status event)."""

from __future__ import annotations

import pytest
import torch

from contract.datasets import DatasetError
from workers.engine.errors import TrainingError
from workers.lifecycle import describe_failure


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (DatasetError("no folder 'cats' in the data root"), "dataset error: no folder 'cats'"),
        (
            TrainingError(
                "the loss of method 'wmse' (plugin wmse) became NaN at epoch 3, step 2; "
                "try a learning rate lower than 0.05"
            ),
            "the loss of method 'wmse' (plugin wmse) became NaN at epoch 3",
        ),
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), "out of GPU"),
        (MemoryError(), "out of memory on the worker"),
        (KeyError("projector"), "KeyError: 'projector'"),
    ],
)
def test_failure_reasons_are_readable(error: BaseException, expected: str) -> None:
    reason = describe_failure(error)
    assert expected in reason
    assert "\n" not in reason
