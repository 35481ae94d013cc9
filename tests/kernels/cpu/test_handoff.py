"""The split mode's hand-over between two threads: counters published and waited for through a control array."""
import threading
import time

import numpy as np

from nkernels.kernels.cpu import handoff
from nkernels.kernels.cpu.handoff import CONTROL_SIZE, HALVES, JOINED, SLOT, STOP, signal, wait_until

#: a counter of each kind: role 0's halves and role 1's joins
GO, DONE = HALVES, JOINED + SLOT


def later(action, delay=0.05):
    """Run ``action`` on another thread after ``delay`` seconds; returns the thread."""
    def run():
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_the_counters_lie_a_cache_line_apart():
    counters = [HALVES, HALVES + SLOT, JOINED, JOINED + SLOT, STOP, handoff.STATE, handoff.DONE, handoff.RUN]
    assert sorted(counters) == [i * SLOT for i in range(8)] and CONTROL_SIZE == 8 * SLOT
    assert SLOT * np.dtype(np.int64).itemsize == 64


def test_wait_until_returns_once_another_thread_publishes_the_value():
    control = np.zeros(CONTROL_SIZE, np.int64)
    thread = later(lambda: (signal(control, GO, 2), signal(control, GO, 3)))
    assert wait_until(control, GO, 3)
    thread.join()
    assert control[GO] == 3 and control[DONE] == 0 and control[STOP] == 0


def test_wait_until_gives_up_when_the_other_side_stops():
    control = np.zeros(CONTROL_SIZE, np.int64)
    thread = later(lambda: control.__setitem__(STOP, 1))  # as the trainer sets it, from Python
    assert not wait_until(control, DONE, 1)
    thread.join()


def test_a_value_published_before_the_stop_still_counts():
    control = np.zeros(CONTROL_SIZE, np.int64)
    signal(control, DONE, 4)
    control[STOP] = 1
    assert wait_until(control, DONE, 4)
    assert not wait_until(control, DONE, 5)


def serving(polls, runs_seen):
    """The loop of a second thread serving runs, as role 1 of a generated ``run_split_batches``
    runs it: each run posted appends its words to ``runs_seen``."""
    def serve(control):
        runs = 0
        while handoff.wait_for_post(control, polls):
            runs += 1
            runs_seen.append(tuple(control[handoff.RUN:handoff.RUN + 3]))
            handoff.finish_run(control, runs)
    return serve


def test_a_waiting_thread_takes_each_posted_run_until_told_to_go():
    control = np.zeros(CONTROL_SIZE, np.int64)  # WAITING: as after a first run
    seen = []
    thread = threading.Thread(target=serving(10**7, seen), args=(control,), daemon=True)  # polls: ~4 s
    thread.start()
    for run in range(1, 4):
        assert handoff.post_run(control, run, 10 * run, 100 * run)
        assert not handoff.post_run(control, 0, 0, 0)  # one run at a time: it is taken or still posted
        assert handoff.wait_for_run(control, run)
    assert handoff.retire(control)
    thread.join(timeout=60)
    assert not thread.is_alive() and seen == [(1, 10, 100), (2, 20, 200), (3, 30, 300)]
    assert control[handoff.STATE] == handoff.GONE and control[handoff.DONE] == 3
    assert not handoff.post_run(control, 4, 40, 400) and not handoff.retire(control)  # nobody takes it


def test_a_thread_that_waits_in_vain_goes_and_refuses_later_runs():
    control = np.zeros(CONTROL_SIZE, np.int64)
    seen = []
    serving(5, seen)(control)  # five polls and no run: it goes
    assert seen == [] and control[handoff.STATE] == handoff.GONE
    assert not handoff.post_run(control, 0, 1, 1)


def test_waiting_for_a_run_ends_when_the_thread_fails():
    control = np.zeros(CONTROL_SIZE, np.int64)
    control[handoff.STATE] = handoff.POSTED
    thread = later(lambda: control.__setitem__(handoff.STATE, handoff.GONE))  # as the trainer marks a failure
    assert not handoff.wait_for_run(control, 1)
    thread.join()
    handoff.finish_run(control, 1)
    assert handoff.wait_for_run(control, 1) and control[handoff.STATE] == handoff.WAITING
