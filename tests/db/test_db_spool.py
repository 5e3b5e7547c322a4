"""The spool on its own (no server)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from dbhelpers import make_record

from app.db.spool import Spool


def test_entries_survive_a_new_spool_object_in_order(tmp_path):
    spool = Spool(tmp_path)
    records = [make_record(i, 0.9, seed=i) for i in range(3)]
    for r in records:
        spool.add_record(r)
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    spool.add_label(records[1].uuid, 7, at)
    assert len(spool) == 4

    again = Spool(tmp_path)  # as after a restart
    entries = again.entries()
    assert [e["op"] for e in entries] == ["insert", "insert", "insert", "label"]
    assert [e["record"]["uuid"] for e in entries[:3]] == [r.uuid for r in records]
    assert entries[3] == {"v": 1, "op": "label", "uuid": records[1].uuid, "label": 7,
                          "at": at.isoformat()}
    from app.db.records import PredictionRecord
    back = PredictionRecord.from_json(entries[0]["record"]).validate()
    assert back == records[0]


def test_replay_empties_only_after_success(tmp_path):
    spool = Spool(tmp_path)
    spool.add_record(make_record())
    spool.add_record(make_record())

    def fail(entries):
        raise RuntimeError("server went away")

    with pytest.raises(RuntimeError):
        spool.replay(fail)
    assert len(spool) == 2

    seen = []
    assert spool.replay(seen.extend) == 2
    assert len(seen) == 2 and len(spool) == 0 and spool.entries() == []
    assert spool.replay(seen.extend) == 0


def test_a_torn_last_line_is_cut(tmp_path):
    spool = Spool(tmp_path)
    spool.add_record(make_record())
    with open(spool.path, "ab") as f:
        f.write(b'{"v":1,"op":"ins')  # a crash in the middle of a write
    again = Spool(tmp_path)
    assert len(again) == 1
    again.add_record(make_record())
    assert [e["op"] for e in again.entries()] == ["insert", "insert"]


def test_garbage_lines_are_set_aside(tmp_path):
    spool = Spool(tmp_path)
    spool.add_record(make_record())
    with open(spool.path, "ab") as f:
        f.write(b"not json\n")
        f.write(json.dumps({"op": "explode"}).encode() + b"\n")
    spool.add_record(make_record())
    assert [e["op"] for e in spool.entries()] == ["insert", "insert"]
    rejected = (tmp_path / "rejected.jsonl").read_text().splitlines()
    assert len(rejected) >= 2


def test_two_spool_objects_share_a_folder(tmp_path):
    a, b = Spool(tmp_path), Spool(tmp_path)
    a.add_record(make_record())
    b.add_record(make_record())
    a.add_record(make_record())
    assert len(a) == len(b) == 3
    assert b.pending_nowait() == 3
    assert b.replay(lambda entries: None) == 3
    assert len(a) == 0
