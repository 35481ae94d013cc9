"""Line coverage of the kernels: the kernel tests run with the JIT off and the CUDA simulator on.

    python scripts/kernel_coverage.py                  # all of tests/kernels (1-2 minutes on 2 cores)
    python scripts/kernel_coverage.py --missing        # and the lines no test ran, per module
    python scripts/kernel_coverage.py --markdown       # the table as Markdown, for benchmarks/RESULTS.md
    python scripts/kernel_coverage.py --html htmlcov   # and an annotated HTML copy of every kernel module
    python scripts/kernel_coverage.py -- -k dense      # arguments after -- go to pytest

Compiled code is invisible to coverage, so the tests of ``tests/kernels`` run under ``coverage run`` with
``NUMBA_DISABLE_JIT=1`` (every ``@njit`` kernel runs as plain Python, ``prange`` as ``range``) and
``NUMBA_ENABLE_CUDASIM=1`` (every ``@cuda.jit`` kernel runs in the simulator, one Python thread per CUDA
thread). The kernel tests use tiny shapes; the few that check compiled-only behaviour or need large sizes
carry ``@pytest.mark.needs_jit(reason)`` and are skipped with that reason (listed at the end of pytest's
output). Not part of the default suite: it needs the ``coverage`` package (the ``test`` extra).

The report covers ``nkernels/kernels/cpu`` and ``nkernels/kernels/cuda``, per module and in total. What it
cannot see: code that exists only compiled (the Numba ``@overload``/``@intrinsic`` exp, sigmoid and tanh
of ``cpu/vecmath.py``, tested compiled by ``test_exp_sigmoid_tanh_are_accurate_to_a_few_ulp``), the
CUDA launch paths taken on a real GPU only (grid sizes, production GEMM tiles), and the Python source the
CUDA generators write into the nkernels cache directory (the elementwise kernels and the GEMMs), which
runs from there. The exit status is pytest's.

Last run (2026-12-03): ``nkernels/kernels/cpu`` 92.7% of 2190 statements (every kernel module 99-100%;
what is missed exists compiled only: the exp, sigmoid and tanh overloads of ``vecmath.py``, 13.8%, and the
BLAS and thread-count intrinsics of ``blas.py`` and ``threads.py``), ``nkernels/kernels/cuda`` 97.9% of
2470 (``launch.py`` 91.2%: the real-GPU sizing), all kernels 95.5% of 4660.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("nkernels/kernels/cpu", "nkernels/kernels/cuda")
TESTS = "tests/kernels"


def run_tests(data_file: Path, pytest_args: list[str]) -> int:
    """Run the kernel tests under ``coverage run`` (JIT off, simulator on); returns pytest's exit status."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", NUMBA_ENABLE_CUDASIM="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.pop("NKERNELS_REAL_GPU", None)  # the real-GPU shapes are far too large for plain Python
    command = [sys.executable, "-m", "coverage", "run", f"--data-file={data_file}",
               "--source=" + ",".join(str(ROOT / p) for p in PACKAGES),
               "-m", "pytest", TESTS, "-q", "-p", "no:cacheprovider", "-rs", *pytest_args]
    return subprocess.run(command, cwd=ROOT, env=env).returncode


def module_rows(cov) -> list[tuple[str, int, int, str]]:
    """``(module path, statements, missed statements, missed line ranges)`` of every module of :data:`PACKAGES`."""
    rows = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).glob("*.py")):
            _, statements, _, missing, ranges = cov.analysis2(str(path))
            rows.append((f"{package}/{path.name}", len(statements), len(missing), ranges))
    return rows


def percent(statements: int, missed: int) -> str:
    return f"{100.0 * (statements - missed) / statements:.1f}%" if statements else "-"


def table(rows: list[tuple[str, int, int, str]], markdown: bool) -> str:
    """The rows, a total per package and the grand total, as aligned text or as a Markdown table."""
    lines = []
    for package in PACKAGES:
        mine = [r for r in rows if r[0].startswith(package + "/")]
        lines += [(name, s, m) for name, s, m, _ in mine]
        lines.append((f"{package} (total)", sum(r[1] for r in mine), sum(r[2] for r in mine)))
    lines.append(("all kernels (total)", sum(r[1] for r in rows), sum(r[2] for r in rows)))
    if markdown:
        out = ["| module | statements | missed | covered |", "|---|---:|---:|---:|"]
        out += [f"| {'**' + n + '**' if 'total' in n else '`' + n + '`'} | {s} | {m} | {percent(s, m)} |"
                for n, s, m in lines]
        return "\n".join(out)
    width = max(len(n) for n, _, _ in lines)
    out = [f"{'module':<{width}}  statements  missed  covered"]
    out += [f"{n:<{width}}  {s:>10}  {m:>6}  {percent(s, m):>7}" for n, s, m in lines]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--missing", action="store_true", help="also list the lines no test ran, per module")
    parser.add_argument("--html", metavar="DIR", help="also write an annotated HTML report into DIR")
    parser.add_argument("pytest_args", nargs="*", help="arguments for pytest (after --)")
    args = parser.parse_args(argv)
    try:
        import coverage
    except ImportError:
        parser.error("the coverage package is missing: pip install -e '.[test]' (or pip install coverage)")

    with tempfile.TemporaryDirectory() as tmp:
        data_file = Path(tmp) / ".coverage"
        status = run_tests(data_file, args.pytest_args)
        if not data_file.exists():
            print("coverage wrote no data: the tests did not run", file=sys.stderr)
            return status or 1
        cov = coverage.Coverage(data_file=str(data_file))
        cov.load()
        print("\nLine coverage of the kernels (NUMBA_DISABLE_JIT=1 NUMBA_ENABLE_CUDASIM=1):\n")
        rows = module_rows(cov)
        print(table(rows, args.markdown))
        if args.missing:
            print("\nLines no test ran:")
            print("\n".join(f"{name}: {ranges}" for name, _, _, ranges in rows if ranges))
        if args.html:
            cov.html_report(directory=args.html, include=[str(ROOT / p / "*.py") for p in PACKAGES])
            print(f"\nHTML report: {args.html}/index.html")
    return status


if __name__ == "__main__":
    sys.exit(main())
