"""One generator for the CUDA elementwise kernels: an expression in, a grid-stride kernel and its launcher out.

:func:`elementwise` takes the signature of a CPU kernel and the assignments that compute one
element, in a small language of Python expressions (its docstring has the language and an
example), and returns the CUDA twin: a launcher of the same name and signature that checks its
device arrays and launches a ``@cuda.jit(cache=True)`` kernel. The built-in activations, dropout
and reshape kernels are made this way, and so can a plugin's.

**The kernel.** One grid-stride pass: each thread handles four elements ``i, i+s, i+2s, i+3s`` per
iteration (``s`` the grid's thread count), every load of the four issued before any store, so four
independent loads per thread are in flight and a warp's accesses stay coalesced; the grid is one
wave of the blocks the compiled kernel keeps resident (:func:`~nkernels.kernels.cuda.launch.launch`). The arithmetic runs
in the arrays' dtype (``exp`` of a float32 is ``expf``).

**The source** is rendered from the checked syntax tree: names (each suffixed, so that no name of
the caller's can shadow one of the module's) and typed numbers; nothing of the caller's is pasted
in as text. It is written into the nkernels cache directory under its content hash and imported
from there on the first call, like the GEMMs (:mod:`.gemm`), so Numba's on-disk cache holds across
runs. Defining a kernel generates, writes and compiles nothing and imports neither numba nor
numba.cuda; :attr:`ElementwiseKernel.source` shows the source.
"""
from __future__ import annotations

import ast
import inspect
import math
import textwrap
from typing import Any, NamedTuple

from ...runtime.cache import load_generated_module

#: the type of the arrays' elements (float32 or float64, fixed per call by the arrays)
T = "T"
F64, I64, U64, BOOL = "float64", "int64", "uint64", "bool"
#: a number written in the expression: it takes the type of what it meets
WEAK = "weak"
#: annotation -> type of a number parameter
SCALAR_TYPES = {"scalar": T, "float64": F64, "int64": I64, "uint64": U64}
INTEGERS = (I64, U64)


class Function(NamedTuple):
    """A function the expressions may call: how many arguments, and what it renders to."""

    arity: int
    kind: str  # "math" (math.<name>), "builtin" (min, max, abs), "cast" (np.<name>), "device"
    target: str = ""  # for "device": the module and the name of the @cuda.jit(device=True) function
    args: tuple = ()  # for "device": the argument types
    result: str = ""  # for "cast" and "device": the result type


_MATH = ("exp", "expm1", "log", "log1p", "log2", "log10", "sqrt", "tanh", "sinh", "cosh", "sin", "cos", "tan",
         "asin", "acos", "atan", "erf", "erfc", "fabs")

#: the functions the expressions may call
FUNCTIONS: dict[str, Function] = {
    **{name: Function(1, "math") for name in _MATH},
    "atan2": Function(2, "math"), "copysign": Function(2, "math"),
    "min": Function(-2, "builtin"), "max": Function(-2, "builtin"), "abs": Function(1, "builtin"),
    "float64": Function(1, "cast", result=F64), "int64": Function(1, "cast", result=I64),
    "uint64": Function(1, "cast", result=U64),
    # the counter-based generator of nkernels.kernels.cpu.random: hash_uniform(seed, counter) in [0, 1)
    "hash_uniform": Function(2, "device", "nkernels.kernels.cuda.random:hash_uniform_device", (I64, U64), F64),
}

_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
           ast.Pow: "**"}
_UNARY = {ast.USub: "-", ast.UAdd: "+"}
_COMPARE = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_BOOL = {ast.And: "and", ast.Or: "or"}
#: lanes: elements per thread per grid-stride iteration (launch.UNROLL)
LANES = 4


class ExpressionError(ValueError):
    """A signature or a body that the elementwise generator does not accept; the message says why."""


class Param(NamedTuple):
    """A launcher parameter: ``kind`` is ``"array"`` or the type of a number (:data:`SCALAR_TYPES`)."""

    name: str
    kind: str


def _promote(a: str, b: str) -> str:
    """The type of an operation on ``a`` and ``b`` (NumPy's promotion, as Numba follows it)."""
    if a == b or b in (WEAK, BOOL):
        return a
    if a in (WEAK, BOOL):
        return b
    return F64  # two different types: float64 (int64 + float32, int64 + uint64 ... are float64)


