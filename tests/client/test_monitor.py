"""collapse_lab.Monitor against the stand-in server of PROTOCOL.md (tests/client/fake_server.py).

Narrow unit tests of the client: what goes on the wire, latency, buffering through an
outage, idempotent re-sends, authentication, finish. The end-to-end test against the real
stack belongs with the server side.
"""

from __future__ import annotations

import os
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import collapse_lab
import httpx
import numpy as np
import pytest
from collapse_lab import AuthenticationError, CollapseLabWarning, Monitor
from collapse_lab.monitor import THREAD_EXIT_S

from tests.client.fake_server import FakeCollapseLab

RNG = np.random.default_rng(0)


def probe(n: int = 256, d: int = 32) -> np.ndarray:
    return RNG.standard_normal((n, d)).astype(np.float32)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_registers_and_delivers_every_field(server: FakeCollapseLab) -> None:
    z, h, a, b = probe(), probe(d=64), probe(100), probe(100)
    labels = np.arange(256) % 10
    monitor = Monitor(server.url, name="unit", config={"lr": 0.05, "method": "mine"})
    assert monitor.run_id is not None
    assert monitor.url == f"{server.url}/runs/{monitor.run_id}"
    for epoch in range(3):
        monitor.log_epoch(epoch, z + epoch, h=h, labels=labels, views=(a, b), loss=1.5, lr=0.1)
    assert monitor.finish(timeout=30)

    run = server.only_run()
    assert run.registration["name"] == "unit"
    assert run.registration["config"] == {"lr": 0.05, "method": "mine"}
    source = run.registration["source"]
    assert source["client_version"] == collapse_lab.__version__
    assert {"host", "script", "python"} <= set(source)
    assert sorted(run.epochs) == [0, 1, 2]
    message = run.epochs[2]
    assert message["loss"] == 1.5 and message["scalars"] == {"lr": 0.1}
    arrays = message["arrays"]
    assert arrays["z"].dtype.kind == "f" and arrays["labels"].dtype == np.int32
    np.testing.assert_allclose(arrays["z"], z + 2, atol=2e-3 * np.abs(z).max())
    np.testing.assert_allclose(arrays["h"], h, atol=2e-3 * np.abs(h).max())
    np.testing.assert_allclose(arrays["views_b"], b, atol=2e-3 * np.abs(b).max())
    np.testing.assert_array_equal(arrays["labels"], labels)
    assert run.finish == {
        "status": "succeeded",
        "error": None,
        "epochs_dropped": [],
        "epochs_skipped": [],
    }
    assert run.finished_after == [0, 1, 2]  # finish is sent after every epoch


def test_log_epoch_returns_in_milliseconds_while_the_server_is_slow(
    server: FakeCollapseLab,
) -> None:
    server.delay_s = 1.0
    z = RNG.standard_normal((2048, 128)).astype(np.float32)
    monitor = Monitor(server.url)  # registration answers after 1 s: before the timing
    durations = []
    for epoch in range(15):
        start = time.perf_counter()
        monitor.log_epoch(epoch, z, loss=0.5)
        durations.append(time.perf_counter() - start)
    # the CPU work alone (checking and encoding the array) takes 2-11 ms on a loaded
    # 2-core machine; waiting for the server would take a second
    assert statistics.median(durations) < server.delay_s / 10, durations
    assert max(durations) < server.delay_s / 2, durations
    assert monitor.stats.dropped == []
    server.delay_s = 0.0
    assert monitor.finish(timeout=30)
    assert sorted(server.only_run().epochs) == list(range(15))


