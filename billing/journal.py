"""Write-ahead journal for ledger rows held in process memory (the embedded default, or Redis down).

Before a row enters the in-process buffer it is appended to this process's journal file (one
write() of a JSON line, no fsync: the page cache survives a SIGKILL of the process, and a machine
crash is not what this guards against). Requests admitted but not yet metered are journaled too,
as "begin" lines; the row a request ends with closes it. A later process replays the journal of
a process that died: its rows (inserts ignore duplicates on request_id) and, for every begin with
no row, a row flagged lost in flight (see billing.inflight).

Files: `<owner>.lock` (held with flock for the owner's whole life, so the kernel itself says when
the owner is dead, whatever killed it) and segments `<owner>.<n>.jsonl`. A segment is deleted once
every row in it is committed; when it grows past ROTATE_BYTES a new one starts, carrying the begin
lines of requests still open.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
from collections import deque
from pathlib import Path
from typing import Sized

import orjson
from django.conf import settings

logger = logging.getLogger(__name__)

ROTATE_BYTES = 1 << 20
BEGIN = "_begin"  # marks a begin line; keys starting with "_" never reach the database


class Journal:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        self.owner = f"{os.getpid()}-{os.urandom(4).hex()}"
        self.pid = os.getpid()
        # Held by callers around "journal it, then buffer it" and around rotation, so the journal
        # order is the buffer order and rotation never splits a row from its buffering.
        self.lock = threading.Lock()
        self._lock_fd = _lock_file_create(directory, self.owner)
        self._seq = 0
        self._fd = self._segment_open()
        self._size = 0
        self._open: dict[str, bytes] = {}  # request id -> its begin line, while in flight
        self._closed: deque[list] = deque()  # [segment path, buffered rows not yet committed]
        self._failed = False

    def _segment_path(self, seq: int) -> Path:
        return self.dir / f"{self.owner}.{seq}.jsonl"

    def _segment_open(self) -> int:
        return os.open(self._segment_path(self._seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def _write(self, line: bytes) -> None:
        try:
            os.write(self._fd, line)
            self._size += len(line)
        except OSError as exc:  # a full disk must not stop the gateway; the row is still buffered
            if not self._failed:
                logger.error("ledger journal: write failed (%s); rows are in memory only", exc)
            self._failed = True

    # Callers hold self.lock for the three methods below.
    def begin(self, request_id: str, line: bytes) -> None:
        self._open[request_id] = line
        self._write(line)

    def row(self, request_id: str, line: bytes) -> None:
        self._open.pop(request_id, None)
        self._write(line)

    def end(self, request_id: str) -> None:
        """The request's row went somewhere durable other than this journal (Redis)."""
        self._open.pop(request_id, None)

    def rotate_if_big(self, buffer: Sized) -> None:
        """Start a new segment when this one is large; the old one goes once the rows in `buffer`
        now (all written before the rotation) are committed."""
        with self.lock:
            if self._size < ROTATE_BYTES:
                return
            buffered = len(buffer)
            old_fd, old_path = self._fd, self._segment_path(self._seq)
            self._seq += 1
            self._fd, self._size = self._segment_open(), 0
            os.close(old_fd)
            self._closed.append([old_path, buffered])
            for line in self._open.values():
                self._write(line)

    def committed(self, rows: int, buffer: Sized) -> None:
        """`rows` buffered rows (oldest first) are in the database now; `buffer` holds the rest."""
        with self.lock:
            buffer_empty = not len(buffer)
            while self._closed and (buffer_empty or rows > 0):
                path, owed = self._closed[0]
                if buffer_empty or owed <= rows:
                    rows -= owed
                    self._closed.popleft()
                    path.unlink(missing_ok=True)
                else:
                    self._closed[0][1] = owed - rows
                    rows = 0
            if buffer_empty and not self._open and self._size:
                # Everything journaled is committed and nothing is in flight: start empty again.
                os.ftruncate(self._fd, 0)
                self._size = 0

    def close(self) -> bool:
        """At a clean exit with nothing left to replay: remove this process's files. Returns
        whether it did (the journal is unusable afterwards)."""
        with self.lock:
            if self._open or self._closed or self._size:
                return False  # a later process replays what is left
            os.close(self._fd)
            self._segment_path(self._seq).unlink(missing_ok=True)
            (self.dir / f"{self.owner}.lock").unlink(missing_ok=True)
            os.close(self._lock_fd)
            return True


def _lock_file_create(directory: Path, owner: str) -> int:
    # Locked under a temporary name and renamed: a replayer never sees an unlocked live owner.
    tmp = directory / f".{owner}.lock.tmp"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.rename(tmp, directory / f"{owner}.lock")
    return fd


def journal_dir() -> Path:
    """One directory per database, so a journal is never replayed into another database."""
    from django.db import connections

    db = connections["default"].settings_dict
    identity = f"{db['ENGINE']}|{db.get('HOST')}|{db.get('PORT')}|{db['NAME']}"
    return Path(settings.BILLING_JOURNAL_DIR) / hashlib.sha256(identity.encode()).hexdigest()[:16]


def dead_journals(directory: Path, *, exclude: str | None = None) -> list[tuple[str, int | None]]:
    """Owners whose process is gone, each with its lock taken (fd, or None for an orphan)."""
    if not directory.is_dir():
        return []
    owners = {p.name.split(".", 1)[0] for p in directory.glob("*.jsonl")}
    owners |= {p.name[: -len(".lock")] for p in directory.glob("*.lock")}
    dead = []
    for owner in sorted(owners - {exclude}):
        lock = directory / f"{owner}.lock"
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            dead.append((owner, None))
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # alive (or being replayed by someone else right now)
            continue
        dead.append((owner, fd))
    return dead


def journal_read(directory: Path, owner: str) -> tuple[list[dict], list[dict]]:
    """(rows, begins without a row) from every segment of a dead owner."""
    rows: dict[str, dict] = {}
    begins: dict[str, dict] = {}
    for path in sorted(directory.glob(f"{owner}.*.jsonl"), key=lambda p: int(p.name.split(".")[1])):
        for line in path.read_bytes().splitlines():
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # the last line of a process killed mid-write
            if entry.get(BEGIN):
                begins[entry["request_id"]] = entry
            else:
                rows[entry["request_id"]] = entry
    lost = [entry for rid, entry in begins.items() if rid not in rows]
    return list(rows.values()), lost


def journal_remove(directory: Path, owner: str, fd: int | None) -> None:
    for path in directory.glob(f"{owner}.*.jsonl"):
        path.unlink(missing_ok=True)
    (directory / f"{owner}.lock").unlink(missing_ok=True)
    if fd is not None:
        os.close(fd)