def parse_signature(signature: str) -> tuple[str, tuple[Param, ...]]:
    """``"name(a, b: scalar)"`` as the kernel's name and its parameters."""
    try:
        tree = ast.parse(f"def {signature}: pass")
    except SyntaxError as exc:
        raise ExpressionError(f"the signature {signature!r} is not of the form name(a, b: scalar, ...): "
                              f"{exc.msg}") from None
    fn = tree.body[0]
    if len(tree.body) != 1 or not isinstance(fn, ast.FunctionDef) or len(fn.body) != 1 \
            or not isinstance(fn.body[0], ast.Pass):
        raise ExpressionError(f"the signature {signature!r} is not of the form name(a, b: scalar, ...)")
    args = fn.args
    if fn.decorator_list or fn.returns or args.posonlyargs or args.vararg or args.kwonlyargs or args.kwarg \
            or args.defaults:
        raise ExpressionError(f"the signature {signature!r} may hold only plain parameters, each an array or "
                              f"annotated with one of {', '.join(SCALAR_TYPES)}")
    params = []
    for arg in args.args:
        kind = "array"
        if arg.annotation is not None:
            note = arg.annotation
            if not isinstance(note, ast.Name) or note.id not in SCALAR_TYPES:
                raise ExpressionError(f"parameter {arg.arg!r}: the annotation {ast.unparse(note)!r} is not one of "
                                      f"{', '.join(SCALAR_TYPES)} (an array has none)")
            kind = SCALAR_TYPES[note.id]
        params.append(Param(_check_name(arg.arg, "a parameter"), kind))
    names = [p.name for p in params]
    for name in names:
        if names.count(name) > 1:
            raise ExpressionError(f"parameter {name!r} appears twice in {signature!r}")
    return _check_name(fn.name, "the kernel"), tuple(params)


def _check_name(name: str, what: str) -> str:
    if not name.isascii() or name.startswith("_"):
        raise ExpressionError(f"{what} {name!r}: names must be ASCII and must not start with an underscore")
    if name == "i" or name in FUNCTIONS:
        raise ExpressionError(f"{what} {name!r}: that name is the element index or a function of the "
                              f"expressions; choose another")
    return name


