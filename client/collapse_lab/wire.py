"""The binary epoch message of the Collapse Lab wire protocol (``PROTOCOL.md``), both ways.

One message carries one epoch: a JSON header (epoch, loss, scalars, where each array lies)
and the raw little-endian arrays after it::

    bytes 0-7     MAGIC = b"CLEPOCH" + version byte 0x01
    bytes 8-11    H, the header length, uint32 little-endian
    bytes 12..    the header, H bytes of UTF-8 JSON
    then          each array at its "offset" (a multiple of 64, so the reader gets aligned
                  zero-copy views), in offset order, the body ending with the last array

Float arrays travel as float16 *centred and scaled*: ``x = data * scale + shift`` with a
float32 ``scale`` and a float32 per-column ``shift`` (the column means). Plain float16
keeps 11 significant bits of each value; for an embedding that is nearly collapsed (every
row the same vector plus a tiny spread), those bits go to the shared vector and the spread,
which is exactly what the collapse diagnostics measure, drowns in rounding noise. Centred,
the 11 bits describe the spread itself. The scale also keeps values beyond float16's range
(65504) finite.

Method internals (``PROTOCOL.md`` section 8) are further arrays on the same probe rows:
``target`` and ``p`` (the target branch's and the predictor's outputs), ``teacher`` and
``student`` (a DINO-style loop's probabilities), ``codes`` (a clustering loop's assignments
after balancing) and ``predictor_weight`` (a matrix); the last four travel as float32 (a
probability of 1e-6 would not survive centred float16). A server that predates
them refuses unknown arrays: the client sends them only where the registration reply lists
them (``accepts``) and strips them otherwise (:func:`without_arrays`).

The server may import :func:`decode_epoch` (it needs numpy only) so that both ends share
one implementation of the format; it validates everything it reads and raises
:class:`MessageError` on a malformed body.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAGIC = b"CLEPOCH\x01"
CONTENT_TYPE = "application/x-collapse-lab-epoch"
ALIGNMENT = 64
# Little-endian dtypes a message may contain: float16 (the default), float32 (the
# ``precision="float32"`` option) and int32 for labels.
FLOAT_DTYPES = ("<f2", "<f4")
LABEL_DTYPE = "<i4"
# The arrays of the first protocol (every server reads them) and the method internals.
BASE_ARRAYS = ("z", "h", "views_a", "views_b", "labels")
INTERNAL_ARRAYS = ("target", "p", "predictor_weight", "teacher", "student", "codes")
ARRAY_NAMES = BASE_ARRAYS + INTERNAL_ARRAYS
# Always float32: probabilities (entropies read their smallest values) and a small matrix.
FLOAT32_ARRAYS = ("predictor_weight", "teacher", "student", "codes")
# Internals with one row per probe sample (z's rows); predictor_weight is any matrix.
ROW_ARRAYS = ("h", "labels", "target", "p", "teacher", "student", "codes")
# Internals holding probabilities over K prototypes, one row per sample summing to 1: DINO's
# teacher and student, or a clustering loop's codes (never both: one is read as DINO's,
# the other as balancing's, workers/engine/cause.py).
PROBABILITY_ARRAYS = ("teacher", "student", "codes")
# The highest epoch a message (and the upload path) may carry. The longest self-supervised
# schedules run about 1,000 epochs (the built-in runs stop at 1,000): 100,000 leaves a
# hundredfold margin, refuses a loop that logs its optimizer step as the epoch within hours,
# and bounds what the server keeps per epoch index (the run list's rank sparklines).
MAX_EPOCH = 100_000
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# The diagnostics square values in float32 (row norms, covariances), which overflows (or
# rounds a spread to 0) from about 1e19; no embedding comes near 1e15. The server refuses
# an array beyond it (the projection's float16 copy of z is scaled into range first:
# workers/lifecycle.py, in_float16_range); the client skips such an epoch as diverged.
MAX_MAGNITUDE = 1e15
# How far a row of PROBABILITY_ARRAYS may sum from 1 (the client checks
# it in log_epoch, the server again on upload).
PROBABILITY_SUM_ATOL = 1e-3
# The registration's and the finish call's text limits: a run's name (a copy of the server's
# MAX_NAME_CHARS, contract/labels.py: tests/test_layers.py checks they agree), its resume
# key, and why the client stopped it.
MAX_NAME = 200
MAX_RESUME_KEY = 200
MAX_STOP_REASON = 500
MAX_ERROR = 2000  # the finish call's error: a training's exception, traceback and all
_PREFIX = struct.Struct("<8sI")
CODES_OR_TEACHER = (
    "codes (a clustering loop's assignments) and teacher/student (a DINO-style loop's "
    "probabilities) are two readings of one thing: send one of them"
)
TEACHER_STUDENT_SHAPE = "teacher and student must have one shape (N, K)"
# What a loop that sends PROBABILITY_ARRAYS that are not should do (both ends say it).
APPLY_SOFTMAX = "apply the softmax, with its temperature and centre, first"


class MessageError(ValueError):
    """A body that is not a valid epoch message; the text says what is wrong."""


@dataclass(frozen=True)
class EpochMessage:
    """A decoded epoch: float32 arrays as the client logged them (up to float16 rounding)."""

    epoch: int
    z: np.ndarray
    h: np.ndarray | None = None
    views: tuple[np.ndarray, np.ndarray] | None = None
    labels: np.ndarray | None = None
    loss: float | None = None
    scalars: dict[str, float | None] = field(default_factory=dict)
    logged_at: float | None = None
    # the method internals present, by name (INTERNAL_ARRAYS)
    internals: dict[str, np.ndarray] = field(default_factory=dict)


def _finite_number(value: Any) -> float | None:
    """``value`` as a finite float, or None when it is not a number (``true`` is not one) or
    has no finite float (an integer of 400 digits)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def peak(array: np.ndarray) -> float:
    """The largest magnitude in a non-empty array (no copy: an upload weighs up to 256 MiB)."""
    return max(float(array.max()), -float(array.min()))


