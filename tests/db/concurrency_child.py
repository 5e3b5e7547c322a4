"""One client of the concurrency test and benchmark (tests/db/test_db_concurrency.py,
bench/db_concurrency.py), in a process of its own.

    concurrency_child.py replay URL SPOOL_DIR
        opens a repository on URL with the spool in SPOOL_DIR (which it replays) and
        keeps flushing until the spool is empty
    concurrency_child.py write URL N SPOOL_DIR
        logs N predictions live, timing each

Each prints "ready" once imported and connected to nothing yet, waits for a line on stdin
(so that all clients start together), works, then prints one JSON line: seconds taken,
per-write milliseconds (writers), the status at the end, how many times it went offline
and for how long, and how many deadlock retries it made.

`run_scenario` (used by the test and the benchmark) fills the replayers' spools, starts
all the clients at once and gathers their reports.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dbhelpers import make_record  # noqa: E402

from app.db import PredictionRepository, VersionSpec  # noqa: E402
from app.db.spool import Spool  # noqa: E402

SPEC = VersionSpec(sha256=hashlib.sha256(b"concurrency").hexdigest(), path="/models/c.pth",
                   arch="mnist_cnn", metrics={"test_accuracy": 0.99}, kind="trained")


@dataclass
class Scenario:
    """What the clients did and what the database should hold afterwards."""

    replayers: list[dict] = field(default_factory=list)
    writers: list[dict] = field(default_factory=list)
    spooled: dict[str, int | None] = field(default_factory=dict)  # uuid -> expected label
    with_version: set[str] = field(default_factory=set)             # uuids made by SPEC
    live: int = 0                                                   # predictions written live


def fill_spool(folder: Path, k: int, inserts: int, scenario: Scenario) -> None:
    """``inserts`` spooled predictions (half by SPEC, known only by its weights) and a
    label for every fifth, corrected once for every tenth; all in the current hour."""
    spool = Spool(folder)
    now = datetime.now(timezone.utc)
    uuids = []
    for i in range(inserts):
        record = make_record((k + i) % 10, 0.5 + (i % 50) / 100, seed=k * 1000 + i,
                             created_at=now)
        if i % 2:
            spool.add_record(record, SPEC.sha256, SPEC)
            scenario.with_version.add(record.uuid)
        else:
            spool.add_record(record)
        scenario.spooled[record.uuid] = None
        uuids.append(record.uuid)
    for i in range(0, inserts, 5):
        spool.add_label(uuids[i], (i + k) % 10, datetime.now(timezone.utc))
        scenario.spooled[uuids[i]] = (i + k) % 10
        if i % 10 == 0:
            spool.add_label(uuids[i], (i + k + 1) % 10, datetime.now(timezone.utc))
            scenario.spooled[uuids[i]] = (i + k + 1) % 10


def run_scenario(url: str, folder: Path, *, replayers: int = 8, writers: int = 4,
                 inserts: int = 300, writes: int = 150, timeout: float = 300) -> Scenario:
    """``replayers`` processes replaying spools while ``writers`` others log live, all
    against ``url``; returns their reports (the caller checks the database)."""
    scenario = Scenario()
    commands = []
    for k in range(replayers):
        spool_dir = folder / f"replayer-{k}"
        fill_spool(spool_dir, k, inserts, scenario)
        commands.append(["replay", url, str(spool_dir)])
    for k in range(writers):
        commands.append(["write", url, str(writes), str(folder / f"writer-{k}")])
        scenario.live += writes
    procs = [subprocess.Popen([sys.executable, __file__, *args], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for args in commands]
    try:
        for proc in procs:
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a client did not start: {proc.args}")
        for proc in procs:  # all at once
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            out, _ = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                raise RuntimeError(f"a client failed (rc {proc.returncode}): {proc.args}")
            report = json.loads(out.strip().splitlines()[-1])
            (scenario.replayers if report["role"] == "replay" else scenario.writers).append(report)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return scenario


class Watch(logging.Handler):
    """Counts what the repository reports: offline spells and deadlock retries."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.retries = 0
        self.offline_since: float | None = None
        self.offline_spells: list[float] = []
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        now = time.monotonic()
        if text.startswith("Retrying after"):
            self.retries += 1
        elif text.startswith("Database offline") and self.offline_since is None:
            self.offline_since = now
            self.messages.append(text)
        elif "reachable again" in text and self.offline_since is not None:
            self.offline_spells.append(now - self.offline_since)
            self.offline_since = None

    def close_spell(self) -> None:
        if self.offline_since is not None:
            self.offline_spells.append(time.monotonic() - self.offline_since)
            self.offline_since = None


def main() -> int:
    role, url = sys.argv[1], sys.argv[2]
    watch = Watch()
    logging.getLogger("app.db").addHandler(watch)
    logging.getLogger("app.db").setLevel(logging.DEBUG)
    print("ready", flush=True)
    sys.stdin.readline()
    result: dict = {"role": role}
    t0 = time.perf_counter()
    if role == "replay":
        repo = PredictionRepository(url, spool_dir=sys.argv[3], retry_interval=0.05)
        while repo.status().pending and time.perf_counter() - t0 < 120:
            repo.flush_spool()
        result["seconds"] = time.perf_counter() - t0
    else:
        n = int(sys.argv[3])
        repo = PredictionRepository(url, spool_dir=sys.argv[4], retry_interval=0.05)
        times = []
        for i in range(n):
            record = make_record(i % 10, 0.9, seed=i, label=i % 10 if i % 4 == 0 else None)
            start = time.perf_counter()
            repo.log(record)
            times.append((time.perf_counter() - start) * 1000)
        while repo.status().pending and time.perf_counter() - t0 < 120:
            repo.flush_spool()
        result["seconds"] = time.perf_counter() - t0
        result["write_ms"] = times
    watch.close_spell()
    status = repo.status()
    result.update(online=status.online, pending=status.pending,
                  drawings_sent=status.drawings_sent, retries=watch.retries,
                  offline_spells=watch.offline_spells, offline_messages=watch.messages[:3])
    repo.close()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