def test_buffers_through_an_outage_and_loses_no_epoch(
    server: FakeCollapseLab, caplog: pytest.LogCaptureFixture
) -> None:
    monitor = Monitor(server.url)
    monitor.log_epoch(0, probe())
    wait_until(lambda: monitor.stats.delivered == [0])
    server.stop()
    with pytest.warns(CollapseLabWarning, match="cannot reach"):
        for epoch in range(1, 6):
            monitor.log_epoch(epoch, probe())
        wait_until(lambda: "cannot reach" in caplog.text)
    assert monitor.stats.pending == [1, 2, 3, 4, 5]
    time.sleep(1.0)  # a few failed retries
    server.start()
    assert monitor.finish(timeout=30)
    assert sorted(server.only_run().epochs) == [0, 1, 2, 3, 4, 5]
    assert monitor.stats.dropped == []


def test_server_down_at_start_registers_later(server: FakeCollapseLab) -> None:
    server.stop()
    with pytest.warns(CollapseLabWarning, match="cannot reach"):
        monitor = Monitor(server.url, timeout=1.0)
    assert monitor.run_id is None and monitor.url is None
    monitor.log_epoch(0, probe())
    monitor.log_epoch(1, probe())
    server.start()
    assert monitor.finish(timeout=30)
    run = server.only_run()
    assert monitor.run_id == run.id and sorted(run.epochs) == [0, 1]


def test_full_buffer_drops_the_oldest_but_keeps_the_baseline(server: FakeCollapseLab) -> None:
    monitor = Monitor(server.url, max_buffer_epochs=3)
    server.stop()
    with pytest.warns(CollapseLabWarning, match="buffer full"):
        for epoch in range(7):
            monitor.log_epoch(epoch, probe())
    assert monitor.stats.pending == [0, 5, 6]  # 3 epochs, the one being retried included
    assert monitor.stats.dropped == [1, 2, 3, 4]
    server.start()
    assert monitor.finish(timeout=30)
    run = server.only_run()
    assert sorted(run.epochs) == [0, 5, 6]
    assert run.finish is not None and run.finish["epochs_dropped"] == [1, 2, 3, 4]


def test_a_lost_reply_is_resent_harmlessly(server: FakeCollapseLab) -> None:
    server.lose_replies = 1  # the registration is stored, its reply lost
    with pytest.warns(CollapseLabWarning, match="cannot reach"):
        monitor = Monitor(server.url)
    monitor.log_epoch(0, probe())
    wait_until(lambda: monitor.stats.delivered == [0])
    server.lose_replies = 1  # epoch 1 is stored, its reply lost
    monitor.log_epoch(1, probe())
    assert monitor.finish(timeout=30)
    run = server.only_run()  # one run: the retried registration found the first one
    assert sorted(run.epochs) == [0, 1] and monitor.stats.delivered == [0, 1]
    puts = [status for method, path, status in server.log if path.endswith("/epochs/1")]
    assert puts == [-1, 200]  # the reply lost, then "duplicate"


def test_wrong_token_is_refused_and_nothing_is_stored(
    server: FakeCollapseLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.token = "secret"
    with pytest.raises(AuthenticationError, match=r"refused the token.*COLLAPSE_LAB_TOKEN"):
        Monitor(server.url, token="wrong")
    with pytest.raises(AuthenticationError, match=r"needs a token, and none was sent"):
        Monitor(server.url)
    assert server.runs == {}
    assert [status for _, _, status in server.log] == [401, 401]  # tried once each

    monkeypatch.setenv("COLLAPSE_LAB_TOKEN", "secret")
    monitor = Monitor(server.url)
    assert server.only_run().headers["Authorization"] == "Bearer secret"
    monitor.log_epoch(0, probe())
    wait_until(lambda: monitor.stats.delivered == [0])

    server.token = "rotated"  # the token stops working mid-run: one warning, no retry storm
    with pytest.warns(CollapseLabWarning, match="refused the token"):
        monitor.log_epoch(1, probe())
        wait_until(lambda: monitor.stats.disabled is not None)
    monitor.log_epoch(2, probe())  # training goes on
    assert not monitor.finish(timeout=5)
    assert sorted(server.only_run().epochs) == [0]
    assert monitor.stats.dropped == [1, 2]
    assert len(server.log) == 5  # 2 refused registrations, registration, epoch 0, epoch 1


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:abc", "url: 'http://127.0.0.1:abc' is not a valid URL"),
        ("http://[::1", "url: 'http://[::1' is not a valid URL"),
        ("http://", "url: 'http://' is not an http:// or https:// address with a host"),
        ("localhost:8000", "url: 'localhost:8000' must start with http:// or https://"),
    ],
)
def test_a_url_that_is_not_one_raises_value_error(url: str, says: str) -> None:
    """A bad port raised httpx.InvalidURL, and ``http://`` looked up a host named "http:"
    until finish() gave up."""
    with pytest.raises(ValueError, match=re.escape(says)):
        Monitor(url, resume=False)