def empty_problem(name: str, shape: tuple[int, ...]) -> str | None:
    """Why an array of ``shape`` cannot be measured although it decodes: it holds no
    values. Both ends say it: the client in ``log_epoch``, the server on upload."""
    if 0 not in shape:
        return None
    return (
        f"{name} has shape {list(shape)}, no values: every array needs at least one row and "
        "one column"
    )


def predictor_weight_problem(internals: Mapping[str, np.ndarray], width: int) -> str | None:
    """Why the internals' ``predictor_weight`` cannot be the linear predictor from z's
    ``width`` onto the target's (p's or target's width, when one is sent), or None (also
    when there is none). Both ends say it: the client in ``log_epoch``, the server on upload."""
    weight = internals.get("predictor_weight")
    if weight is None:
        return None
    outputs = next((internals[n].shape[1] for n in ("p", "target") if n in internals), None)
    if weight.shape[1] == width and outputs in (None, weight.shape[0]):
        return None
    expected = f"({outputs if outputs is not None else 'd_t'}, {width})"
    return (
        f"predictor_weight is {weight.shape}, expected {expected}: the linear predictor maps "
        "z's width onto the target's (p = z @ W.T)"
    )


def is_unicode(text: str) -> bool:
    """Whether ``text`` is valid Unicode: JSON's ``"\\ud800"`` parses to a lone surrogate,
    which no UTF-8 encoder (the database's, a response's) takes afterwards."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_storable(text: str) -> bool:
    """Whether a server can store ``text``: valid Unicode (:func:`is_unicode`) without NUL,
    which PostgreSQL's text and JSON types refuse (the server answers 422)."""
    return "\x00" not in text and is_unicode(text)


