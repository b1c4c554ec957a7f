"""Queued work on disk (SQLite, WAL): after a crash or restart nothing queued is lost
and jobs that were running run again. Requests are stored as JSON, never pickled."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..schema import ErrorDetail, JobRequest, JobState, Op, Priority

KEEP_FINISHED = 2_000
PRUNE_EVERY = 1_000  # finished jobs between prunes while running (and one at stop)
KEEP_RESULTS = 20_000  # remembered request → result pairs
TRIM_EVERY = 256  # saves between trims of the result index (it may run over by as many)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id     TEXT PRIMARY KEY,
    ord        INTEGER NOT NULL,
    request    TEXT NOT NULL,
    priority   TEXT NOT NULL,
    seed       INTEGER NOT NULL,
    state      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    result_id  TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, ord);
CREATE TABLE IF NOT EXISTS results (
    key       TEXT PRIMARY KEY,
    result_id TEXT NOT NULL,
    used      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS results_used ON results (used);
CREATE TABLE IF NOT EXISTS run_times (
    op      TEXT NOT NULL,
    bucket  INTEGER NOT NULL,
    seconds REAL NOT NULL,
    PRIMARY KEY (op, bucket)
);
"""
_UNFINISHED = (JobState.queued.value, JobState.running.value)
_SELECT_UNFINISHED = (
    "SELECT job_id, ord, request, priority, seed, created_at, state, result_id, error "
    "FROM jobs WHERE state IN (?, ?) ORDER BY ord"
)
_SELECT_FINISHED = (
    "SELECT job_id, ord, request, priority, seed, created_at, state, result_id, error "
    "FROM jobs WHERE state NOT IN (?, ?) AND ord IN "
    "(SELECT ord FROM jobs WHERE state NOT IN (?, ?) ORDER BY ord DESC LIMIT ?) ORDER BY ord"
)


@dataclass(frozen=True)
class StoredJob:
    job_id: str
    order: int
    request: JobRequest
    priority: Priority
    seed: int
    created_at: datetime
    state: JobState = JobState.queued
    result_id: str | None = None
    error: ErrorDetail | None = None


class JobStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: a process crash loses nothing
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "error" not in columns:  # a file from before failed jobs kept their error
            self._db.execute("ALTER TABLE jobs ADD COLUMN error TEXT")
        self._saves_untrimmed = TRIM_EVERY  # trim on the first save after a start
        self._finished_unpruned = 0

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def add(
        self,
        job_id: str,
        order: int,
        request: JobRequest,
        priority: Priority,
        seed: int,
        created_at: datetime,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO jobs (job_id, ord, request, priority, seed, created_at, state)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    order,
                    request.model_dump_json(),
                    priority.value,
                    seed,
                    created_at.isoformat(),
                    JobState.queued.value,
                ),
            )

    def set_state(
        self,
        job_id: str,
        state: JobState,
        result_id: str | None = None,
        error: ErrorDetail | None = None,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET state = ?, result_id = ?, error = ? WHERE job_id = ?",
                (state.value, result_id, error and error.model_dump_json(), job_id),
            )
            if state.value not in _UNFINISHED:
                self._finished_unpruned += 1
        if self._finished_unpruned >= PRUNE_EVERY:  # a sidecar that runs for days
            self.prune()

    def set_priority(self, job_id: str, priority: Priority) -> None:
        with self._tx() as db:
            db.execute("UPDATE jobs SET priority = ? WHERE job_id = ?", (priority.value, job_id))

    def unfinished(self) -> list[StoredJob]:
        """Jobs that were queued or running when the sidecar stopped, in submit order.
        A row that no longer validates (an older, incompatible version) is dropped."""
        return self._jobs(_SELECT_UNFINISHED, _UNFINISHED)

    def finished(self, newest: int = KEEP_FINISHED) -> list[StoredJob]:
        """The newest finished jobs, in submit order, so their status and results
        are still there after a restart."""
        return self._jobs(_SELECT_FINISHED, (*_UNFINISHED, *_UNFINISHED, newest))

    def _jobs(self, query: str, args: tuple) -> list[StoredJob]:
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        jobs, broken = [], []
        for job_id, order, request, priority, seed, created_at, state, result_id, error in rows:
            try:
                jobs.append(
                    StoredJob(
                        job_id,
                        order,
                        JobRequest.model_validate_json(request),
                        Priority(priority),
                        seed,
                        datetime.fromisoformat(created_at),
                        JobState(state),
                        result_id,
                        ErrorDetail.model_validate_json(error) if error else None,
                    )
                )
            except ValueError:
                broken.append(job_id)
        for job_id in broken:
            self.set_state(job_id, JobState.failed)
        return jobs

    def cached_result(self, key: str) -> str | None:
        """The result image of an earlier identical request, if one was made."""
        with self._tx() as db:
            row = db.execute("SELECT result_id FROM results WHERE key = ?", (key,)).fetchone()
            if row is not None:
                db.execute("UPDATE results SET used = ? WHERE key = ?", (time.time_ns(), key))
        return row[0] if row else None

    def save_result(self, key: str, result_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO results (key, result_id, used) VALUES (?, ?, ?)",
                (key, result_id, time.time_ns()),
            )
            # The index stays small (the images live in the image store). Trimming on
            # every save sorted the whole table each time, so a soak's throughput sank
            # with every job; now it is one index lookup every TRIM_EVERY saves.
            self._saves_untrimmed += 1
            if self._saves_untrimmed >= TRIM_EVERY:
                self._saves_untrimmed = 0
                db.execute(
                    "DELETE FROM results WHERE used < "
                    "(SELECT used FROM results ORDER BY used DESC LIMIT 1 OFFSET ?)",
                    (KEEP_RESULTS - 1,),
                )

    def run_times(self) -> dict[tuple[Op, int], float]:
        """What the ETA model learned before (op, size bucket) → seconds."""
        with self._lock:
            rows = self._db.execute("SELECT op, bucket, seconds FROM run_times").fetchall()
        known = {}
        for op, bucket, seconds in rows:
            if op in Op._value2member_map_ and seconds >= 0:
                known[(Op(op), int(bucket))] = float(seconds)
        return known

    def save_run_time(self, op: Op, bucket: int, seconds: float) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO run_times (op, bucket, seconds) VALUES (?, ?, ?)",
                (op.value, bucket, seconds),
            )

    def max_order(self) -> int:
        with self._lock:
            (value,) = self._db.execute("SELECT COALESCE(MAX(ord), -1) FROM jobs").fetchone()
        return int(value)

    def prune(self) -> None:
        """Forget all but the newest finished jobs."""
        self._finished_unpruned = 0
        with self._tx() as db:
            db.execute(
                "DELETE FROM jobs WHERE state NOT IN (?, ?) AND ord < ("
                " SELECT COALESCE(MIN(ord), 0) FROM ("
                "  SELECT ord FROM jobs WHERE state NOT IN (?, ?) ORDER BY ord DESC LIMIT ?))",
                (*_UNFINISHED, *_UNFINISHED, KEEP_FINISHED),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
