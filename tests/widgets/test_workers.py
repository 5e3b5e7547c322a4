"""The one worker mechanism (app/workers.py): order, latest-only, errors, progress,
cancel, shutdown; callbacks in the GUI thread."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QThread

from app.workers import WorkerThread


@pytest.fixture
def worker(qtbot):
    w = WorkerThread("test")
    yield w
    w.stop()


def test_jobs_run_in_order_off_the_gui_thread_and_report_in_it(qtbot, worker):
    gui = QThread.currentThread()
    seen, threads = [], []

    def job(i):
        threads.append(threading.get_ident())
        return i

    for i in range(5):
        worker.submit(job, i, on_result=lambda r: seen.append((r, QThread.currentThread() is gui)))
    qtbot.waitUntil(lambda: len(seen) == 5, timeout=5000)
    assert seen == [(i, True) for i in range(5)]
    assert threading.get_ident() not in threads and len(set(threads)) == 1


def test_latest_only_drops_stale_requests(qtbot, worker):
    gate = threading.Event()
    results = []
    worker.submit(gate.wait, 5)  # keeps the thread busy
    jobs = [worker.submit(lambda i=i: i, key="predict", on_result=results.append) for i in range(10)]
    assert [j.state for j in jobs[:-1]] == ["dropped"] * 9 and jobs[-1].state == "queued"
    gate.set()
    qtbot.waitUntil(lambda: results == [9], timeout=5000)
    assert worker.pending("predict") == 0


def test_errors_go_to_on_error_or_to_error_occurred(qtbot, worker):
    errors = []

    def boom():
        raise ValueError("nope")

    worker.submit(boom, on_error=errors.append)
    qtbot.waitUntil(lambda: len(errors) == 1, timeout=5000)
    assert isinstance(errors[0], ValueError)
    with qtbot.waitSignal(worker.errorOccurred, timeout=5000) as unhandled:
        worker.submit(boom)
    assert unhandled.args[0].endswith("boom")


def test_progress_and_cooperative_cancel(qtbot, worker):
    progress, outcome = [], []

    def long_job(job):
        for i in range(1000):
            if job.cancelled:
                return "cancelled"
            job.progress(i)
            time.sleep(0.005)
        return "done"

    job = worker.submit(long_job, with_job=True, on_progress=progress.append, on_result=outcome.append)
    qtbot.waitUntil(lambda: len(progress) >= 3, timeout=5000)
    job.cancel()
    qtbot.waitUntil(lambda: outcome == ["cancelled"], timeout=5000)
    assert progress[:3] == [0, 1, 2]


def test_stop_drains_when_asked_and_calls_nothing_after(qtbot):
    w = WorkerThread("drain")
    done = []
    for i in range(5):
        w.submit(lambda i=i: (time.sleep(0.01), done.append(i)))
    assert w.stop(drain=True, timeout_s=5)
    assert done == [0, 1, 2, 3, 4]
    late = w.submit(lambda: 1)
    assert late.state == "dropped"

    w2 = WorkerThread("no-drain")
    called = []
    gate = threading.Event()
    w2.submit(gate.wait, 0.2, on_result=called.append)
    w2.submit(lambda: 1, on_result=called.append)
    assert w2.stop(drain=False, timeout_s=5)
    qtbot.wait(50)
    assert called == []  # no callback after stop()


def test_request_stop_lets_several_threads_stop_together(qtbot):
    a, b = WorkerThread("a"), WorkerThread("b")
    gate = threading.Event()
    called = []
    a.submit(gate.wait, 5, on_result=called.append)
    b.submit(lambda: "drained", on_result=called.append)
    a.request_stop()
    b.request_stop(drain=True)
    assert a.submit(lambda: 1).state == "dropped" and b.submit(lambda: 1).state == "dropped"
    gate.set()
    assert a.stop(timeout_s=5) and b.stop(timeout_s=5)
    qtbot.wait(50)
    assert called == []  # no callback once stopping began
