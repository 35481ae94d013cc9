"""Fresh Python processes for the tests that need one (a cold start, another environment)."""
import json
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_child(script: str, **env: str | None) -> subprocess.CompletedProcess:
    """``script`` in a fresh Python that imports this checkout's nkernels, with ``env`` set in (None: removed
    from) the environment."""
    path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    child_env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          env={**child_env, "PYTHONPATH": path})


def last_json_line(run: subprocess.CompletedProcess) -> dict:
    """The child's last line of output, parsed as JSON, after checking that it exited cleanly."""
    assert run.returncode == 0, f"the child process ended with {run.returncode}: {run.stderr[-3000:]}"
    return json.loads(run.stdout.strip().splitlines()[-1])
