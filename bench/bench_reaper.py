"""The reaper and the broker check over a big backlog.

Setting: a SQLite file (WAL) with ``--runs`` queued runs (10,000) whose tasks never went out,
a private redis-server. Measures: the first pass of ``PROCESSES`` reapers at once (threads
here, each with its own database engine and Celery app, as separate processes would have),
which must send each run exactly once; then a pass with nothing to do; then a broker check
(``resend_lost``: every train task in Redis read back and compared with the store); then a
broker check after Redis lost everything, which sends them all again, once.

Run from the repository root: ``python -m bench.bench_reaper [--runs 10000]``.
Target (README): a pass well under the reaper interval (10 s), nothing sent twice.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import redis

from backend.broker import make_celery
from backend.deployment import RedisNames
from backend.dispatch import reap_once, resend_lost
from backend.events import Publisher
from backend.settings import Settings
from backend.store.database import Database
from backend.store.models import Run, now
from backend.store.runs import new_run_id
from tests.service.stack import RedisServer

PROCESSES = 4
CONFIG = {"method": "simsiam", "dataset": "digits", "epochs": 20, "device": "auto"}


def fill(db: Database, runs: int) -> None:
    stamp = now()
    with db.write() as session:
        session.add_all(
            Run(
                id=new_run_id(),
                created_at=stamp + i * 1e-6,
                updated_at=stamp,
                status="queued",
                method="simsiam",
                dataset="digits",
                request={"method": "simsiam"},
                config=CONFIG,
                epochs_total=20,
                attempts=0,
                worker_losses=0,
                cancel_requested=False,
                last_event_seq=0,
            )
            for i in range(runs)
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis", persistent=False)
        server.start()
        try:
            settings = Settings(
                redis_url=server.url, database_url=f"sqlite:///{tmp}/bench.db", data_dir=tmp
            )
            db = Database(settings.resolved_database_url)
            db.migrate()
            fill(db, args.runs)
            client = redis.Redis.from_url(server.url)

            names = RedisNames.of(db)
            publisher = Publisher(server.url, names.channel)
            reapers = [
                (
                    Database(settings.resolved_database_url, on_commit=publisher.publish),
                    make_celery(settings, names),
                )
                for _ in range(PROCESSES)
            ]
            threads = [
                threading.Thread(target=reap_once, args=(d, c, settings)) for d, c in reapers
            ]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            first = time.perf_counter() - started
            train_queue = names.broker_key("train")
            queued = client.llen(train_queue)
            print(
                f"first pass, {PROCESSES} reapers at once over {args.runs} unsent runs: "
                f"{first:.2f} s, {queued} messages in the train queue (runs: {args.runs})"
            )

            started = time.perf_counter()
            reap_once(db, reapers[0][1], settings)
            idle = time.perf_counter() - started
            print(f"a pass with nothing to send: {idle * 1000:.1f} ms")

            started = time.perf_counter()
            resent = resend_lost(db, reapers[0][1], settings, client)
            check = time.perf_counter() - started
            print(f"broker check, {queued} tasks in Redis: {check:.2f} s, re-sent {resent}")

            client.flushall()  # as a Redis restarted without persistence
            time.sleep(2.1)  # past the send grace
            started = time.perf_counter()
            resent = resend_lost(db, reapers[0][1], settings, client)
            lost = time.perf_counter() - started
            print(
                f"broker check after Redis lost everything: {lost:.2f} s, re-sent {resent}, "
                f"{client.llen(train_queue)} messages in the train queue"
            )
            publisher.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
