"""External runs against the real stack: a plain PyTorch loop written here (not the engine's
trainer) logs its probe embeddings with ``collapse_lab.Monitor``; the API stores each epoch,
the ingest worker measures it with the engine's code, and the run gets epochs, a verdict and
projections like a built-in run. Also: the API going away mid-run loses nothing, a wrong
token stores nothing, and the protocol's idempotency and refusals (client/PROTOCOL.md)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from collapse_lab import AuthenticationError, Monitor, wire
from torch import nn

from backend.store import epochs as epoch_store
from backend.store.database import Database
from contract import EpochRecord
from tests.service.stack import ServiceStack, collect_until, is_terminal_status, wait_until
from workers.engine.probe import probe_epoch_record

TOKEN = "s3cret-token"  # the private_stack's


def _train_and_log(
    monitor: Monitor, *, contrastive: bool, epochs: int = 5, outage: ServiceStack | None = None
) -> None:
    """Clusters of noisy 32-d points, a 2-layer MLP, two noisy views per sample. The
    contrastive loop (InfoNCE) stays healthy; the positive-pairs-only loop (no negatives,
    high lr) collapses. With ``outage`` the API is down while epoch 3 is logged."""
    torch.manual_seed(0)
    labels = torch.arange(1024) % 4
    x = torch.randn(4, 32)[labels] * 2 + torch.randn(1024, 32)
    probe, probe_labels = x[:256], labels[:256]
    encoder = nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 32))
    optimizer = torch.optim.SGD(encoder.parameters(), lr=0.1 if contrastive else 0.5, momentum=0.9)

    def augment(t: torch.Tensor) -> torch.Tensor:
        return t + torch.randn_like(t)

    def log(epoch: int, loss: float | None) -> None:
        with torch.no_grad():
            views = (encoder(augment(probe[:128])), encoder(augment(probe[:128])))
            monitor.log_epoch(epoch, encoder(probe), labels=probe_labels, views=views, loss=loss)

    log(0, None)  # the untrained network: the verdict's baseline
    for epoch in range(1, epochs + 1):
        for batch in x[torch.randperm(len(x))].split(128):
            a = F.normalize(encoder(augment(batch)), dim=1)
            b = F.normalize(encoder(augment(batch)), dim=1)
            if contrastive:
                loss = F.cross_entropy(a @ b.T / 0.2, torch.arange(len(batch)))
            else:
                loss = -(a * b).sum(dim=1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if outage is not None and epoch == 3:
            outage.stop_api()
            log(epoch, loss.item())
            time.sleep(3)
            outage.start_api()
            continue
        log(epoch, loss.item())


def _finished(api: httpx.Client, run_id: str) -> dict[str, Any] | None:
    run = api.get(f"/api/runs/{run_id}").json()
    return run if run["status"] in ("succeeded", "failed") else None


@pytest.mark.slow
def test_a_plain_torch_loop_gets_epochs_verdicts_and_projections(
    stack: ServiceStack, api: httpx.Client
) -> None:
    collapsing = Monitor(stack.base_url, name="positives-only", config={"lr": 0.5})
    assert collapsing.run_id and collapsing.url == f"{stack.base_url}/runs/{collapsing.run_id}"
    _train_and_log(collapsing, contrastive=False)
    assert collapsing.finish(timeout=60)

    healthy = Monitor(stack.base_url, name="infonce", config={"lr": 0.1, "temperature": 0.2})
    with pytest.warns(UserWarning, match="unreachable|cannot reach|not reachable"):
        _train_and_log(healthy, contrastive=True, outage=stack)
        assert healthy.finish(timeout=90)
    assert healthy.stats.dropped == []

    for monitor, expected in ((collapsing, "complete_collapse"), (healthy, "healthy")):
        run = wait_until(lambda m=monitor: _finished(api, m.run_id), 120, what="verdict")
        assert run["status"] == "succeeded", run
        assert run["verdict"]["kind"] == expected, run["verdict"]
        assert run["source"]["integration"] == "monitor" and run["source"]["host"]
        assert run["method"] == "external" and run["config"] is None
        assert run["external"]["config"]["lr"] == (0.5 if expected != "healthy" else 0.1)
        records = api.get(f"/api/runs/{monitor.run_id}/epochs").json()
        assert [r["epoch"] for r in records] == [0, 1, 2, 3, 4, 5]  # none lost in the outage
        assert records[-1]["projector"]["cos_pos"] is not None
        assert records[-1]["projector"]["knn_top1"] is not None
        assert records[-1]["backbone"] is None  # no h was logged
        events = collect_until(
            api, f"/api/runs/{monitor.run_id}/events", stop=is_terminal_status, timeout=30
        )
        assert sum(e.event == "epoch" for e in events) == 6
        wait_until(
            lambda m=monitor: 5 in api.get(f"/api/runs/{m.run_id}/projections").json()["epochs"],
            120,
            what="the last epoch's projection",
        )
    collapsed = api.get(f"/api/runs/{collapsing.run_id}/epochs").json()
    assert collapsed[-1]["verdict"]["onset_epoch"] is not None
    assert collapsed[-1]["projector"]["std_l2_sqrt_d"] < collapsed[0]["projector"]["std_l2_sqrt_d"]


def test_a_wrong_token_is_refused_and_nothing_is_stored(private_stack: ServiceStack) -> None:
    owner = {"Authorization": f"Bearer {TOKEN}"}

    def external_runs() -> list[str]:  # the session's stack holds other tests' runs too
        listed = httpx.get(
            f"{private_stack.base_url}/api/runs", params={"method": "external"}, headers=owner
        ).json()
        return [run["id"] for run in listed["data"]]

    before = external_runs()
    with pytest.raises(AuthenticationError):
        Monitor(private_stack.base_url, token="wrong", name="sneaky")
    body = wire.encode_epoch(0, {"z": np.ones((4, 3))})
    refused = httpx.put(
        f"{private_stack.base_url}/api/external-runs/abc/epochs/0",
        content=body,
        headers={"Content-Type": wire.CONTENT_TYPE, "Authorization": "Bearer wrong"},
    )
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert external_runs() == before


def test_the_protocol_is_idempotent_and_refuses_what_it_must(idle_stack: ServiceStack) -> None:
    client = httpx.Client(base_url=idle_stack.base_url, timeout=30)
    registration = {"name": "raw", "config": {"a": 1}, "source": {"host": "h", "script": "s.py"}}
    key = {"Idempotency-Key": "0" * 32}
    first = client.post("/api/external-runs", json=registration, headers=key)
    again = client.post("/api/external-runs", json=registration, headers=key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json() and first.json()["limits"]["max_probe_size"] == 10_000
    unknown = client.post("/api/external-runs", json={**registration, "nme": "x"})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "nme"]

    run_id = first.json()["id"]
    url = f"/api/external-runs/{run_id}/epochs"
    binary = {"Content-Type": wire.CONTENT_TYPE}
    rng = np.random.default_rng(0)
    body = wire.encode_epoch(0, {"z": rng.standard_normal((16, 4))})
    assert client.put(f"{url}/0", content=body, headers=binary).status_code == 202
    duplicate = client.put(f"{url}/0", content=body, headers=binary)
    assert duplicate.status_code == 200 and duplicate.json()["status"] == "duplicate"
    other = wire.encode_epoch(0, {"z": rng.standard_normal((16, 4))})
    conflict = client.put(f"{url}/0", content=other, headers=binary)
    assert conflict.status_code == 409 and conflict.json()["code"] == "epoch_conflict"
    assert client.put(f"{url}/1", content=body, headers={"Content-Type": "x/y"}).status_code == 415
    garbage = client.put(f"{url}/1", content=b"not an epoch", headers=binary)
    assert garbage.status_code == 422 and "magic" in garbage.json()["detail"]
    mismatch = client.put(f"{url}/2", content=body, headers=binary)
    assert mismatch.status_code == 422 and "path says 2" in mismatch.json()["detail"]
    reshaped = wire.encode_epoch(1, {"z": rng.standard_normal((8, 4))})
    changed = client.put(f"{url}/1", content=reshaped, headers=binary)
    assert changed.status_code == 422 and "probe set is fixed" in changed.json()["detail"]

    finish = {"status": "succeeded", "error": None, "epochs_dropped": [], "epochs_skipped": []}
    closed = client.post(f"/api/external-runs/{run_id}/finish", json=finish)
    assert closed.status_code == 202 and closed.json() == {"id": run_id, "status": "succeeded"}
    late_body = wire.encode_epoch(1, {"z": np.ones((16, 4))})
    late = client.put(f"{url}/1", content=late_body, headers=binary)
    assert late.status_code == 409 and late.json()["code"] == "run_closed"
    # a sync started again without its sync.json sends the stored epochs again
    resent = client.put(f"{url}/0", content=body, headers=binary)
    assert resent.status_code == 200 and resent.json()["status"] == "duplicate"
    # ...and an epoch file edited after its sync is told the clash, not that the run ended
    resent_other = client.put(f"{url}/0", content=other, headers=binary)
    assert resent_other.status_code == 409 and resent_other.json()["code"] == "epoch_conflict"
    run = client.get(f"/api/runs/{run_id}").json()
    assert run["name"] == "raw" and run["source"] == registration["source"]
    assert run["external"]["finish"]["status"] == "succeeded"
    missing = client.put("/api/external-runs/nope/epochs/0", content=body, headers=binary)
    assert missing.status_code == 404

    cancelled = client.post("/api/external-runs", json=registration).json()["id"]
    assert client.post(f"/api/runs/{cancelled}/cancel").status_code == 202
    refused = client.put(f"/api/external-runs/{cancelled}/epochs/0", content=body, headers=binary)
    assert refused.status_code == 409 and refused.json()["code"] == "run_closed"
    assert "cancelled on its page" in refused.json()["detail"]
    client.close()


def test_a_run_whose_job_was_killed_is_cancelled_and_can_then_be_deleted(
    stack: ServiceStack, api: httpx.Client
) -> None:
    """A job killed after two epochs never finishes its run. A cancel on its page ends it
    (cancelled, with the verdict of what arrived, within seconds: no loop has to answer),
    a loop still alive is told it was cancelled, and the run can then be deleted."""
    run_id = api.post("/api/external-runs", json={"name": "killed job"}).json()["id"]
    url = f"/api/external-runs/{run_id}/epochs"
    binary = {"Content-Type": wire.CONTENT_TYPE}
    z = np.random.default_rng(5).standard_normal((128, 16)).astype(np.float32)
    for epoch in (0, 1):
        body = wire.encode_epoch(epoch, {"z": z})
        assert api.put(f"{url}/{epoch}", content=body, headers=binary).status_code == 202
    wait_until(
        lambda: api.get(f"/api/runs/{run_id}").json()["last_epoch"] == 1 or None,
        120,
        what="both epochs measured",
    )
    deleted_early = api.delete(f"/api/runs/{run_id}")
    assert deleted_early.status_code == 409 and "cancel it" in deleted_early.json()["detail"]

    assert api.post(f"/api/runs/{run_id}/cancel").status_code == 202
    run = wait_until(
        lambda: (r := api.get(f"/api/runs/{run_id}").json())["status"] == "cancelled" and r,
        60,
        what="the run cancelled",
    )
    assert run["verdict"]["kind"] == "healthy" and run["last_epoch"] == 1
    events = collect_until(
        api, f"/api/runs/{run_id}/events", stop=lambda e: e.id == run["last_event_id"]
    )
    closing = [event.data for event in events if event.event == "status"][-1]
    assert (
        closing["reason"] == "cancelled on request: its training loop's later uploads are refused"
    )
    assert closing["epochs"] == run["epochs"] == 1  # as the run resource counts them
    late = api.put(f"{url}/2", content=wire.encode_epoch(2, {"z": z}), headers=binary)
    assert late.status_code == 409 and "cancelled on its page" in late.json()["detail"]
    # the loop's finish, if it comes, is told the same: the run keeps its end and its reason
    finish = {"status": "succeeded", "error": None, "epochs_dropped": [], "epochs_skipped": []}
    refused = api.post(f"/api/external-runs/{run_id}/finish", json=finish)
    assert refused.status_code == 409 and refused.json()["code"] == "run_closed"
    assert api.get(f"/api/runs/{run_id}").json()["external"]["finish"] is None
    assert api.delete(f"/api/runs/{run_id}").status_code == 204
    assert api.get(f"/api/runs/{run_id}").status_code == 404


@pytest.mark.slow
def test_an_epoch_uploaded_after_later_ones_revises_their_verdicts(
    stack: ServiceStack, api: httpx.Client
) -> None:
    """A job requeued on a node that reaches the server uploads epochs 3-5 (its raw z a tenth
    of the size it had when untrained); the offline part with epoch 0 is synced afterwards.
    Before epoch 0 the run looks healthy (epoch 3 is its only baseline); once the ingest
    worker has it, the stored verdicts of epochs 3-5 and the run's live verdict are complete
    collapse from epoch 3, and the run closes with the same verdict and cause."""
    registered = api.post("/api/external-runs", json={"name": "synced late"}).json()
    run_id = registered["id"]
    url = f"/api/external-runs/{run_id}/epochs"
    binary = {"Content-Type": wire.CONTENT_TYPE}
    z = np.random.default_rng(3).standard_normal((256, 32)).astype(np.float32)

    def upload(epoch: int, scale: float) -> None:
        body = wire.encode_epoch(epoch, {"z": z * scale})
        assert api.put(f"{url}/{epoch}", content=body, headers=binary).status_code == 202

    def kinds() -> list[tuple[int, str]]:
        records = api.get(f"/api/runs/{run_id}/epochs").json()
        return [(r["epoch"], r["verdict"]["kind"]) for r in records]

    for epoch in (3, 4, 5):
        upload(epoch, 0.1)
    wait_until(lambda: len(kinds()) == 3 or None, 120, what="epochs 3-5 measured")
    assert kinds() == [(3, "healthy"), (4, "healthy"), (5, "healthy")]
    upload(0, 1.0)
    collapsed = [(0, "healthy")] + [(e, "complete_collapse") for e in (3, 4, 5)]
    wait_until(lambda: kinds() == collapsed or None, 120, what="verdicts revised")
    live = api.get(f"/api/runs/{run_id}").json()
    assert live["status"] == "running" and live["verdict"]["kind"] == "complete_collapse"
    assert live["verdict"]["onset_epoch"] == 3

    finish = {"status": "succeeded", "error": None, "epochs_dropped": [], "epochs_skipped": []}
    assert api.post(f"/api/external-runs/{run_id}/finish", json=finish).status_code == 202
    run = wait_until(
        lambda: (r := api.get(f"/api/runs/{run_id}").json())["status"] == "succeeded" and r,
        120,
        what="the run closed",
    )
    assert run["verdict"] == api.get(f"/api/runs/{run_id}/epochs").json()[-1]["verdict"]
    listed = api.get("/api/runs", params={"verdict": "complete_collapse"}).json()["data"]
    assert run_id in [r["id"] for r in listed]


@pytest.mark.slow
def test_a_pass_lost_before_it_revised_leaves_the_revision_to_the_next(
    stack: ServiceStack, api: httpx.Client
) -> None:
    """As above, but the worker that stored the late epoch 0 is lost before it revised the
    later verdicts (epoch 0 is stored here as that worker stored it, and nothing else). The
    run keeps the mark of its stale verdicts, and the next pass (the finish call's) revises
    epochs 3-5 to complete collapse before it closes the run."""
    registered = api.post("/api/external-runs", json={"name": "lost pass"}).json()
    run_id = registered["id"]
    binary = {"Content-Type": wire.CONTENT_TYPE}
    z = np.random.default_rng(4).standard_normal((256, 32)).astype(np.float32)
    history: list[EpochRecord] = []
    for epoch in (3, 4, 5):
        body = wire.encode_epoch(epoch, {"z": z * 0.1})
        put = api.put(f"/api/external-runs/{run_id}/epochs/{epoch}", content=body, headers=binary)
        assert put.status_code == 202
        history.append(probe_epoch_record(epoch, z * 0.1, history=history))

    def kinds() -> list[tuple[int, str]]:
        records = api.get(f"/api/runs/{run_id}/epochs").json()
        return [(r["epoch"], r["verdict"]["kind"]) for r in records]

    wait_until(lambda: len(kinds()) == 3 or None, 120, what="epochs 3-5 measured")
    db = Database(stack.database_url)
    try:
        assert epoch_store.record_epoch(db, run_id, probe_epoch_record(0, z, history=history))
        stored = epoch_store.typed_epoch_records(db, run_id)
    finally:
        db.dispose()
    assert [r.verdict.kind for r in stored if r.verdict] == ["healthy"] * 4

    finish = {"status": "succeeded", "error": None, "epochs_dropped": [], "epochs_skipped": []}
    assert api.post(f"/api/external-runs/{run_id}/finish", json=finish).status_code == 202
    wait_until(
        lambda: api.get(f"/api/runs/{run_id}").json()["status"] == "succeeded",
        120,
        what="the run closed",
    )
    assert kinds() == [(0, "healthy")] + [(e, "complete_collapse") for e in (3, 4, 5)]
    assert api.get(f"/api/runs/{run_id}").json()["verdict"]["onset_epoch"] == 3
