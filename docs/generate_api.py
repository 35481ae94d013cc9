"""Write docs/api.md, the API reference, from the docstrings of nkernels' public names.

    python docs/generate_api.py          # rewrite docs/api.md
    python docs/generate_api.py --check  # exit 1 if docs/api.md is out of date (tests/test_typing.py runs this)
"""
from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

#: module -> the public names documented (the module's __all__ where it has one)
MODULES = ["nkernels", "nkernels.layers", "nkernels.losses", "nkernels.optimizers", "nkernels.schemes",
           "nkernels.callbacks", "nkernels.schedules", "nkernels.registry", "nkernels.runtime.devices",
           "nkernels.runtime.distributed", "nkernels.testing", "nkernels.sklearn", "nkernels.export.onnx_export",
           "nkernels.validation", "nkernels.errors", "nkernels.kernels.calls", "nkernels.kernels.cpu.blas",
           "nkernels.kernels.cuda.elementwise",
           "nkernels.passes", "nkernels.trainers", "nkernels.leaderboard", "nkernels.datasets"]
OUT = Path(__file__).with_name("api.md")


def _names(module) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if not n.startswith("_")
                 and getattr(v, "__module__", None) == module.__name__ and (inspect.isclass(v) or inspect.isfunction(v))]
    return sorted(names)


def _signature(obj) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""


def _doc(obj) -> str:
    return inspect.getdoc(obj) or "(no docstring)"  # getdoc falls back to the overridden method's


def render() -> str:
    lines = ["# nkernels API reference", "",
             "Generated from the docstrings by `python docs/generate_api.py`; a test keeps it in sync.", ""]
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        lines += [f"## `{module_name}`", "", _doc(module).split("\n\n")[0], ""]
        for name in _names(module):
            obj = getattr(module, name)
            if inspect.ismodule(obj) or not (inspect.isclass(obj) or callable(obj)):
                continue
            kind = "class" if inspect.isclass(obj) else "function"
            lines += [f"### `{module_name}.{name}{_signature(obj)}` ({kind})", "", _doc(obj), ""]
            if inspect.isclass(obj):
                for attr, member in sorted(vars(obj).items()):
                    if attr.startswith("_") or not (inspect.isfunction(member) or isinstance(member, property)):
                        continue
                    target = member.fget if isinstance(member, property) else getattr(obj, attr)
                    sig = "" if isinstance(member, property) else _signature(member)
                    lines += [f"- `{attr}{sig}`: {_doc(target).splitlines()[0]}"]
                lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run python docs/generate_api.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