def storable_text(text: str, limit: int) -> str:
    """``text`` as a server stores it (:func:`is_storable`) within ``limit`` characters:
    NULs dropped, lone surrogates (an ``OSError``'s undecodable file name) escaped, and a
    longer text cut in its middle, where a traceback's first line names the failure and
    its last the cause (a DataLoader worker's error carries the worker's traceback)."""
    text = text.replace("\x00", "").encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) <= limit:
        return text
    cut = " … "
    head = (limit - len(cut)) // 2
    return text[:head] + cut + text[len(text) - (limit - len(cut) - head) :]


def unstorable_text(value: Any) -> tuple[list[str | int], str] | None:
    """The first string or key in a JSON-like ``value`` that :func:`is_storable` refuses,
    with where it is (the keys and indices leading to it, a key's own path ending in that
    key), or None."""
    pending: list[tuple[Any, list[str | int]]] = [(value, [])]
    while pending:  # not recursive: a config may nest as deep as its parser allowed
        item, where = pending.pop()
        if isinstance(item, str) and not is_storable(item):
            return where, item
        if isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                if isinstance(key, str) and not is_storable(key):
                    return [*where, key], key
                pending.append((child, [*where, key]))
        elif isinstance(item, list | tuple):
            pending.extend((child, [*where, i]) for i, child in reversed(list(enumerate(item))))
    return None


def _refuse_constant(name: str) -> Any:
    """``json.loads``' hook for ``NaN``/``Infinity``, which the protocol never sends."""
    raise MessageError(f"header holds {name}: JSON bodies of the protocol send null instead")


