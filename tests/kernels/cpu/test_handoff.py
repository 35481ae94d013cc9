"""The split mode's hand-over between two threads: counters published and waited for through a control array."""
import threading
import time

import numpy as np

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
    counters = [HALVES, HALVES + SLOT, JOINED, JOINED + SLOT, STOP]  # each role's halves and joins, the stop
    assert sorted(counters) == [i * SLOT for i in range(5)] and CONTROL_SIZE == 5 * SLOT
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
