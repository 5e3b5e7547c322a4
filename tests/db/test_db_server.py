"""The embedded server: shared by two processes, reused after SIGKILL, never duplicated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
from dbhelpers import wait_until

from app.db.server import EmbeddedServer, postmasters

CHILD = Path(__file__).with_name("embedded_child.py")


class Child:
    """Another process using the embedded server on ``pgdata``."""

    def __init__(self, pgdata: Path):
        self.proc = subprocess.Popen([sys.executable, str(CHILD), str(pgdata)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.proc.kill()
            raise AssertionError(f"child did not start the server: {line!r}")
        self.server_pid = int(line)

    def finish(self) -> None:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "stopped"
        assert self.proc.wait(timeout=30) == 0

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


def can_query(url: str) -> bool:
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        ok = cur.fetchone() == (1,)
    conn.close()
    return ok


def handle_pids(pgdata: Path) -> list[int]:
    return json.loads((pgdata / ".handle_pids.json").read_text())


@pytest.fixture
def pgdata(scratch_pgdata):
    assert postmasters(scratch_pgdata) == [], "a server from an earlier test is still running"
    yield scratch_pgdata
    assert wait_until(lambda: postmasters(scratch_pgdata) == [], timeout=20), \
        "the test left a server running"


def test_start_stop_and_start_again(pgdata):
    server = EmbeddedServer(pgdata)
    url = server.start()
    assert url.endswith(f"host={pgdata}") or "host=" in url
    assert can_query(url)
    assert postmasters(pgdata) == [server.pid]
    assert server.start() == url  # idempotent
    server.stop()
    assert postmasters(pgdata) == []
    server.start()
    assert can_query(server.url)
    server.stop()


def test_sigkill_of_the_app_then_next_start_reuses_the_one_server(pgdata):
    child = Child(pgdata)
    child.kill()  # the server keeps running, its handle list names a dead pid
    assert postmasters(pgdata) == [child.server_pid]
    assert child.proc.pid in handle_pids(pgdata)

    server = EmbeddedServer(pgdata)
    server.start()
    assert server.pid == child.server_pid  # reused, not a second server
    assert postmasters(pgdata) == [child.server_pid]
    assert handle_pids(pgdata) == [os.getpid()]
    assert can_query(server.url)
    server.stop()  # we are the last user: it stops
    assert postmasters(pgdata) == []


def test_two_app_instances_share_one_server(pgdata):
    child = Child(pgdata)
    server = EmbeddedServer(pgdata)
    server.start()
    assert server.pid == child.server_pid and postmasters(pgdata) == [child.server_pid]
    server.stop()  # the child still uses it
    assert postmasters(pgdata) == [child.server_pid]
    child.finish()  # the last user stops it
    assert postmasters(pgdata) == []


def test_start_after_app_and_server_were_killed(pgdata):
    child = Child(pgdata)
    child.kill()
    os.kill(child.server_pid, signal.SIGKILL)  # a crash of everything
    assert wait_until(lambda: postmasters(pgdata) == [])
    assert (pgdata / "postmaster.pid").exists()  # stale

    server = EmbeddedServer(pgdata)
    server.start()
    assert server.pid != child.server_pid
    assert postmasters(pgdata) == [server.pid]
    assert can_query(server.url)
    server.stop()


def test_stale_postmaster_pid_naming_an_unrelated_process(pgdata):
    server = EmbeddedServer(pgdata)
    server.start()
    lines = (pgdata / "postmaster.pid").read_text().splitlines(keepends=True)
    server.stop()
    other = subprocess.Popen(["sleep", "60"])  # a live process that is not PostgreSQL
    try:
        (pgdata / "postmaster.pid").write_text("".join([f"{other.pid}\n", *lines[1:]]))
        server.start()
        assert server.pid != other.pid and postmasters(pgdata) == [server.pid]
        assert can_query(server.url)
        server.stop()
    finally:
        other.kill()
        other.wait()


def test_two_objects_in_one_process(pgdata):
    a, b = EmbeddedServer(pgdata), EmbeddedServer(pgdata)
    a.start()
    b.start()
    assert a.pid == b.pid
    a.stop()
    assert can_query(b.url)  # b still holds it
    b.stop()
    assert postmasters(pgdata) == []
