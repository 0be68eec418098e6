"""How tests/data/first-release.sqlite was made: by the first release (commit ce4d7e6)
through its own code and store, with the packages of 2026-12-05 (its code still runs):

    git worktree add /tmp/first ce4d7e6
    PYTHONPATH=/tmp/first python tests/data/build_first_release_db.py /tmp/first-release.sqlite

Two finished runs (simsiam and simsiam-no-stopgrad on digits, 2 epochs at 16 px: epochs 0-2),
their epoch records and projections (its own PCA layout) and a share of both.
tests/service/test_old_records.py opens it with today's code.
"""

import sys
from pathlib import Path

import numpy as np
from workers.engine.config import resolve_config

from backend.store import repository as repo
from backend.store.database import Database
from workers.engine.projection import pca_2d
from workers.engine.trainer import TrainHooks, train

out = Path(sys.argv[1])
out.unlink(missing_ok=True)
db = Database(f"sqlite:///{out}")
db.migrate()
ids = []
for preset in ("simsiam", "simsiam-no-stopgrad"):
    raw = {
        "preset": preset,
        "dataset": "digits",
        "epochs": 2,
        "image_size": 16,
        "train_size": 256,
        "probe_size": 128,
        "batch_size": 64,
        "device": "cpu",
    }
    config = resolve_config(raw)
    detail, _ = repo.create_run(db, raw, config.model_dump())
    run_id = detail["id"]
    claim, why, _ = repo.claim_run(db, run_id, "first-release-builder")
    assert claim is not None, why

    def on_epoch(record, run_id=run_id):
        repo.record_epoch(db, run_id, record)

    def on_embeddings(epoch, z, labels, run_id=run_id):
        points = np.round(pca_2d(np.asarray(z, dtype=np.float32)), 4).tolist()
        repo.record_projection(db, run_id, epoch, points, np.asarray(labels).tolist())

    hooks = TrainHooks(on_epoch=on_epoch, on_embeddings=on_embeddings)
    result = train(config, data_root=Path("/tmp/first-release-data"), hooks=hooks)
    repo.finish_run(
        db, run_id, claim.lease_token, "succeeded", verdict=result.verdict, reason="finished"
    )
    ids.append(run_id)
    print(preset, run_id, result.verdict["kind"])
repo.create_share(db, ids)
print("built", out)
