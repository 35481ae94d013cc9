"""The shared noise table: one seeded block of Gaussian noise, indexed by offsets.

Every process that takes part in a run (the driver and each Dask worker) draws the same table
from the same seed, once, so a population member travels as one integer (its offset into the
table) and its result as one float. This is the design of Salimans et al. (2017).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from nkernels.validation import check_float_dtype, check_int

#: tables kept alive in this process, by (seed, size, dtype); a worker serving several runs keeps
#: the last few instead of drawing each again
_CACHE: "OrderedDict[tuple[int, int, str], np.ndarray]" = OrderedDict()
_CACHE_SIZE = 2


class NoiseTable:
    """``size`` standard normal numbers of ``dtype`` drawn from ``seed`` (NumPy's PCG64).

    Pickling keeps only ``(seed, size, dtype)``: an unpickled table draws its numbers again, at
    most once per process, so sending a NoiseTable to a worker costs a few bytes.
    """

    def __init__(self, seed: int, size: int, dtype: Any = np.float32):
        self.seed = check_int(seed, "the noise table's seed", minimum=0)
        self.size = check_int(size, "the noise table's size")
        self.dtype = check_float_dtype(dtype, "the noise table's dtype")

    def __getstate__(self) -> dict:
        return {"seed": self.seed, "size": self.size, "dtype": self.dtype.str}

    def __setstate__(self, state: dict) -> None:
        self.seed, self.size, self.dtype = state["seed"], state["size"], np.dtype(state["dtype"])

    def __repr__(self) -> str:
        return f"NoiseTable(seed={self.seed}, size={self.size}, dtype={self.dtype.name})"

    @property
    def table(self) -> np.ndarray:
        """The numbers (drawn on first use in this process, then shared; do not write to them)."""
        key = (self.seed, self.size, self.dtype.str)
        table = _CACHE.get(key)
        if table is None:
            table = np.random.default_rng(self.seed).standard_normal(self.size, dtype=self.dtype)
            table.flags.writeable = False
            _CACHE[key] = table
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        else:
            _CACHE.move_to_end(key)
        return table

    def get(self, offset: int, dim: int) -> np.ndarray:
        """The noise vector of the member at ``offset``: ``table[offset:offset + dim]`` (a view)."""
        self.check_dim(dim)
        if not 0 <= offset <= self.size - dim:
            raise ValueError(f"offset {offset} is outside [0, {self.size - dim}] for vectors of {dim} numbers")
        return self.table[offset:offset + dim]

    def check_dim(self, dim: int) -> None:
        """Raise a ValueError unless vectors of ``dim`` numbers fit in the table."""
        if dim > self.size:
            raise ValueError(f"the noise table has {self.size} numbers, fewer than the {dim} parameters of the "
                             f"model; pass a larger noise_size")

    def sample_offsets(self, rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
        """``count`` offsets drawn uniformly from [0, size - dim] (int64), one per antithetic pair."""
        self.check_dim(dim)
        return rng.integers(0, self.size - dim + 1, size=count, dtype=np.int64)
