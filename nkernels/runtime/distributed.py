"""Dask scale-out shared by the schemes whose work splits across processes (ADMM, evolution strategies).

A scheme takes ``workers=N`` (start a :class:`dask.distributed.LocalCluster` of N single-threaded
worker processes on loopback) or ``scheduler="tcp://HOST:PORT"`` (join a running cluster), and
opens a session with :func:`connect`::

    from nkernels import distributed

    workers, scheduler = distributed.check_options(workers, scheduler)
    with distributed.connect(workers, scheduler) as session:
        parts = session.map(local_gram, shards)       # runs in-process when session.client is None
        total = sum(parts)

With neither option the session runs everything in the calling process, so a scheme has one code
path. Dask is the ``distributed`` extra; without it, asking for workers raises a
:class:`DistributedUnavailableError` that names the install command.
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Callable, Iterator, Sequence

from ..errors import DistributedUnavailableError
from ..validation import check_int

INSTALL_HINT = 'pip install "nkernels[distributed]"'


def available() -> bool:
    """Whether ``dask.distributed`` can be imported."""
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        return False
    return True


def require() -> Any:
    """The ``dask.distributed`` module, or a DistributedUnavailableError naming the install command."""
    try:
        import dask.distributed
    except ImportError as exc:
        raise DistributedUnavailableError(
            f"workers/scheduler need Dask distributed, which is not installed ({exc}). "
            f"Install it with: {INSTALL_HINT}") from None
    return dask.distributed


def check_options(workers: Any = None, scheduler: Any = None) -> tuple[int | None, str | None]:
    """Validate a scheme's ``workers`` and ``scheduler`` options; returns them normalized.

    ``workers`` is None or a positive int; ``scheduler`` is None or an address string such as
    ``"tcp://10.0.0.5:8786"``. Giving both is an error: a LocalCluster or an existing cluster.
    """
    workers = check_int(workers, "workers", allow_none=True)
    if scheduler is not None:
        if not isinstance(scheduler, str) or not scheduler.strip():
            raise TypeError(f"scheduler must be an address string such as 'tcp://HOST:8786', got {scheduler!r}")
        if "://" not in scheduler:
            raise ValueError(f"scheduler must be an address with a protocol, such as 'tcp://HOST:8786', "
                             f"got {scheduler!r}")
    if workers is not None and scheduler is not None:
        raise ValueError("give workers=N (start a local cluster) or scheduler=ADDRESS (join one), not both")
    if workers is not None or scheduler is not None:
        require()
    return workers, scheduler


def shard_bounds(n: int, parts: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into ``parts`` contiguous (start, stop) pieces whose sizes differ by at most one."""
    if n < 0 or parts < 1:
        raise ValueError(f"need n >= 0 and parts >= 1, got n={n}, parts={parts}")
    base, extra = divmod(n, parts)
    bounds, start = [], 0
    for i in range(parts):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


class Session:
    """Runs functions over a list of inputs: on a Dask cluster, or in this process when ``client`` is None.

    ``n_workers`` is how many pieces work is best split into (1 in-process). Results come back
    in input order, so a reduction over them is deterministic whatever the number of workers.
    """

    def __init__(self, client: Any = None):
        self.client = client

    @property
    def n_workers(self) -> int:
        """The number of workers work is split across (1 when running in-process)."""
        if self.client is None:
            return 1
        return max(1, len(self.client.scheduler_info(n_workers=-1)["workers"]))

    def scatter(self, data: Any, broadcast: bool = True) -> Any:
        """Ship ``data`` to the workers once (a future), or return it unchanged in-process."""
        if self.client is None:
            return data
        return self.client.scatter(data, broadcast=broadcast)

    def map(self, function: Callable[..., Any], items: Sequence[Any], *args: Any, **kwargs: Any) -> list[Any]:
        """``[function(item, *args, **kwargs) for item in items]``, on the workers when there are any."""
        if self.client is None:
            return [function(item, *args, **kwargs) for item in items]
        futures = self.client.map(function, list(items), *[[a] * len(items) for a in args], pure=False,
                                  **kwargs)
        return self.client.gather(futures)

    def submit_each(self, function: Callable[..., Any], items: Sequence[Any], *args: Any) -> list[Any]:
        """Like :meth:`map`, with the shared ``args`` (e.g. scattered futures) passed to every call."""
        if self.client is None:
            return [function(item, *args) for item in items]
        futures = [self.client.submit(function, item, *args, pure=False) for item in items]
        return self.client.gather(futures)


@contextlib.contextmanager
def connect(workers: int | None = None, scheduler: str | None = None, *,
            threads_per_worker: int = 1) -> Iterator[Session]:
    """A :class:`Session` for the run: a LocalCluster of ``workers`` processes on loopback, a client
    of the cluster at ``scheduler``, or (neither given) in-process. The cluster and client are
    closed when the block ends."""
    workers, scheduler = check_options(workers, scheduler)
    if workers is None and scheduler is None:
        yield Session(None)
        return
    dd = require()
    if scheduler is not None:
        with dd.Client(scheduler, timeout="30s") as client:
            yield Session(client)
        return
    # Worker processes inherit this environment: one BLAS/Numba thread each, so N workers use N cores.
    env = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": str(threads_per_worker)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        cluster = dd.LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                                  host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        with dd.Client(cluster) as client:
            yield Session(client)
    finally:
        cluster.close()
