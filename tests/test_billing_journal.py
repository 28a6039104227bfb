"""The ledger's write-ahead journal (billing.journal) on a real directory: rotation keeps what is
not committed yet (and the begin lines of requests still in flight), a live owner is never
replayed, a dead one is read back as its rows plus its requests lost in flight."""

from __future__ import annotations

import os

import orjson

from billing import journal as journal_module
from billing.journal import BEGIN, Journal, dead_journals, journal_read, journal_remove


def _line(request_id: str, **extra) -> bytes:
    return orjson.dumps({"request_id": request_id, **extra}) + b"\n"


def test_rotation_deletes_a_segment_only_once_its_rows_are_committed_and_carries_open_begins(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_module, "ROTATE_BYTES", 200)
    journal = Journal(tmp_path)
    with journal.lock:
        journal.begin("streaming", _line("streaming", **{BEGIN: 1}))
        for i in range(5):
            journal.row(f"done{i}", _line(f"done{i}", pad="x" * 40))
    buffered = ["done3", "done4"]  # three rows are committed already, two still buffered
    journal.rotate_if_big(buffered)
    segments = sorted(tmp_path.glob("*.jsonl"))
    assert len(segments) == 2
    journal.committed(1, buffered)
    assert len(list(tmp_path.glob("*.jsonl"))) == 2, "one buffered row of the old segment is not committed yet"
    buffered.clear()
    journal.committed(1, buffered)
    [current] = tmp_path.glob("*.jsonl")
    assert b'"streaming"' in current.read_bytes(), "the open request's begin moved to the new segment"
    assert dead_journals(tmp_path) == [], "a live owner is never replayed"


def test_a_dead_owner_is_read_back_as_rows_and_requests_lost_in_flight(tmp_path):
    journal = Journal(tmp_path)
    with journal.lock:
        journal.begin("finished", _line("finished", **{BEGIN: 1}))
        journal.begin("lost", _line("lost", **{BEGIN: 1}))
        journal.row("finished", _line("finished", status=200))
        os.write(journal._fd, b'{"request_id": "torn')  # killed mid-write
    os.close(journal._lock_fd)  # what the kernel does when the owner dies
    [(owner, fd)] = dead_journals(tmp_path)
    assert owner == journal.owner
    rows, lost = journal_read(tmp_path, owner)
    assert [r["request_id"] for r in rows] == ["finished"] and rows[0]["status"] == 200
    assert [r["request_id"] for r in lost] == ["lost"]
    journal_remove(tmp_path, owner, fd)
    assert list(tmp_path.iterdir()) == []
