"""nkernels.runtime.distributed: option checks, sharding, and a loopback LocalCluster session."""
import sys

import numpy as np
import pytest

from nkernels.runtime import distributed
from nkernels.errors import DistributedUnavailableError


def _shard_sum(bounds, values):
    start, stop = bounds
    return float(values[start:stop].sum())


@pytest.mark.parametrize("n, parts", [(0, 1), (10, 3), (7, 7), (3, 5)])
def test_shard_bounds_cover_the_range_in_order_with_sizes_differing_by_at_most_one(n, parts):
    bounds = distributed.shard_bounds(n, parts)
    assert len(bounds) == parts and bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("workers, scheduler, error, message", [
    (0, None, ValueError, "workers must be at least 1, got 0"),
    (True, None, TypeError, r"workers must be an integer or None, got True \(bool\)"),
    (None, 8786, TypeError, "scheduler must be an address string"),
    (None, "127.0.0.1:8786", ValueError, "with a protocol"),
    (2, "tcp://127.0.0.1:8786", ValueError, "not both"),
])
def test_bad_options_are_clear_errors(workers, scheduler, error, message):
    with pytest.raises(error, match=message):
        distributed.check_options(workers, scheduler)


def test_without_dask_asking_for_workers_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # makes the import fail
    assert not distributed.available()
    with pytest.raises(DistributedUnavailableError, match=r'pip install "nkernels\[distributed\]"'):
        distributed.check_options(workers=2)
    assert distributed.check_options() == (None, None)  # no scale-out asked: no Dask needed


def test_in_process_session_maps_in_order():
    with distributed.connect() as session:
        assert session.client is None and session.n_workers == 1
        assert session.map(lambda b, k: b * k, [1, 2, 3], 10) == [10, 20, 30]


def test_a_two_worker_local_cluster_gives_the_in_process_results():
    values = np.arange(1000, dtype=np.float64)
    bounds = distributed.shard_bounds(len(values), 4)
    with distributed.connect() as session:
        expected = session.map(_shard_sum, bounds, values)
    with distributed.connect(workers=2) as session:
        assert session.n_workers == 2
        assert session.map(_shard_sum, bounds, values) == expected
        shared = session.scatter(values)
        assert session.submit_each(_shard_sum, bounds, shared) == expected
