#!/bin/bash
# Every GPU figure of issue 25 (benchmarks/gpu/figures.py), about 5 minutes on the lent GPU; JSON in $OUT.
#   on the device:  bash benchmarks/gpu/figures.sh           (needs .whl/ from ../shared/gpu/prepare-wheels.sh)
#   here (CPU):     bash benchmarks/gpu/figures.sh --dry     (the CUDA simulator, tiny shapes: a crash test)
if [ "$1" != "--dry" ]; then
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit
fi
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:$PWD/plugins/nkernels-es:$PWD/plugins/nkernels-kmeans${PYTHONPATH:+:$PYTHONPATH}
# nkernels' own kernels are measured: the vendor GEMM plugin (it registers where CuPy is installed, and the
# suite's step installs it) stays out; the vendor's GEMM is measured apart, as the baseline
export NKERNELS_DISABLE_PLUGINS=vendor-gemm
OUT=${OUT:-/tmp/nkernels-gpu-figures}; mkdir -p "$OUT"
PY=${PYTHON:-python3}
[ "$1" = "--dry" ] && [ -x /work/main/.venv/bin/python ] && PY=${PYTHON:-/work/main/.venv/bin/python}
# the budget: no section starts after 240 s (--budget), so the JSON and the table are out before ~270 s;
# FIGURES_LIMIT (seconds, default 290) ends a run that overstays it
limit=${FIGURES_LIMIT:-290}; [ "$1" = "--dry" ] && limit=1800  # the simulator on a busy machine is slow; the budget is for the GPU
timeout $limit "$PY" benchmarks/gpu/figures.py --out "$OUT" "$@" 2>&1 | tee "$OUT/figures.log"
exit "${PIPESTATUS[0]}"
