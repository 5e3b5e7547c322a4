"""The repository and its spool: bad lines never stop logging, an unusable spool folder does
not turn the database off, drawings logged offline keep the model version that made them,
the status counts the drawings sent, and a replay killed between chunks loses and
duplicates nothing."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from dbhelpers import fetch, make_record

from app.db import DatabaseUnavailable, PredictionRepository, VersionSpec
from app.db.spool import Spool

CHILD = Path(__file__).with_name("replay_child.py")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def spec(tag: str, **fields) -> VersionSpec:
    args = dict(sha256=sha(tag), path=f"/models/{tag}.pth", arch="mnist_cnn",
                metrics={"test_accuracy": 0.99}, kind="trained")
    args.update(fields)
    return VersionSpec(**args)


def test_a_bad_spool_line_never_stops_logging(db_url, tmp_path):
    spool_dir = tmp_path / "spool"
    spool = Spool(spool_dir)
    first, second = make_record(1, seed=1), make_record(2, seed=2)
    spool.add_record(first)
    with open(spool.path, "ab") as f:
        f.write(b"null\n[1,2]\n123\n")
        f.write(json.dumps({"v": 9, "op": "insert", "record": first.to_json()}).encode() + b"\n")
    spool.add_record(second)
    with open(spool.path, "ab") as f:
        f.write(b'{"v":2,"op":"lab')  # cut by a crash
    repo = PredictionRepository(db_url, spool_dir=spool_dir)
    assert repo.status().online and repo.status().pending == 0
    assert {r[0] for r in fetch(db_url, "SELECT uuid::text FROM predictions")} == {first.uuid,
                                                                                 second.uuid}
    third = repo.log(make_record(3, seed=3))  # logging goes on
    assert repo.accuracy()["total"] == 3 and third
    rejected = (spool_dir / "rejected.jsonl").read_text().splitlines()
    assert len(rejected) == 5
    repo.flush_spool()
    PredictionRepository(db_url, spool_dir=spool_dir).close()
    assert len((spool_dir / "rejected.jsonl").read_text().splitlines()) == 5  # kept once
    repo.close()


def test_an_unusable_spool_folder_still_writes_online(external_pg, external_db_url, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("where the spool folder should be")
    repo = PredictionRepository(external_db_url, spool_dir=blocker / "spool", retry_interval=0)
    status = repo.status()
    assert status.online and "cannot be kept" in status.warning and str(blocker) in status.warning
    repo.log(make_record())
    repo.set_label(repo.log(make_record(4)), 4)
    assert repo.accuracy()["total"] == 2
    external_pg.stop("fast")
    try:
        with pytest.raises(DatabaseUnavailable, match="not saved") as err:
            repo.log(make_record())
        assert "MNIST_DATA_HOME" in str(err.value)
        assert not repo.status().online and repo.status().warning
    finally:
        external_pg.start()
    blocker.unlink()  # the folder becomes usable: offline writes are kept again
    repo.flush_spool()
    assert repo.status().online and repo.status().warning is None
    repo.close()


def test_drawings_logged_offline_from_the_start_keep_their_version(external_pg,
                                                                  external_db_url, tmp_path):
    """The app starts with the server down: the model's version cannot be registered, its
    drawings are spooled with the version's description; once the server is up the
    version is registered and every row carries it."""
    with PredictionRepository(external_db_url, spool_dir=None) as setup:
        parent_id = setup.register_model_version(sha256=sha("parent"), path="/m/p.pth",
                                                 arch="mnist_cnn", metrics={}, kind="shipped")
    child = spec("child", kind="fine-tuned", parent_sha256=sha("parent"), name="mine",
                 metrics={"test_accuracy": 0.995})
    unknown_parent = spec("orphan", parent_sha256=sha("never registered"))
    external_pg.stop("fast")
    try:
        repo = PredictionRepository(external_db_url, spool_dir=tmp_path / "spool",
                                    retry_interval=0)
        assert not repo.status().online
        made = [repo.log(make_record(i % 10, 0.9, seed=i, label=i % 10), version=child)
                for i in range(3)]
        orphan = repo.log(make_record(5, seed=9), version=unknown_parent)
        plain = repo.log(make_record(6, seed=10))
        repo.set_label(made[0], 1)
        assert repo.status().pending == 6 and repo.status().drawings_sent == 0
    finally:
        external_pg.start()
    assert repo.flush_spool() == 6
    status = repo.status()
    assert status.online and status.pending == 0 and status.drawings_sent == 5
    stored = dict(fetch(external_db_url, "SELECT uuid::text, model_version_id FROM predictions"))
    version = repo.model_version_by_sha(child.sha256)
    assert version is not None and {stored[u] for u in made} == {version.id}
    assert (version.parent_id, version.kind, version.name, version.path, version.arch) == (
        parent_id, "fine-tuned", "mine", "/models/child.pth", "mnist_cnn")
    assert version.metrics == {"test_accuracy": 0.995}
    orphan_version = repo.model_version_by_sha(unknown_parent.sha256)
    assert stored[orphan] == orphan_version.id and orphan_version.parent_id is None
    assert stored[plain] is None
    assert repo.accuracy(version.id) == {"total": 3, "labelled": 3, "correct": 2,
                                         "accuracy": pytest.approx(2 / 3)}
    # Online, the same spec finds the same version; registering it later too.
    assert repo.log(make_record(seed=11), version=child)
    assert repo.accuracy(version.id)["total"] == 4
    assert repo.register_model_version(sha256=child.sha256, path="/models/child.pth",
                                       arch="mnist_cnn", metrics={}) == version.id
    repo.close()


def test_log_with_a_version_online_registers_it_once(db_url, tmp_path):
    repo = PredictionRepository(db_url, spool_dir=tmp_path / "spool")
    v = spec("online")
    for i in range(3):
        repo.log(make_record(seed=i), version=v)
    [version] = repo.model_versions()
    assert version.sha256 == v.sha256 and version.predictions == 3
    with pytest.raises(ValueError, match="sha256"):
        repo.log(make_record(), version=spec("x", sha256="nope"))
    repo.close()


def test_a_replay_killed_between_chunks_loses_and_duplicates_nothing(db_url, tmp_path):
    spool_dir = tmp_path / "spool"
    spool = Spool(spool_dir)
    records = [make_record(i % 10, 0.9, seed=i) for i in range(3000)]
    for r in records:
        spool.add_record(r)
    for r in records[::7]:
        spool.add_label(r.uuid, 7, datetime.now(timezone.utc))
    child = subprocess.Popen([sys.executable, str(CHILD), db_url, str(spool_dir)],
                             stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        offset = spool_dir / "pending.offset"
        while not offset.exists() and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.005)
        assert child.poll() is None, "the replay ended before it could be killed"
        os.kill(child.pid, signal.SIGKILL)  # between chunks (or in the middle of one)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    sent_before = fetch(db_url, "SELECT count(*) FROM predictions")[0][0]
    assert 0 < sent_before < len(records)
    repo = PredictionRepository(db_url, spool_dir=spool_dir)  # the next start
    assert repo.status().pending == 0
    assert repo.status().drawings_sent <= len(records) - sent_before + 100  # resent at most a chunk
    total, distinct, labelled = fetch(
        db_url, "SELECT count(*), count(DISTINCT uuid), count(true_label) FROM predictions")[0]
    assert (total, distinct) == (len(records), len(records))
    assert labelled == len(records[::7])
    repo.close()