class _Body:
    """The checked body: statements with every expression's type, and what the kernel loads and stores."""

    def __init__(self, name: str, params: tuple[Param, ...], body: str):
        self.name = name
        self.params = {p.name: p.kind for p in params}
        self.types: dict[int, str] = {}     # id(node) -> type
        self.meaning: dict[int, str] = {}   # id(Name node) -> "local" (a variable), "scalar" or "index"
        self.locals: dict[str, str] = {}    # assigned name -> type
        self.loads: list[str] = []          # arrays read at i before they are assigned
        self.gathers: list[str] = []        # arrays read at an index
        self.statements: list[tuple[str, ast.expr, str]] = []  # (target, value, the statement as written)
        try:
            tree = ast.parse(textwrap.dedent(body).strip())
        except SyntaxError as exc:
            raise ExpressionError(f"{name}: the body does not parse: {exc.msg} (line {exc.lineno})") from None
        for stmt in tree.body:
            self._statement(stmt)
        self.outputs = [p.name for p in params if p.kind == "array" and p.name in self.locals]
        if not self.outputs:
            raise ExpressionError(f"{name}: the body assigns no array parameter, so the kernel has no output")
        for array in self.gathers:
            if array in self.outputs:
                raise ExpressionError(f"{name}: {array!r} is assigned, so it cannot be read at another index "
                                      f"(another thread may have written it)")

    # -- statements -------------------------------------------------------------------------------
    def _statement(self, stmt: ast.stmt) -> None:
        text = ast.unparse(stmt)
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            target, value = stmt.targets[0].id, stmt.value
        elif isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name) and type(stmt.op) in _BINARY:
            target = stmt.target.id
            value = ast.BinOp(ast.Name(target, ast.Load()), stmt.op, stmt.value)
        else:
            raise ExpressionError(f"{self.name}: {text!r} is not an assignment 'name = expression'")
        kind = self.params.get(target)
        if kind is not None and kind != "array":
            raise ExpressionError(f"{self.name}: {target!r} is a number parameter; it cannot be assigned")
        _check_name(target, f"{self.name}: the assigned name")
        result = self._type(value)
        self.locals[target] = T if result == WEAK else result
        self.statements.append((target, value, text))

    # -- expressions ------------------------------------------------------------------------------
    def _fail(self, node: ast.AST, why: str):
        raise ExpressionError(f"{self.name}: {ast.unparse(node)!r}: {why}")

    def _type(self, node: ast.expr) -> str:
        kind = self._infer(node)
        self.types[id(node)] = kind
        return kind

    def _infer(self, node: ast.expr) -> str:
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool):
                return BOOL
            if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
                return WEAK
            self._fail(node, "only finite numbers, True and False are literals here")
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.Subscript):
            array = node.value
            if not (isinstance(array, ast.Name) and self.params.get(array.id) == "array"):
                self._fail(node, "only an array parameter can be read at an index")
            if self._type(node.slice) not in INTEGERS + (WEAK,):
                self._fail(node, "the index must be an integer expression")
            if array.id not in self.gathers:
                self.gathers.append(array.id)
            return T
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = self._type(node.left), self._type(node.right)
            result = _promote(left, right)
            if isinstance(node.op, ast.Div) and result in INTEGERS:
                return F64
            return result
        if isinstance(node, ast.UnaryOp) and (type(node.op) in _UNARY or isinstance(node.op, ast.Not)):
            operand = self._type(node.operand)
            if isinstance(node.op, ast.Not):
                self._want_bool(node.operand, operand)
                return BOOL
            return operand
        if isinstance(node, ast.BoolOp) and type(node.op) in _BOOL:
            for value in node.values:
                self._want_bool(value, self._type(value))
            return BOOL
        if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
            for operand in [node.left, *node.comparators]:
                self._type(operand)
            return BOOL
        if isinstance(node, ast.IfExp):
            self._want_bool(node.test, self._type(node.test))
            return _promote(self._type(node.body), self._type(node.orelse))
        if isinstance(node, ast.Call):
            return self._call(node)
        self._fail(node, "not part of the expression language (numbers, names, a[index], arithmetic, "
                         "comparisons, and/or/not, 'a if c else b', and the functions of FUNCTIONS)")

    def _want_bool(self, node: ast.expr, kind: str) -> None:
        if kind != BOOL:
            self._fail(node, "a condition must be a comparison or a combination of comparisons")

    def _name(self, node: ast.Name) -> str:
        name = node.id
        if name in self.locals:
            self.meaning[id(node)] = "local"
            return self.locals[name]
        if name == "i":
            self.meaning[id(node)] = "index"
            return I64
        kind = self.params.get(name)
        if kind == "array":
            self.meaning[id(node)] = "local"
            if name not in self.loads:
                self.loads.append(name)
            return T
        if kind is not None:
            self.meaning[id(node)] = "scalar"
            return kind
        self._fail(node, "unknown name: not a parameter, an assigned name, i, or a function call")

    def _call(self, node: ast.Call) -> str:
        fn = FUNCTIONS.get(node.func.id) if isinstance(node.func, ast.Name) else None
        if fn is None or node.keywords:
            self._fail(node, f"only these functions may be called, with positional arguments: "
                             f"{', '.join(sorted(FUNCTIONS))}")
        if (fn.arity > 0 and len(node.args) != fn.arity) or len(node.args) < -fn.arity:
            self._fail(node, f"{node.func.id} takes {abs(fn.arity)}{'' if fn.arity > 0 else ' or more'} arguments")
        kinds = [self._type(arg) for arg in node.args]
        if fn.kind in ("cast", "device"):
            return fn.result
        result = kinds[0]
        for kind in kinds[1:]:
            result = _promote(result, kind)
        if fn.kind == "builtin":
            return result
        return F64 if result in INTEGERS or result == BOOL else (T if result == WEAK else result)


