"""The calling thread's Numba thread count from compiled code (nkernels.kernels.cpu.threads), by which the
dense and recurrent kernels decide to share their work."""
import json
import os
import subprocess
import sys
import textwrap
import threading

import numba
import pytest

from nkernels.kernels.cpu.threads import thread_count

CHILD = textwrap.dedent("""
    import json, numba
    from numba import njit
    from nkernels.kernels.cpu.threads import thread_count

    @njit(cache=True)
    def twice_the_threads():
        return 2 * thread_count()

    first = twice_the_threads()
    numba.set_num_threads(1)
    print(json.dumps({"count": first, "one": twice_the_threads(), "threads": numba.config.NUMBA_NUM_THREADS,
                      "hits": sum(twice_the_threads.stats.cache_hits.values())}))
""")


def test_thread_count_is_the_calling_threads_setting():
    threads = numba.get_num_threads()
    assert thread_count() == threads
    seen = []

    def on_a_thread_of_one():
        numba.set_num_threads(1)
        seen.append(thread_count())

    worker = threading.Thread(target=on_a_thread_of_one)
    worker.start()
    worker.join()
    assert seen == [1] and thread_count() == threads  # per thread: this one keeps its count


@pytest.mark.needs_jit("the on-disk cache holds compiled code only")
def test_a_function_calling_it_is_cached_and_loads_in_a_new_process(tmp_path):
    """Cacheable (numba.get_num_threads() in jitted code is not): the second process loads the function
    from the on-disk cache, and it still reads each process's setting."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    runs = [json.loads(subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                                      check=True).stdout.strip().splitlines()[-1]) for _ in range(2)]
    assert runs[0]["hits"] == 0 and runs[1]["hits"] == 1
    for run in runs:
        assert run["count"] == 2 * run["threads"] and run["one"] == 2


@pytest.mark.parametrize("n_size, per_sample, budget, count", [
    (0, 10, 100, 0),  # no samples, no chunks
    (32, 8192, 131072, 2),  # 16 a chunk
    (9, 8192, 131072, 2),  # one chunk would do: two, for two threads
    (1, 8192, 131072, 1),  # one sample cannot be split
    (3, 500, 100, 3),  # one sample above the budget: one a chunk, odd as it must be
    (50, 100, 1000, 6),  # 10 a chunk makes 5: rounded up to 6 (of 8 or 9)
])
def test_even_chunk_count(n_size, per_sample, budget, count):
    from nkernels.kernels.cpu.threads import even_chunk_count

    assert even_chunk_count(n_size, per_sample, budget) == count