@pytest.mark.parametrize("token", ["ünï", "secret\n", "secret "])
def test_a_token_that_cannot_be_sent_raises_value_error_without_showing_it(
    token: str, server: FakeCollapseLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-ASCII token raised UnicodeEncodeError; one with a newline or a space at its
    end failed every request as if the server were down."""
    monkeypatch.setenv("COLLAPSE_LAB_TOKEN", token)
    for given in (token, None):  # token=, or $COLLAPSE_LAB_TOKEN
        with pytest.raises(ValueError, match="the API token must be printable ASCII") as raised:
            Monitor(server.url, given, name="x", resume=False)
        assert token.strip() not in str(raised.value)
    assert server.runs == {}


def test_finish_waits_for_the_buffer_then_closes(server: FakeCollapseLab) -> None:
    server.delay_s = 0.2
    monitor = Monitor(server.url)
    for epoch in range(5):
        monitor.log_epoch(epoch, probe())
    assert monitor.stats.pending  # still uploading
    assert monitor.finish(timeout=30)
    run = server.only_run()
    assert run.finished_after == [0, 1, 2, 3, 4]
    assert monitor.finish() is True  # a second call returns the first one's result
    with pytest.raises(RuntimeError, match="after finish"):
        monitor.log_epoch(5, probe())


def test_finish_gives_up_after_its_timeout(server: FakeCollapseLab) -> None:
    monitor = Monitor(server.url)
    server.stop()
    start = time.monotonic()
    with pytest.warns(CollapseLabWarning) as caught:
        monitor.log_epoch(0, probe())
        assert not monitor.finish(timeout=1.0)
    assert re.search(r"finish\(\) timed out.*\[0\]", str(caught[-1].message))
    assert time.monotonic() - start < 5
    assert monitor.stats.pending == [0]


def test_context_manager_closes_a_crashed_run_as_failed(server: FakeCollapseLab) -> None:
    with pytest.raises(ZeroDivisionError), Monitor(server.url) as monitor:
        monitor.log_epoch(0, probe())
        _ = 1 / 0
    finish = server.only_run().finish
    assert finish is not None and finish["status"] == "failed"
    assert finish["error"] == "ZeroDivisionError: division by zero"


def test_caller_bugs_raise_at_once(server: FakeCollapseLab) -> None:
    server.max_probe_size = 300
    monitor = Monitor(server.url, labels=np.zeros(256, dtype=np.int64))
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        monitor.log_epoch(0, np.zeros(256, dtype=np.float32))
    with pytest.raises(ValueError, match="MAX_PROBE_SIZE 300"):
        monitor.log_epoch(0, probe(n=400))
    with pytest.raises(ValueError, match="h has 10 rows"):
        monitor.log_epoch(0, probe(), h=probe(n=10))
    with pytest.raises(ValueError, match="labels has 100 entries"):
        monitor.log_epoch(0, probe(), labels=np.zeros(100, dtype=int))
    with pytest.raises(ValueError, match="views must be two"):
        monitor.log_epoch(0, probe(), views=(probe(50), probe(50, d=8)))
    with pytest.raises(ValueError, match="log epochs, not optimiser steps"):
        monitor.log_epoch(collapse_lab.wire.MAX_EPOCH + 1, probe())
    with pytest.raises(TypeError, match="loss must be a real number"):
        monitor.log_epoch(0, probe(), loss="low")
    monitor.log_epoch(0, probe(), h=probe(d=64))
    with pytest.raises(ValueError, match="epochs must increase"):
        monitor.log_epoch(0, probe())
    with pytest.raises(ValueError, match="stay fixed"):
        monitor.log_epoch(1, probe(), h=probe(d=16))
    assert monitor.finish(timeout=10)
    assert sorted(server.only_run().epochs) == [0]


def test_a_refused_first_call_does_not_fix_the_probe_shape(server: FakeCollapseLab) -> None:
    monitor = Monitor(server.url)
    transposed = probe(n=8, d=100)
    with pytest.raises(ValueError, match="target has 100 rows, z has 8"):
        monitor.log_epoch(0, transposed, target=probe(n=100, d=8))
    monitor.log_epoch(0, probe(n=100, d=8))  # the corrected call is the first epoch
    monitor.log_epoch(1, probe(n=100, d=8))
    assert monitor.finish(timeout=10)
    assert sorted(server.only_run().epochs) == [0, 1]


def test_arguments_of_the_wrong_kind_are_named(server: FakeCollapseLab) -> None:
    with pytest.raises(TypeError, match="config must be a mapping"):
        Monitor(server.url, config=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout must be a positive"):
        Monitor(server.url, timeout=-1)
    monitor = Monitor(server.url, tags="baseline", note="n")
    with pytest.raises(ValueError, match="labels must fit in 32 bits"):
        monitor.log_epoch(0, probe(), labels=np.full(256, 2**40))
    monitor.record_stop(0, "x" * 600)
    monitor.log_epoch(0, probe())
    assert monitor.finish(timeout=10)
    run = server.only_run()
    assert run.registration["tags"] == ["baseline"]  # one tag, not its letters
    assert run.finish is not None and run.finish["stopped_at_epoch"] == 0
    assert len(run.finish["stop_reason"]) == 500  # within the server's bound


def test_diverged_epochs_and_a_late_baseline_warn_but_do_not_raise(
    server: FakeCollapseLab,
) -> None:
    monitor = Monitor(server.url)
    with pytest.warns(CollapseLabWarning, match="first epoch sent is 3, not 0: "):
        monitor.log_epoch(3, probe())
    bad = probe()
    bad[5, 1] = np.nan
    with pytest.warns(CollapseLabWarning, match="NaN or infinity"):
        monitor.log_epoch(4, bad, loss=float("nan"))
    monitor.log_epoch(5, probe(), loss=float("inf"))
    monitor.log_epoch(6, probe().astype(np.float64) * 1e300)  # finite, not in float32
    assert monitor.finish(timeout=10)
    run = server.only_run()
    assert sorted(run.epochs) == [3, 5] and monitor.stats.skipped == [4, 6]
    assert run.epochs[5]["loss"] is None  # JSON has no inf: null
    assert run.finish is not None and run.finish["epochs_skipped"] == [4, 6]


def test_a_skipped_epoch_0_leaves_the_run_without_baseline_and_says_so(
    server: FakeCollapseLab,
) -> None:
    monitor = Monitor(server.url)
    diverged = probe()
    diverged[0, 0] = np.inf
    with pytest.warns(CollapseLabWarning, match="NaN or infinity"):
        monitor.log_epoch(0, diverged)
    late = r"first epoch sent is 1, not 0 \(epochs \[0\] were skipped\)"
    with pytest.warns(CollapseLabWarning, match=late):
        monitor.log_epoch(1, probe())
    assert monitor.finish(timeout=10)
    assert sorted(server.only_run().epochs) == [1]


def test_a_name_is_sent_without_spaces_around_it_and_never_blank(server: FakeCollapseLab) -> None:
    for given in ("  spaced ", " \t"):
        monitor = Monitor(server.url, name=given)
        assert monitor.finish(timeout=10)
    names = [run.registration["name"] for run in server.runs.values()]
    assert names[0] == "spaced" and names[1].strip() and names[1] == names[1].strip()


def test_a_probe_of_a_few_rows_is_warned_about(server: FakeCollapseLab) -> None:
    monitor = Monitor(server.url)
    with pytest.warns(CollapseLabWarning, match="N=3 samples: statistics of so few rows"):
        monitor.log_epoch(0, probe()[:3, :2])
    assert monitor.finish(timeout=10)


def test_tensor_like_inputs_without_torch(server: FakeCollapseLab) -> None:
    class Tensor:  # what log_epoch relies on: detach().cpu().numpy(), .float() for bfloat16
        def __init__(self, data: np.ndarray, numpy_dtype: bool = True) -> None:
            self.data, self.numpy_dtype = data, numpy_dtype

        def detach(self) -> Tensor:
            return self

        def cpu(self) -> Tensor:
            return self

        def float(self) -> Tensor:
            return Tensor(self.data)

        def numpy(self) -> np.ndarray:
            if not self.numpy_dtype:
                raise TypeError("Got unsupported ScalarType BFloat16")
            return self.data

    z = probe()
    monitor = Monitor(server.url)
    monitor.log_epoch(0, Tensor(z, numpy_dtype=False), h=Tensor(z), labels=[1] * 256)
    assert monitor.finish(timeout=10)
    np.testing.assert_allclose(server.only_run().epochs[0]["arrays"]["z"], z, atol=2e-3 * 5)


def test_torch_tensors_of_any_dtype(server: FakeCollapseLab) -> None:
    torch = pytest.importorskip("torch")
    z = torch.randn(256, 32)
    monitor = Monitor(server.url)
    monitor.log_epoch(0, z.to(torch.bfloat16).requires_grad_(), labels=torch.arange(256))
    monitor.log_epoch(1, z.half(), loss=torch.tensor(0.25))
    assert monitor.finish(timeout=10)
    epochs = server.only_run().epochs
    np.testing.assert_allclose(epochs[1]["arrays"]["z"], z.numpy(), atol=0.01)
    assert epochs[1]["loss"] == 0.25


def test_a_server_never_reached_is_said_once_with_where_else_epochs_can_go() -> None:
    """A script whose URL answers nothing (a wrong address, a server not started): one
    warning on stderr, not a log line beside it, saying that the epochs are in memory and
    how to keep them on disk; finish() says what it waits for before it gives up."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = (
        "import numpy as np\n"
        "from collapse_lab import Monitor\n"
        f"monitor = Monitor('http://127.0.0.1:{port}', name='nowhere')\n"
        "monitor.log_epoch(0, np.ones((8, 4), dtype=np.float32))\n"
        "monitor.finish(timeout=3)\n"
    )
    # the package as this test imported it (installed, or the checkout's client/ folder)
    package_root = str(Path(collapse_lab.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": package_root}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("cannot reach") == 1, done.stderr
    assert "memory only: Monitor(..., offline='auto') writes them to disk" in done.stderr
    assert "finish() waits up to 3 s for http://127.0.0.1:" in done.stderr  # not a mute hang
    assert "epochs [0] were not delivered" in done.stderr


def test_what_the_server_would_refuse_is_refused_or_skipped_in_log_epoch(
    server: FakeCollapseLab,
) -> None:
    """The server's content rules (backend/routers/external_runs.py) hold in log_epoch
    too: an epoch taken locally and refused later would be lost with the run's baseline."""
    monitor = Monitor(server.url)
    z = probe(n=64, d=8)
    for kwargs, needle in [
        ({"h": np.zeros((64, 0))}, r"h has shape \[64, 0\], no values"),
        ({"target": np.zeros((64, 0))}, r"target has shape \[64, 0\], no values"),
        ({"predictor_weight": np.zeros((0, 8))}, r"predictor_weight has shape \[0, 8\]"),
        ({"loss": np.array([1.0, 2.0])}, r"loss must be one number, not an array of shape"),
        ({"schedules": {"lr": np.ones(3)}}, r"lr must be one number"),
        ({"**": {"\ud800": 1.0}}, "not valid Unicode"),
        ({"loss_terms": {"inv\x00": 1.0}}, "holds a NUL"),
    ]:
        scalars = kwargs.pop("**", {})
        with pytest.raises(ValueError, match=needle):
            monitor.log_epoch(0, z, **kwargs, **scalars)
    monitor.log_epoch(0, z, loss=None, lr=None, wd=10**400)  # null scalars: no value
    with pytest.warns(CollapseLabWarning, match="values beyond 1e\\+15"):
        monitor.log_epoch(1, z * 1e16)  # diverged: skipped, as NaN is
    monitor.log_epoch(2, np.full((64, 8), 2**62, dtype=np.int64))
    monitor.log_epoch(3, z)
    assert monitor.finish(timeout=10)
    run = server.only_run()
    assert sorted(run.epochs) == [0, 3] and monitor.stats.skipped == [1, 2]
    assert run.epochs[0]["scalars"] == {"lr": None, "wd": None}


def test_a_name_that_is_not_unicode_is_refused_before_anything_is_sent(
    server: FakeCollapseLab,
) -> None:
    """The server refuses them too (422): a lone surrogate, or a NUL (PostgreSQL's text and
    JSON types cannot hold one), at any depth of the config, in a key too."""
    for kwargs in (
        {"name": "run \ud800"},
        {"resume": "key\udfff"},
        {"config": {"x": "\ud800"}},
        {"name": "run\x00"},
        {"config": {"a": [{"b\x00": 1}]}},
        {"note": "\x00"},
    ):
        with pytest.raises(ValueError, match=r"not valid Unicode .*or holds a NUL"):
            Monitor(server.url, **kwargs)  # type: ignore[arg-type]
    # the message says where in the config: keys and indices, a key's path ending in it
    with pytest.raises(ValueError, match=r"^config\['a'\]\[1\]\['b\\x00'\] holds"):
        Monitor(server.url, config={"a": [{"ok": "x"}, {"b\x00": 1}]})
    assert server.runs == {}


def test_low_precision_probabilities_are_taken_and_renormalised(server: FakeCollapseLab) -> None:
    """bfloat16 keeps 8 significant bits: a softmax computed in it sums to 1 within about
    4e-3, over the server's 1e-3. Such rows are renormalised; the same sums in float32 are
    the caller's bug."""
    rows = np.full((64, 4), 0.251, dtype=np.float16)  # rows summing to about 1.004
    server.accepts = list(collapse_lab.wire.ARRAY_NAMES)
    monitor = Monitor(server.url)
    with pytest.raises(ValueError, match=r"summing to 1 within 0\.001"):
        monitor.log_epoch(0, probe(n=64), codes=rows.astype(np.float32))
    monitor.log_epoch(0, probe(n=64), codes=rows)
    assert monitor.finish(timeout=10)
    sent = server.only_run().epochs[0]["arrays"]["codes"]
    np.testing.assert_allclose(sent.sum(axis=1), 1, atol=1e-6)


def test_torch_bfloat16_softmax_is_a_probability(server: FakeCollapseLab) -> None:
    torch = pytest.importorskip("torch")
    generator = torch.Generator().manual_seed(0)
    logits = (torch.randn(64, 4096, generator=generator) * 3).to(torch.bfloat16)
    teacher = torch.softmax(logits / 0.04, dim=-1)
    student = torch.softmax(logits / 0.1, dim=-1)
    assert (teacher.float().sum(dim=1) - 1).abs().max() > 1e-3  # what the server would refuse
    server.accepts = list(collapse_lab.wire.ARRAY_NAMES)
    monitor = Monitor(server.url)
    schedules = {"momentum": 0.996}
    monitor.log_epoch(0, probe(n=64), teacher=teacher, student=student, schedules=schedules)
    assert monitor.finish(timeout=10)
    sent = server.only_run().epochs[0]["arrays"]
    np.testing.assert_allclose(sent["teacher"].sum(axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(sent["student"], student.float().numpy(), atol=1e-2)


@pytest.mark.parametrize(
    "reply",
    [{"limits": [1, 2]}, {"limits": {"max_probe_size": None, "max_epoch_bytes": "big"}}],
)
def test_a_registration_reply_with_odd_limits_keeps_the_defaults(
    server: FakeCollapseLab, reply: dict[str, object]
) -> None:
    server.registration_extra = reply
    monitor = Monitor(server.url)
    assert monitor.max_probe_size == collapse_lab.monitor.DEFAULT_MAX_PROBE_SIZE
    monitor.log_epoch(0, probe())
    assert monitor.finish(timeout=10)


@pytest.mark.parametrize("run_id", [None, "", True, {"id": 1}])
def test_a_registration_reply_without_a_run_id_is_said(
    server: FakeCollapseLab, run_id: object
) -> None:
    server.registration_extra = {"id": run_id}
    with pytest.raises(collapse_lab.CollapseLabError, match="without a run id"):
        Monitor(server.url)


def test_a_garbled_verdict_reply_stops_no_upload(server: FakeCollapseLab) -> None:
    server.run_reply = b"[" * 100_000 + b"]" * 100_000  # json.loads: RecursionError
    monitor = Monitor(server.url)
    for epoch in range(3):
        monitor.log_epoch(epoch, probe())
        time.sleep(0.3)  # a verdict poll between uploads
    assert monitor.finish(timeout=10)
    assert sorted(server.only_run().epochs) == [0, 1, 2] and monitor.verdict is None


def test_finish_keeps_its_timeout_while_the_server_hangs(server: FakeCollapseLab) -> None:
    monitor = Monitor(server.url)
    server.delay_s = 30  # every request hangs, as under a stopped server
    monitor.log_epoch(0, probe())
    start = time.monotonic()
    with pytest.warns(CollapseLabWarning, match="has not answered the last request yet"):
        assert not monitor.finish(timeout=2.0)
    # its timeout, the sender thread's time to stop, and room for a loaded machine; waiting
    # on the hung request would take its 30 s
    assert time.monotonic() - start < 2.0 + THREAD_EXIT_S + 2.0


def test_a_name_the_server_would_refuse_is_refused_here() -> None:
    with pytest.raises(TypeError, match="name must be a string, not int"):
        Monitor("http://127.0.0.1:9", name=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name must be at most 200 characters, not 201"):
        Monitor("http://127.0.0.1:9", name="a" * 201)


def test_a_validation_error_reads_as_field_and_message() -> None:
    errors = [
        {"type": "string_type", "loc": ["body", "name"], "msg": "Input should be a valid string"},
        {"type": "missing", "loc": ["body", "source", "host"], "msg": "Field required"},
    ]
    reply = httpx.Response(422, json={"detail": errors})
    detail, code = collapse_lab.monitor._response_detail(reply)
    assert detail == "name: Input should be a valid string; source.host: Field required"
    assert code is None


def test_a_monitor_that_never_reached_its_server_and_logged_nothing_closes_at_once() -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    with pytest.warns(CollapseLabWarning, match="cannot reach"):
        monitor = Monitor(url, name="idle", timeout=1.0)
    start = time.monotonic()
    assert monitor.finish(timeout=30) is False and monitor.finish() is False
    assert time.monotonic() - start < 2