class _Renderer:
    """Renders a checked body into the module source: the kernel and its launcher."""

    def __init__(self, name: str, params: tuple[Param, ...], body: _Body):
        self.name, self.params, self.body = name, params, body
        self.constants: dict[tuple[str, Any], str] = {}
        self.devices: dict[str, str] = {}  # function name -> alias in the module

    # -- expressions ------------------------------------------------------------------------------
    def constant(self, kind: str, value: Any, node: ast.AST) -> str:
        if kind in INTEGERS:
            if not isinstance(value, int) or not -2**63 <= value < 2**64:
                self.body._fail(node, f"{value!r} meets an integer here; write an integer")
            value = int(value)
        else:
            value = float(value)
        key = (kind, value)
        if key not in self.constants:
            self.constants[key] = f"_k{len(self.constants)}"
        return self.constants[key]

    def expr(self, node: ast.expr, lane: int, context: str) -> str:
        """``node`` for element lane ``lane``; ``context`` is the type a number here takes."""
        kind = self.body.types[id(node)]
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool):
                return repr(node.value)
            return self.constant(T if context in (WEAK, BOOL) else context, node.value, node)
        if isinstance(node, ast.Name):
            meaning = self.body.meaning[id(node)]
            if meaning == "index":
                return "_i0" if lane == 0 else f"_j{lane}"
            if meaning == "scalar":
                return f"{node.id}_"
            return f"{node.id}_{lane}"
        if isinstance(node, ast.Subscript):
            return f"{node.value.id}_[{self.expr(node.slice, lane, I64)}]"  # type: ignore[attr-defined]
        if isinstance(node, ast.BinOp):
            left, right = self.pair(node.left, node.right, lane, context)
            return f"({left} {_BINARY[type(node.op)]} {right})"
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                return f"(not {self.expr(node.operand, lane, BOOL)})"
            return f"({_UNARY[type(node.op)]}{self.expr(node.operand, lane, context)})"
        if isinstance(node, ast.BoolOp):
            return "(" + f" {_BOOL[type(node.op)]} ".join(self.expr(v, lane, BOOL) for v in node.values) + ")"
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            strong = [self.body.types[id(o)] for o in operands if self.body.types[id(o)] != WEAK]
            inner = strong[0] if strong else T
            parts = [self.expr(operands[0], lane, inner)]
            for op, operand in zip(node.ops, node.comparators):
                parts += [_COMPARE[type(op)], self.expr(operand, lane, inner)]
            return "(" + " ".join(parts) + ")"
        if isinstance(node, ast.IfExp):
            body, orelse = self.pair(node.body, node.orelse, lane, context)
            return f"({body} if {self.expr(node.test, lane, BOOL)} else {orelse})"
        return self.call(node, kind, lane, context)  # type: ignore[arg-type]

    def pair(self, a: ast.expr, b: ast.expr, lane: int, context: str) -> tuple[str, str]:
        """Two operands; a number among them takes the other's type (or the context's)."""
        ta, tb = self.body.types[id(a)], self.body.types[id(b)]
        return (self.expr(a, lane, tb if ta == WEAK and tb != WEAK else context),
                self.expr(b, lane, ta if tb == WEAK and ta != WEAK else context))

    def call(self, node: ast.Call, kind: str, lane: int, context: str) -> str:
        name = node.func.id  # type: ignore[attr-defined]
        fn = FUNCTIONS[name]
        if fn.kind == "device":
            alias = self.devices.setdefault(name, f"_nk_fn_{name}")
            args = [self.expr(a, lane, t) for a, t in zip(node.args, fn.args)]
            return f"{alias}({', '.join(args)})"
        if fn.kind == "cast":
            return f"_nk_np.{name}({self.expr(node.args[0], lane, fn.result)})"
        inner = kind if kind != WEAK else context
        args = [self.expr(a, lane, inner) for a in node.args]
        prefix = "_nk_math." if fn.kind == "math" else ""
        return f"{prefix}{name}({', '.join(args)})"

    # -- the module -------------------------------------------------------------------------------
    def source(self) -> str:
        body = self.body
        arrays = [p.name for p in self.params if p.kind == "array"]
        first = body.outputs[0]
        kernel: list[str] = []
        w = kernel.append
        w("@_nk_cuda.jit(cache=True)")
        w(f"def _kernel({', '.join(p.name + '_' for p in self.params)}):")
        w(f"    _n = {first}_.shape[0]")
        w(f"    _dt = {arrays[0]}_.dtype.type")
        constants_at = len(kernel)
        w("    _s = _nk_cuda.gridsize(1)")
        w("    _last = _n - 1")
        w(f"    for _i0 in range(_nk_cuda.grid(1), _n, {LANES} * _s):")
        for lane in range(1, LANES):
            w(f"        _i{lane} = _i{lane - 1} + _s")
        for lane in range(1, LANES):
            w(f"        _j{lane} = min(_i{lane}, _last)")
        for array in body.loads:  # every load of every lane before any store
            for lane in range(LANES):
                w(f"        {array}_{lane} = {array}_[{'_i0' if lane == 0 else f'_j{lane}'}]")
        for target, value, text in body.statements:
            w(f"        # {text}")
            for lane in range(LANES):
                w(f"        {target}_{lane} = {self.expr(value, lane, body.locals[target])}")
        for array in body.outputs:
            w(f"        {array}_[_i0] = {array}_0")
            for lane in range(1, LANES):
                w(f"        if _i{lane} < _n:")
                w(f"            {array}_[_i{lane}] = {array}_{lane}")
        kernel[constants_at:constants_at] = [f"    {alias} = {self.typed(kind, value)}"
                                             for (kind, value), alias in self.constants.items()]
        lines = [f'"""Generated by nkernels.kernels.cuda.elementwise: {self.name}. Do not edit."""',
                 "import math as _nk_math", "", "import numpy as _nk_np", "from numba import cuda as _nk_cuda", "",
                 "from nkernels.kernels.cuda.elementwise import check_arrays as _nk_check",
                 "from nkernels.kernels.cuda.launch import as_device_array as _nk_device",
                 "from nkernels.kernels.cuda.launch import UNROLL as _nk_unroll",
                 "from nkernels.kernels.cuda.launch import launch as _nk_launch",
                 "from nkernels.kernels.cuda.launch import scalar as _nk_scalar"]
        for fname, alias in self.devices.items():
            module, attr = FUNCTIONS[fname].target.split(":")
            lines.append(f"from {module} import {attr} as {alias}")
        return "\n".join(lines + ["", ""] + kernel + ["", ""] + self.launcher()) + "\n"

    @staticmethod
    def typed(kind: str, value: Any) -> str:
        """A typed number: in the arrays' dtype (``_dt``) or a NumPy scalar type."""
        return f"_dt({value!r})" if kind == T else f"_nk_np.{kind}({value!r})"

    def launcher(self) -> list[str]:
        body = self.body
        used = body.outputs + [a for a in body.loads if a not in body.outputs]
        checked = used + [a for a in body.gathers if a not in used]
        lines = [f"def {self.name}({', '.join(p.name for p in self.params)}):"]
        for p in self.params:
            if p.kind == "array":
                lines.append(f"    {p.name} = _nk_device({p.name}, {p.name!r})")
        names = ", ".join(repr(a) for a in checked)
        lines += [f"    _n = _nk_check({self.name!r}, ({', '.join(checked)},), ({names},), {len(used)})",
                  "    if _n == 0:", "        return"]
        args = []
        for p in self.params:
            if p.kind == "array":
                args.append(p.name)
            elif p.kind == T:
                args.append(f"_nk_scalar({checked[0]}.dtype, {p.name})")
            else:
                args.append(f"_nk_np.{p.kind}({p.name})")
        lines.append(f"    _nk_launch(_kernel, _n, {', '.join(args)}, per_thread=_nk_unroll)")
        return lines


