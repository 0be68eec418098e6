"""Method internals on the wire (client/PROTOCOL.md section 8): Monitor.log_epoch's
``target``, ``p``, ``predictor_weight``, ``teacher``, ``student``, ``loss_terms`` and
``schedules``; the negotiation with a server that reads them (its registration reply lists
``accepts``) and with one of the first protocol (no ``accepts``: the internals are stripped,
the rest delivered), against the stand-in server of tests/client/fake_server.py."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from collapse_lab import CollapseLabWarning, Monitor, local, wire
from collapse_lab.monitor import SCHEDULE_ALIASES
from collapse_lab.sync import sync_paths

from tests.client.fake_server import FakeCollapseLab

RNG = np.random.default_rng(3)
N, D, K = 128, 16, 32


def _probabilities(n: int = N, k: int = K) -> np.ndarray:
    logits = RNG.standard_normal((n, k)) * 3
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _internals() -> dict[str, object]:
    return {
        "target": RNG.standard_normal((N, D)).astype(np.float32),
        "p": RNG.standard_normal((N, D)).astype(np.float32),
        "predictor_weight": RNG.standard_normal((D, D)).astype(np.float32),
        "teacher": _probabilities(),
        "student": _probabilities(),
        "loss_terms": {"loss_variance": 0.25},
        "schedules": {"weight_decay": 1e-4, "ema_momentum": 0.99},
    }


def test_the_internals_round_trip_with_probabilities_in_float32() -> None:
    z = RNG.standard_normal((N, D))
    teacher = _probabilities()
    teacher[:, 0] = 1e-7  # a probability centred float16 would lose
    teacher /= teacher.sum(axis=1, keepdims=True)
    arrays = {"z": z, "target": z + 1, "p": z * 2, "teacher": teacher, "student": teacher}
    message = wire.decode_epoch(wire.encode_epoch(1, arrays))
    assert set(message.internals) == {"target", "p", "teacher", "student"}
    np.testing.assert_array_equal(message.internals["teacher"], teacher)
    codes = wire.decode_epoch(wire.encode_epoch(1, {"z": z, "codes": teacher}))
    np.testing.assert_array_equal(codes.internals["codes"], teacher)
    with pytest.raises(wire.MessageError, match="send one of them"):
        wire.decode_epoch(wire.encode_epoch(1, {"z": z, "codes": teacher, "teacher": teacher}))
    np.testing.assert_allclose(message.internals["p"], z * 2, atol=2e-3 * np.abs(z * 2).max())


def test_without_arrays_copies_the_rest_byte_for_byte() -> None:
    z, h = RNG.standard_normal((N, D)), RNG.standard_normal((N, 8))
    full = wire.encode_epoch(2, {"z": z, "h": h, "target": z, "teacher": _probabilities()})
    plain = wire.encode_epoch(2, {"z": z, "h": h})
    stripped = wire.without_arrays(full, {"target", "teacher"})
    assert wire.array_names(stripped) == ["z", "h"]
    assert wire.same_data(stripped, plain)
    assert wire.decode_epoch(stripped).internals == {}


@pytest.mark.parametrize(
    ("arrays", "problem"),
    [
        ({"target": np.zeros((N - 1, D))}, "target has"),
        ({"target": np.zeros((N, D)), "p": np.zeros((N, D + 1))}, "p and target"),
        ({"teacher": np.full((N, K), 1 / K), "student": np.full((N, K + 1), 1 / (K + 1))}, "one"),
        ({"teacher": -np.full((N, K), 1 / K)}, "probabilities"),
    ],
)
def test_the_decoder_refuses_inconsistent_internals(
    arrays: dict[str, np.ndarray], problem: str
) -> None:
    body = wire.encode_epoch(0, {"z": RNG.standard_normal((N, D)), **arrays})
    with pytest.raises(wire.MessageError, match=problem):
        wire.decode_epoch(body)


def test_a_server_that_reads_the_internals_gets_them_all(server: FakeCollapseLab) -> None:
    server.accepts = list(wire.ARRAY_NAMES)
    monitor = Monitor(server.url, name="internals")
    z = RNG.standard_normal((N, D)).astype(np.float32)
    internals = _internals()
    monitor.log_epoch(0, z, lr=0.1, **internals)  # type: ignore[arg-type]
    assert monitor.finish(timeout=30)
    message = server.only_run().epochs[0]
    assert set(message["arrays"]) == {"z", "target", "p", "predictor_weight", "teacher", "student"}
    assert message["arrays"]["teacher"].dtype == np.float32
    assert message["scalars"] == {
        "lr": 0.1,
        "loss_variance": 0.25,
        "weight_decay": 1e-4,
        "ema_momentum": 0.99,
    }


def test_a_first_protocol_server_gets_the_embeddings_and_scalars_without_the_arrays(
    server: FakeCollapseLab,
) -> None:
    assert server.accepts is None  # answers without "accepts", refuses unknown arrays
    monitor = Monitor(server.url, name="old server")
    z = RNG.standard_normal((N, D)).astype(np.float32)
    with pytest.warns(CollapseLabWarning, match="predates the method internals"):
        for epoch in range(2):
            monitor.log_epoch(epoch, z, **_internals())  # type: ignore[arg-type]
        assert monitor.finish(timeout=30)
    run = server.only_run()
    assert sorted(run.epochs) == [0, 1] and monitor.stats.dropped == []
    assert set(run.epochs[1]["arrays"]) == {"z"}
    assert run.epochs[1]["scalars"]["loss_variance"] == 0.25  # loss terms travel as scalars


def test_caller_bugs_in_the_internals_raise_at_once(server: FakeCollapseLab) -> None:
    monitor = Monitor(server.url, name="bugs")
    z = RNG.standard_normal((N, D)).astype(np.float32)
    with pytest.raises(ValueError, match="target has 10 rows"):
        monitor.log_epoch(0, z, target=np.zeros((10, D)))
    with pytest.raises(ValueError, match="must have one shape: p predicts the target"):
        monitor.log_epoch(0, z, target=np.zeros((N, D)), p=np.zeros((N, 4)))
    with pytest.raises(ValueError, match="apply the softmax"):
        monitor.log_epoch(0, z, teacher=RNG.standard_normal((N, K)))
    with pytest.raises(ValueError, match="apply the softmax"):
        monitor.log_epoch(0, z, codes=RNG.standard_normal((N, K)))
    with pytest.raises(ValueError, match="given twice"):
        monitor.log_epoch(0, z, lr=0.1, schedules={"lr": 0.2})
    with pytest.raises(ValueError, match=rf"predictor_weight is \(5, 7\), expected \(d_t, {D}\)"):
        monitor.log_epoch(0, z, predictor_weight=np.zeros((5, 7)))
    with pytest.raises(ValueError, match=rf"predictor_weight is .*expected \({D}, {D}\)"):
        monitor.log_epoch(0, z, p=z, target=z, predictor_weight=np.zeros((4, D)))
    with pytest.raises(ValueError, match=r"predictor_weight must be \(d_t, d\)"):
        monitor.log_epoch(0, z, predictor_weight=np.zeros(D))
    with pytest.raises(ValueError, match=r"codes must be \(N, K\)"):
        monitor.log_epoch(0, z, codes=np.full(N, 0.5))
    with pytest.raises(TypeError, match="schedules must be a mapping"):
        monitor.log_epoch(0, z, schedules=[("lr", 0.1)])
    # a teacher broadcast against lightly's (1, 1, K) DINO centre
    with pytest.raises(ValueError, match=r"\(1, 128, 32\): a leading 1.*center.reshape\(-1\)"):
        monitor.log_epoch(0, z, teacher=_probabilities()[None], student=_probabilities())
    monitor.finish(timeout=10)


def test_an_offline_run_keeps_its_internals_and_syncs_without_them_to_an_older_server(
    server: FakeCollapseLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLLAPSE_LAB_MODE", "offline")
    monkeypatch.setenv("COLLAPSE_LAB_DIR", str(tmp_path))
    monitor = Monitor(name="offline internals", resume=False)
    z = RNG.standard_normal((N, D)).astype(np.float32)
    for epoch in range(2):
        monitor.log_epoch(epoch, z, **_internals())  # type: ignore[arg-type]
    assert monitor.finish(timeout=10) and monitor.run_dir is not None
    stored = wire.decode_epoch(local.epoch_path(monitor.run_dir, 1).read_bytes())
    # kept for a newer server (all but codes, which come without a teacher)
    assert set(stored.internals) == set(wire.INTERNAL_ARRAYS) - {"codes"}
    assert sync_paths([monitor.run_dir], server.url, None) == 0  # a first-protocol server
    run = server.only_run()
    assert sorted(run.epochs) == [0, 1] and set(run.epochs[1]["arrays"]) == {"z"}


def test_schedules_under_common_spellings_travel_under_the_servers_names(
    server: FakeCollapseLab,
) -> None:
    server.accepts = list(wire.ARRAY_NAMES)
    monitor = Monitor(server.url, name="aliases")
    z = RNG.standard_normal((N, D)).astype(np.float32)
    monitor.log_epoch(
        0, z, schedules={"momentum": 0.0, "wd": 0.04, "teacher_temp": 0.04, "learning_rate": 1}
    )
    with pytest.raises(ValueError, match="'momentum' is not a name, or given twice"):
        monitor.log_epoch(1, z, schedules={"ema_momentum": 0.9, "momentum": 0.9})
    assert monitor.finish(timeout=30)
    assert server.only_run().epochs[0]["scalars"] == {
        "ema_momentum": 0.0,
        "weight_decay": 0.04,
        "teacher_temperature": 0.04,
        "lr": 1,
    }
    # a free scalar called momentum stays what it is (an optimiser's, perhaps)
    assert "momentum" not in SCHEDULE_ALIASES.values()


def test_teacher_and_student_without_their_context_warn_once(server: FakeCollapseLab) -> None:
    """Without the EMA momentum, the centre's norm or both temperatures, a DINO-style
    collapse reads as a student-copy teacher too: the researcher is told at the first epoch
    what to log, not when the verdict says undetermined; a teacher without its student is
    told what to log instead; a clustering loop's codes and a loop that logs its momentum are
    not warned."""
    server.accepts = list(wire.ARRAY_NAMES)
    z = RNG.standard_normal((N, D)).astype(np.float32)
    probabilities = {"teacher": _probabilities(), "student": _probabilities()}
    bare = Monitor(server.url, name="bare dino")
    with pytest.warns(CollapseLabWarning, match="cause 'undetermined'") as caught:
        bare.log_epoch(0, z, **probabilities, schedules={"teacher_temp": 0.04})
        bare.log_epoch(1, z, **probabilities, schedules={"teacher_temp": 0.04})
    assert len([w for w in caught if "undetermined" in str(w.message)]) == 1
    assert bare.finish(timeout=30)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseLabWarning)
        for schedules in (
            {"momentum": 0.996},
            {"teacher_temp": 0.04, "student_temp": 0.1},
            {"center": 0.0},
        ):
            told = Monitor(server.url, name="dino with context")
            told.log_epoch(0, z, **probabilities, schedules=schedules)
            assert told.finish(timeout=30)
        codes = Monitor(server.url, name="swav codes")
        codes.log_epoch(0, z, codes=probabilities["teacher"])
        assert codes.finish(timeout=30)
    alone = Monitor(server.url, name="teacher alone")
    with pytest.warns(CollapseLabWarning, match="logs its codes as codes=") as caught:
        alone.log_epoch(0, z, teacher=probabilities["teacher"])
        alone.log_epoch(1, z, teacher=probabilities["teacher"])
    assert len([w for w in caught if "codes=" in str(w.message)]) == 1
    assert alone.finish(timeout=30)
    both = Monitor(server.url, name="codes and teacher")
    with pytest.raises(ValueError, match="send one of them"):
        both.log_epoch(0, z, codes=probabilities["teacher"], **probabilities)
    assert both.finish(timeout=30)
