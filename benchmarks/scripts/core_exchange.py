"""How fast the machine's two cores hand each other work and data, probed again and again over time.

Run: ``python benchmarks/scripts/core_exchange.py [--probes 40] [--pause 6] [--kilobytes 104]``
(prints one line a probe). Two threads of one ``prange`` region take turns through the counters of
:mod:`nkernels.kernels.cpu.handoff`, as the compiled trainer's split mode does at every step:

* a round trip: each thread writes 64 bytes and signals, then waits for the other's signal and
  reads its 64 bytes;
* an exchange: the same with ``--kilobytes`` each way (104 KB: the bench MLP's gradients, which
  the split step's two threads read from each other), written and read a vector at a time.

On a virtual machine the host may move the two virtual CPUs onto cores that share less (another
core complex, another socket), for seconds to minutes at a time; the timings then jump between
two levels, and so do the split steps of small models, which exchange this much every step.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from numba import njit, prange

from nkernels.kernels.cpu.handoff import SLOT, signal, wait_until


@njit(parallel=True)
def _take_turns(control, data, rounds):
    """Each of two threads writes its row of ``data``, signals, waits for the other and copies the other's row."""
    for me in prange(2):
        other = 1 - me
        local = np.empty(data.shape[1], data.dtype)
        for r in range(rounds):
            for i in range(data.shape[1]):
                data[me, i] = r
            signal(control, me * SLOT, r + 1)
            wait_until(control, other * SLOT, r + 1)
            for i in range(data.shape[1]):
                local[i] = data[other, i]


def _seconds_per_round(entries: int, rounds: int) -> float:
    control = np.zeros(2 * SLOT, np.int64)
    data = np.zeros((2, entries), np.float32)
    start = time.perf_counter()
    _take_turns(control, data, rounds)
    return (time.perf_counter() - start) / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--pause", type=float, default=6.0, help="seconds between probes")
    parser.add_argument("--kilobytes", type=int, default=104)
    args = parser.parse_args()
    entries = args.kilobytes * 1000 // 4
    _seconds_per_round(16, 10)  # compile
    for _ in range(args.probes):
        trip = _seconds_per_round(16, 20_000)
        exchange = _seconds_per_round(entries, 2_000)
        print(f"{time.strftime('%H:%M:%S')} round trip {trip * 1e6:.2f} µs; {args.kilobytes} KB each way "
              f"{exchange * 1e6:.2f} µs", flush=True)
        time.sleep(args.pause)


if __name__ == "__main__":
    main()