def _align(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


def _encode_float(x: np.ndarray, precision: str) -> tuple[dict[str, Any], np.ndarray]:
    """(N, d) float array -> (header entry, little-endian payload)."""
    x = np.asarray(x, dtype=np.float32)
    if precision == "float32":
        return {"dtype": "<f4", "shape": list(x.shape)}, x.astype("<f4", copy=False)
    # Any shift decodes exactly (it travels as float32 in the header); the column means make
    # the residual, and so the float16 rounding, as small as the spread.
    shift = x.mean(axis=0, dtype=np.float32)
    residual = x - shift
    peak = max(float(residual.max()), -float(residual.min())) if residual.size else 0.0
    scale = peak if peak > 0 else 1.0  # payload in [-1, 1]; an exactly constant array is 0s
    payload = (residual / np.float32(scale)).astype("<f2")
    entry = {
        "dtype": "<f2",
        "shape": list(x.shape),
        "scale": scale,
        "shift": [float(v) for v in shift],
    }
    return entry, payload


def encode_epoch(
    epoch: int,
    arrays: dict[str, np.ndarray],
    *,
    loss: float | None = None,
    scalars: dict[str, float | None] | None = None,
    logged_at: float | None = None,
    precision: str = "float16",
) -> bytes:
    """One epoch message. ``arrays`` maps names of :data:`ARRAY_NAMES` to finite numpy
    arrays already checked by the caller (shapes, finiteness); ``labels`` is sent as int32,
    the others as centred float16 (or float32 with ``precision="float32"``)."""
    entries: dict[str, dict[str, Any]] = {}
    payloads: list[np.ndarray] = []
    for name, array in arrays.items():
        entry: dict[str, Any]
        if name == "labels":
            entry = {"dtype": LABEL_DTYPE, "shape": list(array.shape)}
            payload = np.ascontiguousarray(array, dtype=LABEL_DTYPE)
        else:
            entry, payload = _encode_float(
                array, "float32" if name in FLOAT32_ARRAYS else precision
            )
        entries[name] = entry
        payloads.append(np.ascontiguousarray(payload))
    header: dict[str, Any] = {
        "epoch": epoch,
        "loss": loss,
        "scalars": scalars or {},
        "logged_at": logged_at,
        "arrays": entries,
    }
    return _lay_out(header, [payload.tobytes() for payload in payloads])


def _lay_out(header: dict[str, Any], payloads: list[bytes]) -> bytes:
    """The message of ``header`` whose ``arrays`` entries (in order) hold ``payloads``:
    fills in each entry's offset."""
    entries = header["arrays"]
    # Offsets depend on the header's length and the header lists the offsets: lay the arrays
    # out after a header with placeholder offsets, then pad the real header to that length
    # (offsets only grow the header by a bounded number of digits, hence the spare room).
    for entry in entries.values():
        entry["offset"] = 0
    draft = json.dumps(header, allow_nan=False, separators=(",", ":")).encode()
    start = _align(_PREFIX.size + len(draft) + 20 * len(entries))
    offset = start
    for entry, payload in zip(entries.values(), payloads, strict=True):
        entry["offset"] = offset
        offset = _align(offset + len(payload))
    text = json.dumps(header, allow_nan=False, separators=(",", ":")).encode()
    text += b" " * (start - _PREFIX.size - len(text))  # JSON allows trailing whitespace
    parts = [_PREFIX.pack(MAGIC, len(text)), text]
    position = start
    for entry, payload in zip(entries.values(), payloads, strict=True):
        parts.append(b"\0" * (entry["offset"] - position))
        parts.append(payload)
        position = entry["offset"] + len(payload)
    return b"".join(parts)


def _read_array(
    body: bytes, name: str, entry: dict[str, Any], floor: int
) -> tuple[np.ndarray, int]:
    """The float32 (or int64 labels) array an entry describes, and where it ends."""
    dtype, shape, offset = entry.get("dtype"), entry.get("shape"), entry["offset"]
    allowed = (LABEL_DTYPE,) if name == "labels" else FLOAT_DTYPES
    if not isinstance(dtype, str) or dtype not in allowed:
        raise MessageError(f"array {name!r}: dtype must be one of {allowed}, not {dtype!r}")
    rank = 1 if name == "labels" else 2
    if (
        not isinstance(shape, list)
        or len(shape) != rank
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise MessageError(f"array {name!r}: shape must be {rank} non-negative integers")
    if any(n > len(body) for n in shape):  # (0, 2**62) holds no bytes but no array has it
        raise MessageError(f"array {name!r}: shape {shape} is larger than the body")
    if offset < floor or offset % ALIGNMENT:
        raise MessageError(
            f"array {name!r}: offset must be a multiple of {ALIGNMENT}, after the header and "
            "the previous array"
        )
    count = math.prod(shape)
    end = offset + count * np.dtype(dtype).itemsize
    if end > len(body):
        raise MessageError(f"array {name!r} runs past the end of the body ({len(body)} bytes)")
    data = np.frombuffer(body, dtype=dtype, count=count, offset=offset).reshape(shape)
    if name == "labels":
        return data.astype(np.int64), end
    scale, shift = entry.get("scale", 1.0), entry.get("shift")
    factor = _finite_number(scale)
    if factor is None or not 0 < factor <= _FLOAT32_MAX or np.float32(factor) == 0:
        raise MessageError(
            f"array {name!r}: scale must be a positive number within float32's range"
        )
    if shift is not None and (
        not isinstance(shift, list)
        or len(shift) != shape[1]
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in shift)
    ):
        raise MessageError(f"array {name!r}: shift must list {shape[1]} numbers")
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused just below
        values = data.astype(np.float32) * np.float32(factor)
        if shift is not None:
            try:
                columns = np.asarray(shift, dtype=np.float64).astype(np.float32)
            except OverflowError as error:  # an integer of 400 digits
                raise MessageError(f"array {name!r}: shift must list finite numbers") from error
            values += columns
            if data.dtype == np.float16:
                # An exact 0 (a dead ReLU's row) comes back as its rounding error, a tiny
                # vector whose direction the metrics would read: the payload that encodes
                # 0 in each column decodes to 0 again, within the same rounding.
                zero_codes = (-columns / np.float32(factor)).astype(np.float16)
                values[data == zero_codes] = 0.0
        finite = bool(np.isfinite(values).all())
    if not finite:
        raise MessageError(f"array {name!r} contains NaN or infinity")
    return values, end


def decode_epoch(body: bytes) -> EpochMessage:
    """Parse and validate one epoch message (see the module docstring and ``PROTOCOL.md``).

    Checks: magic and version, header JSON (no ``NaN``/``Infinity``), ``epoch`` from 0 to
    :data:`MAX_EPOCH`, ``loss`` and ``scalars`` finite numbers or null, known array names
    only, dtypes, shapes, a positive float32 ``scale`` and numeric ``shift``, aligned
    non-overlapping offsets inside the body, no trailing bytes, finite values, ``z``
    present, ``h``, ``labels`` and the per-sample internals with as many rows as ``z``, both
    views or none with equal shapes and ``z``'s width, ``p`` shaped as ``target``,
    ``student`` as ``teacher``, ``codes`` not with them, probabilities not negative. Raises
    :class:`MessageError` naming the first problem.
    """
    if len(body) < _PREFIX.size:
        raise MessageError("body shorter than the 12-byte prefix")
    magic, header_length = _PREFIX.unpack_from(body)
    if magic[:7] != MAGIC[:7]:
        raise MessageError("not a Collapse Lab epoch message (bad magic)")
    if magic != MAGIC:
        raise MessageError(f"unsupported message version {magic[7]} (this side reads 1)")
    header_end = _PREFIX.size + header_length
    if header_end > len(body):
        raise MessageError("header length runs past the end of the body")
    try:
        header = json.loads(
            body[_PREFIX.size : header_end].decode(), parse_constant=_refuse_constant
        )
    except MessageError:
        raise
    except RecursionError as error:
        raise MessageError(
            "header is not a JSON object the server can read: nested too deeply"
        ) from error
    except ValueError as error:  # UnicodeDecodeError, JSONDecodeError, an int of 5,000 digits
        raise MessageError(f"header is not UTF-8 JSON: {error}") from error
    if not isinstance(header, dict):
        raise MessageError("header must be a JSON object")
    epoch = header.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch <= MAX_EPOCH:
        raise MessageError(
            f"epoch must be a non-negative integer, at most {MAX_EPOCH} (MAX_EPOCH): log "
            "epochs, not steps"
        )
    entries = header.get("arrays")
    if not isinstance(entries, dict) or "z" not in entries:
        raise MessageError("arrays must be an object that contains z")
    unknown = set(entries) - set(ARRAY_NAMES)
    if unknown:
        raise MessageError(f"unknown arrays {sorted(unknown)}; known: {list(ARRAY_NAMES)}")
    for name, entry in entries.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("offset"), int):
            raise MessageError(f"array {name!r}: entry must be an object with an integer offset")
    arrays: dict[str, np.ndarray] = {}
    floor = header_end
    for name, entry in sorted(entries.items(), key=lambda item: item[1]["offset"]):
        arrays[name], floor = _read_array(body, name, entry, floor)
    if len(body) != floor:
        raise MessageError(f"{len(body) - floor} bytes after the last array")
    z = arrays["z"]
    for name in ROW_ARRAYS:
        if name in arrays and arrays[name].shape[0] != z.shape[0]:
            raise MessageError(f"{name} has {arrays[name].shape[0]} rows, z has {z.shape[0]}")
    if "p" in arrays and "target" in arrays and arrays["p"].shape != arrays["target"].shape:
        raise MessageError("p and target must have one shape (the prediction of the target)")
    if "student" in arrays and arrays.get("teacher", arrays["student"]).shape != (
        arrays["student"].shape
    ):
        raise MessageError(TEACHER_STUDENT_SHAPE)
    if "codes" in arrays and ("teacher" in arrays or "student" in arrays):
        raise MessageError(CODES_OR_TEACHER)
    for name in PROBABILITY_ARRAYS:
        if name in arrays and (arrays[name].min(initial=0) < -1e-6):
            raise MessageError(f"{name} must hold probabilities (no negative values)")
    if ("views_a" in arrays) != ("views_b" in arrays):
        raise MessageError("views_a and views_b come together")
    views = None
    if "views_a" in arrays:
        views = (arrays["views_a"], arrays["views_b"])
        if views[0].shape != views[1].shape or views[0].shape[1] != z.shape[1]:
            raise MessageError("views_a and views_b must have one shape, with z's width")
    loss, scalars = header.get("loss"), header.get("scalars", {})
    if loss is not None and _finite_number(loss) is None:
        raise MessageError("loss must be a finite number (within float64's range) or null")
    if not isinstance(scalars, dict) or not all(
        v is None or _finite_number(v) is not None for v in scalars.values()
    ):
        raise MessageError(
            "scalars must map names to finite numbers (within float64's range) or null"
        )
    if not all(is_storable(name) for name in scalars):
        raise MessageError(
            "scalar names must be valid Unicode without NUL (a lone \\ud800 escape is not "
            "Unicode; a \\u0000 no database stores)"
        )
    return EpochMessage(
        epoch=epoch,
        z=z,
        h=arrays.get("h"),
        views=views,
        labels=arrays.get("labels"),
        loss=_finite_number(loss),
        scalars={k: _finite_number(v) for k, v in scalars.items()},
        logged_at=_finite_number(header.get("logged_at")),  # informative: anything else is None
        internals={name: arrays[name] for name in INTERNAL_ARRAYS if name in arrays},
    )


