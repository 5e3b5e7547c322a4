"""The spool on its own (no server)."""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timezone

import pytest
from dbhelpers import make_record

from app.db.records import PredictionRecord
from app.db.spool import Spool


def collect(seen: list):
    """An apply function that accepts everything and remembers the chunks."""
    def apply(entries):
        seen.append(list(entries))
        return []
    return apply


def rejected_lines(folder) -> list[dict]:
    path = folder / "rejected.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


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
    assert entries[3] == {"v": 2, "op": "label", "uuid": records[1].uuid, "label": 7,
                          "at": at.isoformat()}
    back = PredictionRecord.from_json(entries[0]["record"]).validate()
    assert back == records[0]
    assert stat.S_IMODE(os.stat(spool.path).st_mode) == 0o600


def test_replay_empties_only_after_success(tmp_path):
    spool = Spool(tmp_path)
    spool.add_record(make_record())
    spool.add_record(make_record())

    def fail(entries):
        raise RuntimeError("server went away")

    with pytest.raises(RuntimeError):
        spool.replay(fail)
    assert len(spool) == 2

    seen: list = []
    result = spool.replay(collect(seen))
    assert (result.sent, result.drawings) == (2, 2)
    assert sum(map(len, seen)) == 2 and len(spool) == 0 and spool.entries() == []
    assert spool.replay(collect(seen)).sent == 0


def test_chunks_are_runs_of_one_kind_and_bounded(tmp_path):
    spool = Spool(tmp_path)
    records = [make_record(seed=i) for i in range(7)]
    for r in records[:5]:
        spool.add_record(r)
    spool.add_label(records[0].uuid, 1, datetime.now(timezone.utc))
    spool.add_label(records[1].uuid, 2, datetime.now(timezone.utc))
    for r in records[5:]:
        spool.add_record(r)
    seen: list = []
    result = spool.replay(collect(seen), chunk_entries=3)
    assert [[e["op"] for e in chunk] for chunk in seen] == [
        ["insert"] * 3, ["insert"] * 2, ["label"] * 2, ["insert"] * 2]
    assert (result.sent, result.drawings) == (9, 7)


def test_a_crash_between_chunks_resends_nothing_and_loses_nothing(tmp_path):
    spool = Spool(tmp_path)
    records = [make_record(seed=i) for i in range(5)]
    for r in records:
        spool.add_record(r)
    sent: list = []

    def crash_on_third_chunk(entries):
        if len(sent) == 2:
            raise KeyboardInterrupt("killed")
        sent.append([e["record"]["uuid"] for e in entries])
        return []

    with pytest.raises(KeyboardInterrupt):
        spool.replay(crash_on_third_chunk, chunk_entries=2)
    again = Spool(tmp_path)  # the next start
    assert len(again) == 1
    rest: list = []
    again.replay(collect(rest))
    assert [e["record"]["uuid"] for chunk in rest for e in chunk] == [records[4].uuid]
    assert sum(sent, []) == [r.uuid for r in records[:4]]
    assert len(again) == 0 and not (tmp_path / "pending.offset").exists()


# A line the app cannot apply, as it would appear in pending.jsonl.
BAD_LINES = {
    "null": b"null\n",
    "number": b"123\n",
    "list": b"[1,2]\n",
    "string": b'"insert"\n',
    "garbage": b"\x00\xffnot json at all\n",
    "unknown version": json.dumps({"v": 3, "op": "insert", "record": {}}).encode() + b"\n",
    "no version": json.dumps({"op": "label", "uuid": "x", "label": 1, "at": "x"}).encode() + b"\n",
    "unknown operation": json.dumps({"v": 1, "op": "explode"}).encode() + b"\n",
    "insert without record": json.dumps({"v": 1, "op": "insert", "record": None}).encode() + b"\n",
}


@pytest.mark.parametrize("kind", list(BAD_LINES))
def test_a_bad_line_is_set_aside_once_and_the_others_are_sent(tmp_path, kind):
    spool = Spool(tmp_path)
    before, after = make_record(1, seed=1), make_record(2, seed=2)
    spool.add_record(before)
    with open(spool.path, "ab") as f:
        f.write(BAD_LINES[kind])
    spool.add_record(after)  # logging goes on
    for _ in range(3):        # every read: the same two entries, the bad line kept once
        assert [e["record"]["uuid"] for e in Spool(tmp_path).entries()] == [before.uuid,
                                                                           after.uuid]
        assert len(spool) == 2
    seen: list = []
    assert spool.replay(collect(seen)).sent == 2
    assert [e["record"]["uuid"] for chunk in seen for e in chunk] == [before.uuid, after.uuid]
    [kept] = rejected_lines(tmp_path)
    assert kept["reason"]
    raw = kept["line"].encode() if "line" in kept else __import__("base64").b64decode(
        kept["line_base64"])
    assert raw == BAD_LINES[kind]
    assert stat.S_IMODE(os.stat(tmp_path / "rejected.jsonl").st_mode) == 0o600


def test_a_line_cut_by_a_crash_is_kept_in_rejected_and_logging_goes_on(tmp_path):
    spool = Spool(tmp_path)
    spool.add_record(make_record())
    with open(spool.path, "ab") as f:
        f.write(b'{"v":2,"op":"ins')  # a crash in the middle of a write
    again = Spool(tmp_path)
    assert len(again) == 1
    again.add_record(make_record())
    assert [e["op"] for e in again.entries()] == ["insert", "insert"]
    Spool(tmp_path).entries()
    [kept] = rejected_lines(tmp_path)
    assert kept["line"] == '{"v":2,"op":"ins' and "unfinished" in kept["reason"]


def test_an_old_world_readable_rejected_file_becomes_private(tmp_path):
    (tmp_path / "rejected.jsonl").write_text("")
    os.chmod(tmp_path / "rejected.jsonl", 0o644)
    spool = Spool(tmp_path)
    with open(spool.path, "ab") as f:
        f.write(b"null\n")
    spool.entries()
    assert stat.S_IMODE(os.stat(tmp_path / "rejected.jsonl").st_mode) == 0o600


def test_format_1_lines_of_an_older_release_are_read(tmp_path):
    record = make_record()
    line = {"v": 1, "op": "insert", "record": record.to_json()}
    (tmp_path / "pending.jsonl").write_text(json.dumps(line) + "\n")
    assert Spool(tmp_path).entries() == [line]


def test_two_spool_objects_share_a_folder(tmp_path):
    a, b = Spool(tmp_path), Spool(tmp_path)
    a.add_record(make_record())
    b.add_record(make_record())
    a.add_record(make_record())
    assert len(a) == len(b) == 3
    assert b.pending_nowait() == 3
    assert b.replay(lambda entries: []).sent == 3
    assert len(a) == 0
