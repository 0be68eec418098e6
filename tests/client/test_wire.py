"""collapse_lab.wire: the epoch message round-trips, keeps nearly collapsed embeddings
measurable, and its decoder (which the server may reuse) refuses malformed bodies."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from collapse_lab import wire

from tests.client.fake_server import decode as protocol_decode

RNG = np.random.default_rng(1)


def std_l2(z: np.ndarray) -> float:
    """docs/design.md's std_l2: mean over dims of the std over samples of z/||z||."""
    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
    return float(unit.std(axis=0).mean())


def effective_rank(z: np.ndarray) -> float:
    sigma = np.linalg.svd(z.astype(np.float64), compute_uv=False)
    p = sigma / sigma.sum() + 1e-7
    return float(np.exp(-(p * np.log(p)).sum()))


def test_round_trip_of_every_field() -> None:
    z, h = RNG.standard_normal((300, 16)) * 50, RNG.standard_normal((300, 40))
    views = RNG.standard_normal((64, 16)), RNG.standard_normal((64, 16))
    labels = RNG.integers(0, 10, 300)
    arrays = {"z": z, "h": h, "views_a": views[0], "views_b": views[1], "labels": labels}
    body = wire.encode_epoch(7, arrays, loss=0.5, scalars={"lr": 0.1}, logged_at=12.5)
    message = wire.decode_epoch(body)
    assert (message.epoch, message.loss, message.scalars, message.logged_at) == (
        7,
        0.5,
        {"lr": 0.1},
        12.5,
    )
    np.testing.assert_allclose(message.z, z, atol=1e-3 * np.abs(z - z.mean(0)).max())
    np.testing.assert_array_equal(message.labels, labels)
    assert message.views is not None
    np.testing.assert_allclose(message.views[1], views[1], atol=2e-3 * np.abs(views[1]).max())
    # The independent decoder of tests/client/fake_server.py reads the same values.
    np.testing.assert_array_equal(protocol_decode(body)["arrays"]["z"], message.z)
    exact = wire.decode_epoch(wire.encode_epoch(0, {"z": z}, precision="float32"))
    np.testing.assert_array_equal(exact.z, z.astype(np.float32))
    (length,) = struct.unpack_from("<I", body, 8)
    entries = json.loads(body[12 : 12 + length])["arrays"]
    assert all(entry["offset"] % wire.ALIGNMENT == 0 for entry in entries.values())


def test_exact_zero_rows_decode_to_zero() -> None:
    """A dead ReLU's all-zero rows come back as 0, not as a rounding vector with a direction
    of its own; the other rows as before."""
    z = np.maximum(RNG.standard_normal((512, 32)), 0).astype(np.float32)
    z[RNG.random(512) < 0.9] = 0.0
    message = wire.decode_epoch(wire.encode_epoch(0, {"z": z}))
    dead = ~z.any(axis=1)
    assert dead.sum() > 400
    assert not message.z[dead].any()
    np.testing.assert_allclose(message.z, z, atol=1e-3 * np.abs(z - z.mean(0)).max())
    body = wire.encode_epoch(0, {"z": z})
    np.testing.assert_array_equal(protocol_decode(body)["arrays"]["z"], message.z)


def test_nearly_collapsed_embeddings_stay_measurable() -> None:
    """Every row the same vector plus a 1e-4 spread in 8 of 128 dimensions: plain float16
    spends its bits on the shared vector, the centred encoding on the spread."""
    centre = (5 + RNG.random(128)).astype(np.float32)  # float16's step there is 0.004
    spread = np.zeros((2048, 128), dtype=np.float32)
    spread[:, :8] = 1e-4 * RNG.standard_normal((2048, 8))
    z = centre + spread
    sent = wire.decode_epoch(wire.encode_epoch(0, {"z": z})).z
    naive = z.astype(np.float16).astype(np.float32)
    assert std_l2(sent) == pytest.approx(std_l2(z), rel=0.01)
    assert effective_rank(sent - sent.mean(0)) == pytest.approx(
        effective_rank(z - z.mean(0)), rel=0.01
    )
    # What the centring is for: plain float16 rounds by more than the spread itself.
    reach = np.abs(spread).max()
    assert np.abs(sent - z).max() < 0.01 * reach < np.abs(naive - z).max()
    huge = wire.decode_epoch(wire.encode_epoch(0, {"z": z * 1e6})).z  # beyond float16's range
    assert np.isfinite(huge).all()


def _body(header: dict, payload: bytes = b"") -> bytes:
    text = json.dumps(header).encode().ljust(244)  # the arrays start at byte 256
    return struct.pack("<8sI", wire.MAGIC, len(text)) + text + payload


Z = {"dtype": "<f4", "shape": [2, 2], "offset": 256}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"short", "shorter than"),
        (b"NOTEPOCH" + b"\0" * 60, "bad magic"),
        (b"CLEPOCH\x02" + b"\0" * 60, "unsupported message version 2"),
        (_body({"epoch": 0, "arrays": {}}), "contains z"),
        (_body({"epoch": -1, "arrays": {"z": Z}}, b"\0" * 16), "non-negative"),
        (_body({"epoch": 0, "arrays": {"z": Z}}, b"\0" * 8), "runs past the end"),
        (_body({"epoch": 0, "arrays": {"z": Z}}, b"\0" * 20), "4 bytes after"),
        (_body({"epoch": 0, "arrays": {"z": {**Z, "dtype": "|O"}}}, b"\0" * 16), "dtype"),
        (_body({"epoch": 0, "arrays": {"z": Z, "q": Z}}, b"\0" * 16), "unknown arrays"),
        (_body({"epoch": 0, "arrays": {"z": {**Z, "offset": 12}}}, b"\0" * 16), "offset"),
        (
            _body({"epoch": 0, "arrays": {"z": Z, "h": Z}}, b"\0" * 16),
            "offset must be",  # h overlaps z
        ),
        (
            _body({"epoch": 0, "arrays": {"z": Z}}, np.full(4, np.inf, "<f4").tobytes()),
            "NaN or infinity",
        ),
        (
            _body({"epoch": 0, "arrays": {"z": {**Z, "scale": 0}}}, b"\0" * 16),
            "scale",
        ),
    ],
)
def test_decoder_refuses_malformed_bodies(body: bytes, problem: str) -> None:
    with pytest.raises(wire.MessageError, match=problem):
        wire.decode_epoch(body)


def test_storable_text_keeps_a_traceback_s_ends_within_the_limit() -> None:
    assert wire.storable_text("short", 10) == "short"
    assert wire.storable_text("a\x00b\udcff", 10) == "ab\\udcff"
    assert wire.is_storable(wire.storable_text("a\x00b\udcff", 10))
    text = "first line\n" + "frame\n" * 1000 + "last line"
    kept = wire.storable_text(text, 100)
    assert len(kept) == 100 and kept.startswith("first line") and kept.endswith("last line")