def check_arrays(kernel: str, arrays: tuple, names: tuple, elementwise: int) -> int:
    """The length the kernel runs over, after checking its arrays: each 1-D, one dtype, and the first
    ``elementwise`` (those read or written at ``i``) of one length. Called by the generated launchers."""
    dtype = arrays[0].dtype
    for array, name in zip(arrays, names):
        if array.ndim != 1:
            raise ValueError(f"{kernel}: {name} must be a 1-D device array (a flat view), got shape {array.shape}")
        if array.dtype != dtype:
            raise TypeError(f"{kernel}: {name} is {array.dtype} but {names[0]} is {dtype}; "
                            f"the arrays of an elementwise kernel share one dtype")
    n = arrays[0].shape[0]
    for array, name in zip(arrays[1:elementwise], names[1:elementwise]):
        if array.shape[0] != n:
            raise ValueError(f"{kernel}: {name} has {array.shape[0]} elements but {names[0]} has {n}")
    return n


class ElementwiseKernel:
    """A CUDA elementwise launcher made by :func:`elementwise`: call it as the CPU kernel it twins.

    ``name``, ``params`` (:class:`Param` records) and ``source`` (the generated module) describe
    it; the module is written and imported on the first call.
    """

    def __init__(self, name: str, params: tuple[Param, ...], source: str, doc: str):
        self.name, self.params, self.source = name, params, source
        self.__name__ = self.__qualname__ = name
        self.__doc__ = doc
        self.__signature__ = inspect.Signature(
            [inspect.Parameter(p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in params])
        self._launch: Any = None

    @property
    def launcher(self):
        """The generated launcher (the module is written and imported on first use)."""
        if self._launch is None:
            module = load_generated_module(self.source, "cuda", f"nk_ew_{self.name}")
            self._launch = getattr(module, self.name)
        return self._launch

    @property
    def kernel(self):
        """The ``@cuda.jit`` kernel the launcher launches."""
        return self.launcher.__globals__["_kernel"]

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        launch = self._launch if self._launch is not None else self.launcher
        launch(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<elementwise CUDA kernel {self.name}{self.__signature__}>"


def elementwise(signature: str, body: str, doc: str | None = None) -> ElementwiseKernel:
    """The CUDA twin of a CPU elementwise kernel: ``signature`` computing ``body`` for every element.

    Example, the CUDA twins of a plugin's LeakyReLU kernels ``leaky_relu_forward(x,
    negative_slope, out)`` and ``leaky_relu_backward(x, dy, negative_slope, dx)``::

        from nkernels.kernels.cuda.elementwise import elementwise

        leaky_relu_forward = elementwise("leaky_relu_forward(x, negative_slope: scalar, out)",
                                         "out = x if x > 0 else negative_slope * x")
        leaky_relu_backward = elementwise("leaky_relu_backward(x, dy, negative_slope: scalar, dx)",
                                          "dx = dy if x > 0 else negative_slope * dy")

    Register each next to its CPU kernel, ``KernelRecord("leaky_relu_forward", "cuda",
    leaky_relu_forward)`` in the plugin's ``nkernels_register_kernels``, and list ``"cuda"`` in
    the layer's ``supported_devices``: the layer then runs on the GPU (``model.to("cuda")``), and
    :func:`nkernels.testing.check_cpu_cuda_agreement` compares the two devices.

    **The signature** ``"name(a, b: scalar, ...)"`` is the CPU kernel's name and parameters. A
    parameter without annotation is a 1-D device array (a flat view); every array has the same
    dtype, the kernel's. An annotated one is a number: ``scalar`` (converted to the arrays'
    dtype on the host, as :func:`~nkernels.kernels.cuda.launch.scalar` does), ``float64``,
    ``int64`` or ``uint64``.

    **The body**: assignments ``name = expression`` (or ``name += expression`` ...), one per
    line, run in order for every element ``i``. An array parameter named in an expression stands
    for its element ``i``; assigning it makes it an output, stored at ``i`` (after the
    assignment the name stands for the new value, so ``p -= lr * g`` updates in place). Other
    assigned names are locals. ``i`` is the element's index (int64), and ``a[index]`` reads an
    input array at any integer index (a gather; ``a`` may have another length). The kernel runs
    over the elements of its first output; every array used at ``i`` must have that length.
    Expressions use ``+ - * / // % **``, comparisons, ``and``/``or``/``not``, ``a if condition
    else b``, the functions of :data:`FUNCTIONS` (``exp``, ``log``, ``tanh``, ``sqrt`` ...,
    ``min``, ``max``, ``abs``, the casts ``float64``/``int64``/``uint64`` and the counter-based
    ``hash_uniform(seed, counter)``) and numbers. A number takes the type of what it meets
    (NumPy's rule for Python scalars): in ``x > 0`` the ``0`` is of the arrays' dtype, in
    ``i - 1`` an int64; a number alone is of the arrays' dtype.

    ``doc`` is the launcher's docstring. A signature or a body outside the language is an
    :class:`ExpressionError` (a ValueError) naming the part at fault, raised here rather than at
    the first launch. The launcher takes device arrays (numba's, or anything with
    ``__cuda_array_interface__``; a NumPy array is a TypeError), checks that they are 1-D with
    one dtype and one length, and returns nothing: the outputs are written in place,
    asynchronously, like every launch.
    """
    name, params = parse_signature(signature)
    if not any(p.kind == "array" for p in params):
        raise ExpressionError(f"{name}: the signature has no array parameter")
    checked = _Body(name, params, body)
    source = _Renderer(name, params, checked).source()
    return ElementwiseKernel(name, params, source, doc or f"Generated elementwise CUDA kernel ``{signature}``.")


__all__ = ["elementwise", "ElementwiseKernel", "ExpressionError", "Param", "FUNCTIONS", "SCALAR_TYPES"]
