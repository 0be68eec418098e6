"""Collapse Lab client: watch whether your own training loop's embeddings collapse.

::

    import collapse_lab

    with collapse_lab.Monitor("http://localhost:8000", name="my-simsiam") as monitor:
        for epoch in range(epochs + 1):  # epoch 0: the untrained network
            ...
            monitor.log_epoch(epoch, z=probe_z, h=probe_h, labels=probe_labels, loss=loss)
    print(monitor.url)

Needs numpy and httpx only (no torch); ``collapse_lab.lightning`` holds the PyTorch
Lightning callback (``pip install 'collapse-lab-client[lightning]'``). The wire protocol is
in ``PROTOCOL.md`` and ``collapse_lab.wire``. Offline runs (``Monitor(offline=True)``) are
uploaded later with ``python -m collapse_lab sync DIR URL`` (``collapse_lab.sync``).
"""

__version__ = "0.1.0"

from .monitor import (
    AuthenticationError,
    CollapseLabError,
    CollapseLabWarning,
    Monitor,
    MonitorStats,
    Verdict,
    default_resume_key,
)

__all__ = [
    "AuthenticationError",
    "CollapseLabError",
    "CollapseLabWarning",
    "Monitor",
    "MonitorStats",
    "Verdict",
    "__version__",
    "default_resume_key",
]
