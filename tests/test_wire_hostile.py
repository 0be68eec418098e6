"""The epoch message decoder (``collapse_lab.wire.decode_epoch``, which the server runs on
every upload) on hostile headers: each must be a ``MessageError`` (the API's 422), never a
RecursionError, OverflowError or numpy error (a 500), and nothing the protocol forbids
(``NaN``, ``true`` for a number, an epoch far beyond any training) may pass."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest
from collapse_lab import wire

Z = {"dtype": "<f4", "shape": [2, 2], "offset": 1024}  # room for 400-digit numbers
PAYLOAD = np.arange(4, dtype="<f4").tobytes()


def _body(header: bytes | dict[str, Any], payload: bytes = PAYLOAD) -> bytes:
    """A message whose arrays start at byte 1024 (the header padded to 1012 bytes), or the
    raw header bytes given as they are."""
    text = json.dumps(header).encode().ljust(1012) if isinstance(header, dict) else header
    return struct.pack("<8sI", wire.MAGIC, len(text)) + text + payload


def _header(**fields: Any) -> dict[str, Any]:
    return {"epoch": 0, "arrays": {"z": dict(Z)}, **fields}


def _raw(text: str) -> bytes:
    """A header written by hand (NaN, a 400-digit integer: what json.dumps would not)."""
    return _body(text.encode().ljust(1012))


def test_a_valid_message_still_decodes() -> None:
    message = wire.decode_epoch(_body(_header(loss=0.5, scalars={"lr": 1, "x": None})))
    assert message.loss == 0.5 and message.scalars == {"lr": 1.0, "x": None}
    assert message.z.tolist() == [[0, 1], [2, 3]]
    at_bound = wire.encode_epoch(wire.MAX_EPOCH, {"z": np.ones((2, 2))})
    assert wire.decode_epoch(at_bound).epoch == wire.MAX_EPOCH


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (_body(b"[" * 100_000 + b"]" * 100_000, b""), "nested too deeply"),
        (
            _body(b'{"epoch":0,"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}", b""),
            "nested too deeply",
        ),
        (
            _raw('{"epoch":0,"loss":1' + "0" * 400 + ',"arrays":{"z":' + json.dumps(Z) + "}}"),
            "loss",
        ),
        (
            _raw(
                '{"epoch":0,"scalars":{"a":1'
                + "0" * 400
                + '},"arrays":{"z":'
                + json.dumps(Z)
                + "}}"
            ),
            "scalars",
        ),
        (_raw('{"epoch":0,"loss":1' + "0" * 5000 + "}"), "not UTF-8 JSON"),  # over int()'s limit
        (_raw('{"epoch":0,"loss":NaN,"arrays":{"z":' + json.dumps(Z) + "}}"), "NaN"),
        (_raw('{"epoch":0,"loss":-Infinity,"arrays":{"z":' + json.dumps(Z) + "}}"), "Infinity"),
        (_raw('{"epoch":0,"scalars":{"a":Infinity},"arrays":{"z":' + json.dumps(Z) + "}}"), "null"),
        (_body(_header(loss=True)), "loss must be a finite number"),
        (_body(_header(scalars={"a": False})), "scalars must map names to finite numbers"),
        (_body({"epoch": 0, "arrays": {"z": {**Z, "scale": True}}}), "scale"),
        (_body({"epoch": 0, "arrays": {"z": {**Z, "scale": 10**400}}}), "scale"),
        (_body({"epoch": 0, "arrays": {"z": {**Z, "scale": 1e39}}}), "float32's range"),
        (_body({"epoch": 0, "arrays": {"z": {**Z, "scale": 1e-50}}}), "float32's range"),
        (_body({"epoch": 0, "arrays": {"z": {**Z, "shift": [1, 10**400]}}}), "shift"),
        (_body({"epoch": 0, "arrays": {"z": {**Z, "shift": [True, 0]}}}), "shift"),
        (_body({"epoch": 0, "arrays": {"z": {**Z, "dtype": ["<f4"]}}}), "dtype"),
        (_body({"epoch": 0, "arrays": {"z": {**Z, "shape": [0, 2**62]}}}), "larger than the body"),
        (_body({"epoch": 0, "arrays": {"z": {**Z, "shape": [2**62, 0]}}}), "larger than the body"),
        (_body(_header(epoch=wire.MAX_EPOCH + 1)), "log epochs, not steps"),
        (_body(_header(epoch=2**63)), "log epochs, not steps"),
    ],
)
def test_hostile_headers_are_message_errors(body: bytes, problem: str) -> None:
    with pytest.raises(wire.MessageError, match=problem):
        wire.decode_epoch(body)


def test_same_data_of_a_hostile_body_is_false_not_an_error() -> None:
    good = _body(_header())
    assert not wire.same_data(good, _body(b"[" * 100_000 + b"]" * 100_000, b""))
