"""Print the commands of README.md's Quick start block: all of them, or the one at an index.

`.ci/run` runs the test command from here, so CI runs exactly what the README tells a newcomer.
"""
import re
import sys
from pathlib import Path


def quick_start_commands(readme: str) -> list[str]:
    """The non-empty lines of the first shell block under '## Quick start'."""
    section = readme.split("\n## Quick start", 1)[1]
    block = re.search(r"```(?:bash|sh|shell|console)?\n(.*?)```", section, re.S)
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


if __name__ == "__main__":
    commands = quick_start_commands((Path(__file__).resolve().parent.parent / "README.md").read_text())
    print("\n".join(commands) if len(sys.argv) < 2 else commands[int(sys.argv[1])])
