"""Issue 24's step table: nkernels in two checkouts (before, after) against PyTorch and JAX.

    python benchmarks/scripts/before_after_table.py --before PATH [--after PATH] [--rounds 3] CASE ...

Every side times one case of ``nkernels bench`` (:data:`nkernels.cli.bench.CASES`) in a fresh process
of its own (``nkernels.cli.bench._child``), with that checkout and its plugins first on PYTHONPATH (the
peers run from the "after" checkout); rounds alternate the order of the sides. Prints each round and a
final row per case (medians over rounds; "peer/nk" is the faster peer's time over nkernels'), and writes
the JSON to ``--json``.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = "import sys; from nkernels.cli.bench import _child; _child(sys.argv[1:])"


def tree_path(root: str) -> str:
    """PYTHONPATH putting the checkout ``root`` and each of its plugin folders first."""
    plugins = os.path.join(root, "plugins")
    return os.pathsep.join([root] + [os.path.join(plugins, d) for d in sorted(os.listdir(plugins))
                                     if os.path.isdir(os.path.join(plugins, d))])


def microseconds(framework: str, case: str, root: str) -> float | None:
    steps, repeat = ("5", "5") if case == "lenet" else ("20", "9")
    done = subprocess.run([sys.executable, "-c", CHILD, framework, case, steps, repeat], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=tree_path(root)), cwd=os.path.dirname(root))
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])["seconds"] * 1e6
    except (IndexError, KeyError, json.JSONDecodeError):
        print(f"{framework} on {case} failed: {done.stderr[-500:]}", file=sys.stderr)
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="+")
    parser.add_argument("--before", required=True, help="the checkout timed as 'before' (e.g. a git worktree)")
    parser.add_argument("--after", default=os.getcwd())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default="before_after_table.json")
    args = parser.parse_args()
    sides = [("before", "nkernels", os.path.abspath(args.before)), ("after", "nkernels", os.path.abspath(args.after)),
             ("torch", "torch", os.path.abspath(args.after)), ("jax", "jax", os.path.abspath(args.after))]
    times: dict = {case: {side[0]: [] for side in sides} for case in args.cases}
    for r in range(args.rounds):
        for case in args.cases:
            for label, framework, root in (sides if r % 2 == 0 else sides[::-1]):
                us = microseconds(framework, case, root)
                if us is not None:
                    times[case][label].append(us)
            print(r, case, {k: round(v[-1]) if v else None for k, v in times[case].items()}, flush=True)
    table = {}
    for case in args.cases:
        med = {k: statistics.median(v) if v else None for k, v in times[case].items()}
        peer = min(t for t in (med["torch"], med["jax"]) if t)
        table[case] = {**{f"{k}_us": round(v) if v else None for k, v in med.items()},
                       "peer/nk before": round(peer / med["before"], 2), "peer/nk after": round(peer / med["after"], 2)}
        print(case, table[case], flush=True)
    with open(args.json, "w") as f:
        json.dump({"times": times, "table": table}, f, indent=1)


if __name__ == "__main__":
    main()
