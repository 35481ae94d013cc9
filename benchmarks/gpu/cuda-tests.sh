#!/bin/bash
# The CUDA test suite (pytest -m cuda) on the lent GPU, not the simulator; about 5 minutes; log and JUnit XML in $OUT.
#   on the device:  bash benchmarks/gpu/cuda-tests.sh        (needs .whl/ from ../shared/gpu/prepare-wheels.sh)
#   here (CPU):     bash benchmarks/gpu/cuda-tests.sh --dry  (the same selection under the simulator, collection only)
# tests/conftest.py and plugins/conftest.py only setdefault NUMBA_ENABLE_CUDASIM=1, so =0 here runs the real GPU;
# NKERNELS_REAL_GPU=1 turns on the full-size checks of tests/cuda (the digits training test).
if [ "$1" != "--dry" ]; then
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit
fi
# the plugins' entry points (nk.train(scheme="es") finds es through them): nkernels and its first-party plugins
# installed into /tmp/site, offline, by the image's setuptools; the checkout stays first on the path
if [ "$1" != "--dry" ]; then
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target /tmp/site . ./plugins/*/ \
  || echo "WARNING: installing the plugins failed: tests that need their entry points will fail"
fi
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:$(ls -d $PWD/plugins/*/ | tr '\n' ':')${PYTHONPATH:+$PYTHONPATH}
OUT=${OUT:-/tmp/nkernels-cuda-tests}; mkdir -p "$OUT"
PY=${PYTHON:-python3}
if [ "$1" = "--dry" ]; then
  [ -x /work/main/.venv/bin/python ] && PY=${PYTHON:-/work/main/.venv/bin/python}
  export NUMBA_ENABLE_CUDASIM=1
  exec "$PY" -m pytest -m "cuda and not slow" -p no:cacheprovider -q --collect-only
fi
export NUMBA_ENABLE_CUDASIM=0 NKERNELS_REAL_GPU=1
# the layers' tests test nkernels' own GEMM: the vendor GEMM plugin (which registers where CuPy is installed, as
# on the lent machines) stays out, and its own tests register it themselves
export NKERNELS_DISABLE_PLUGINS=vendor-gemm
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
# 270 s of tests at most (TESTS_LIMIT): pytest-timeout stops a hung test; `timeout` ends the run with its log so far.
# Compiling kernels is most of a test's time and uses one CPU core, so the tests are spread over 12 processes
# (pytest-xdist's worksteal: by file, test_gemm.py's 34 tests in one process were still running when the
# 200 s budget ended on the H200, 2026-12-04).
# report_failures writes each failure's traceback to $OUT/cuda-failures.txt at once (the summary comes last).
PYTHONPATH=$PWD/benchmarks/gpu:$PYTHONPATH timeout ${TESTS_LIMIT:-270} "$PY" -m pytest -p no:cacheprovider \
  -p report_failures -v -n 12 --dist worksteal --maxfail=40 -o addopts="--strict-markers -ra --import-mode=importlib" -m "cuda and not slow" \
  --timeout=120 --junitxml="$OUT/cuda-tests.xml" -rfE 2>&1 | tee "$OUT/cuda-tests.log"
rc=${PIPESTATUS[0]}
echo "exit status: $rc (124: the ${TESTS_LIMIT:-270} s budget ran out)" | tee -a "$OUT/cuda-tests.log"
exit $rc