def array_names(body: bytes) -> list[str]:
    """The names of the arrays a valid message carries (its header only)."""
    _, header_length = _PREFIX.unpack_from(body)
    header = json.loads(body[_PREFIX.size : _PREFIX.size + header_length].decode())
    return list(header["arrays"])


def without_arrays(body: bytes, names: set[str]) -> bytes:
    """The same message less the arrays ``names``: the kept arrays' bytes are copied as they
    are (no re-encoding, no rounding) under a new header. For a server that does not read
    the method internals."""
    _, header_length = _PREFIX.unpack_from(body)
    header = json.loads(body[_PREFIX.size : _PREFIX.size + header_length].decode())
    kept: dict[str, dict[str, Any]] = {}
    payloads: list[bytes] = []
    for name, entry in sorted(header["arrays"].items(), key=lambda item: item[1]["offset"]):
        if name in names:
            continue
        dtype = np.dtype(entry["dtype"])
        size = math.prod(entry["shape"]) * dtype.itemsize
        payloads.append(body[entry["offset"] : entry["offset"] + size])
        kept[name] = dict(entry)
    header["arrays"] = kept
    return _lay_out(header, payloads)


def same_data(first: bytes, second: bytes) -> bool:
    """Whether two valid messages carry the same epoch: epoch, loss, scalars and every array
    equal; only ``logged_at`` and the layout may differ. A job restarted from a checkpoint
    that logs an epoch again from the same weights sends the same data at another time."""
    if first == second:
        return True
    try:
        a, b = decode_epoch(first), decode_epoch(second)
    except MessageError:
        return False

    def equal(x: np.ndarray | None, y: np.ndarray | None) -> bool:
        return (x is None and y is None) or (
            x is not None and y is not None and x.shape == y.shape and np.array_equal(x, y)
        )

    views_equal = (a.views is None and b.views is None) or (
        a.views is not None
        and b.views is not None
        and equal(a.views[0], b.views[0])
        and equal(a.views[1], b.views[1])
    )
    return (
        (a.epoch, a.loss, a.scalars) == (b.epoch, b.loss, b.scalars)
        and equal(a.z, b.z)
        and equal(a.h, b.h)
        and equal(a.labels, b.labels)
        and views_equal
        and all(equal(a.internals.get(n), b.internals.get(n)) for n in INTERNAL_ARRAYS)
    )
