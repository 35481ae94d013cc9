"""nkernels.validation: the shared argument and data checks, and that no first-party plugin keeps its own."""
import ast
import doctest
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nkernels as nk
from nkernels import validation as V

ROOT = Path(__file__).resolve().parents[1]
L = nk.layers

NOT_INTEGERS = [2.5, 3.0, "3", None, True, np.bool_(True), [3], np.float64(2.0)]
NOT_NUMBERS = ["0.1", None, True, np.bool_(False), [0.1], 1j, np.array([0.5])]


def test_the_examples_of_the_docstrings_hold():
    assert doctest.testmod(V, raise_on_error=False).failed == 0


# -- check_int ----------------------------------------------------------------------------------
@given(st.integers(min_value=-10**6, max_value=10**6), st.integers(min_value=-100, max_value=100))
def test_check_int_accepts_integers_from_the_minimum_and_refuses_those_below(value, minimum):
    if value >= minimum:
        for given_value in (value, np.int64(value)):
            checked = V.check_int(given_value, "n", minimum)
            assert checked == value and type(checked) is int
    else:
        with pytest.raises(ValueError, match=rf"^n must be at least {minimum}, got {value}$"):
            V.check_int(value, "n", minimum)


@pytest.mark.parametrize("value", NOT_INTEGERS)
def test_check_int_refuses_other_types_with_a_type_error(value):
    with pytest.raises(TypeError, match=r"^epochs must be an integer, got .+ \(\w+\)$"):
        V.check_int(value, "epochs")


def test_check_int_allow_none():
    assert V.check_int(None, "shards", allow_none=True) is None
    assert V.check_int(np.uint8(3), "shards", allow_none=True) == 3
    with pytest.raises(TypeError, match="shards must be an integer or None, got 'two'"):
        V.check_int("two", "shards", allow_none=True)
    with pytest.raises(ValueError, match="shards must be at least 1, got 0"):
        V.check_int(0, "shards", allow_none=True)


# -- check_number -------------------------------------------------------------------------------
@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers(), st.floats(-10, 10), st.floats(0, 10),
       st.booleans(), st.booleans())
def test_check_number_accepts_exactly_the_finite_numbers_in_range(value, low, width, low_open, high_open):
    high = low + width
    inside = (isinstance(value, int) or math.isfinite(value)) \
        and (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
    if inside:
        checked = V.check_number(value, "x", low=low, high=high, low_open=low_open, high_open=high_open)
        assert checked == float(value) and type(checked) is float
    else:
        with pytest.raises(ValueError, match=r"^x must be a finite number in [\[(].*, .*[\])], got "):
            V.check_number(value, "x", low=low, high=high, low_open=low_open, high_open=high_open)


@pytest.mark.parametrize("bounds, words", [
    ({}, ""),
    ({"low": 0}, " at least 0"),
    ({"low": 0, "low_open": True}, " above 0"),
    ({"high": 1}, " at most 1"),
    ({"high": 1, "high_open": True}, " below 1"),
    ({"low": 0, "high": 1}, r" in \[0, 1\]"),
    ({"low": 0, "high": 1, "low_open": True, "high_open": True}, r" in \(0, 1\)"),
    ({"low": 1e-8, "high": 0.5, "high_open": True}, r" in \[1e-08, 0.5\)"),
])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, np.float32("nan"), 10**400, -10**400])
def test_check_number_refuses_nan_inf_and_ints_beyond_floats_with_a_value_error(bounds, words, bad):
    with pytest.raises(ValueError, match=rf"^lr must be a finite number{words}, got "):
        V.check_number(bad, "lr", **bounds)


def test_check_number_says_which_bound_was_broken():
    assert V.check_number(0, "decay", low=0) == 0.0
    assert V.check_number(np.float32(0.5), "p", low=0, high=1) == 0.5
    assert V.check_number(np.int64(2), "p", low=2, high=2) == 2.0
    with pytest.raises(ValueError, match=r"^lr must be a finite number above 0, got 0.0$"):
        V.check_number(0, "lr", low=0, low_open=True)
    with pytest.raises(ValueError, match=r"^beta must be a finite number below 1, got 1.0$"):
        V.check_number(1, "beta", high=1, high_open=True)
    with pytest.raises(ValueError, match=r"^p must be a finite number in \[0, 1\], got -0.5$"):
        V.check_number(-0.5, "p", low=0, high=1)


@pytest.mark.parametrize("value", NOT_NUMBERS)
def test_check_number_refuses_other_types_with_a_type_error(value):
    with pytest.raises(TypeError, match=r"^sigma must be a number, got .+ \(\w+\)$"):
        V.check_number(value, "sigma", low=0, low_open=True)


def test_check_number_allow_none():
    assert V.check_number(None, "clip_norm", low=0, allow_none=True) is None
    with pytest.raises(TypeError, match="clip_norm must be a number or None, got 'big'"):
        V.check_number("big", "clip_norm", allow_none=True)
    with pytest.raises(ValueError, match="clip_norm must be a finite number at least 0, got -1.0"):
        V.check_number(-1, "clip_norm", low=0, allow_none=True)


# -- check_bool, check_choice, check_seed, check_pair -------------------------------------------
def test_check_bool():
    assert V.check_bool(True, "bias") is True and V.check_bool(np.bool_(False), "bias") is False
    for value in (1, 0, "yes", None, np.int64(1), [True]):
        with pytest.raises(TypeError, match=r"^bias must be True or False, got "):
            V.check_bool(value, "bias")


def test_check_choice():
    choices = ("lloyd", "minibatch")
    assert V.check_choice("lloyd", "algorithm", choices) == "lloyd"
    checked = V.check_choice(np.str_("minibatch"), "algorithm", choices)
    assert checked == "minibatch" and type(checked) is str
    assert V.check_choice(3, "size", (1, 3, 5)) == 3
    with pytest.raises(ValueError, match=r"^algorithm must be one of 'lloyd', 'minibatch', got 'elkan'$"):
        V.check_choice("elkan", "algorithm", choices)
    for value in (1, None, ["lloyd"], np.array(["lloyd"])):
        with pytest.raises(TypeError, match=r"^algorithm must be one of 'lloyd', 'minibatch', got "):
            V.check_choice(value, "algorithm", choices)


@given(st.integers(min_value=-2**70, max_value=2**70))
def test_check_seed_accepts_none_and_the_seeds_numpy_accepts(seed):
    assert V.check_seed(None) is None
    if seed >= 0:
        assert V.check_seed(seed) == seed
        np.random.default_rng(V.check_seed(seed))
    else:
        with pytest.raises(ValueError, match=rf"^seed must be at least 0, got {seed}$"):
            V.check_seed(seed)


@pytest.mark.parametrize("value", [1.5, "0", True, np.random.default_rng(0)])
def test_check_seed_refuses_other_types(value):
    with pytest.raises(TypeError, match=r"^random_state must be an integer or None, got "):
        V.check_seed(value, "random_state")


def test_check_pair():
    assert V.check_pair(3, "kernel_size") == (3, 3)
    assert V.check_pair((2, np.int32(5)), "kernel_size") == (2, 5)
    assert V.check_pair([0, 1], "padding", minimum=0) == (0, 1)
    assert all(type(v) is int for v in V.check_pair((np.int64(2), 3), "stride"))
    expected = r"^stride must be an int or a pair of ints, each at least 1, got "
    for value in ((1, 2, 3), (), (0, 2), [3, -1]):
        with pytest.raises(ValueError, match=expected):
            V.check_pair(value, "stride")
    for value in ("3", 2.0, None, True, (2.0, 3), (2, "3"), (True, 1)):
        with pytest.raises(TypeError, match=expected):
            V.check_pair(value, "stride")
    with pytest.raises(ValueError, match=r"^stride must be at least 1, got 0$"):
        V.check_pair(0, "stride")


def test_check_float_dtype():
    for dtype, expected in [("float32", np.float32), (np.float64, np.float64), (np.dtype("f4"), np.float32),
                            (float, np.float64)]:
        assert V.check_float_dtype(dtype) == np.dtype(expected)
    for dtype in ("float16", np.int32, "int64", bool, "no such type", object):
        with pytest.raises(TypeError, match=r"^dtype must be float32 or float64, got "):
            V.check_float_dtype(dtype)
    with pytest.raises(TypeError, match="^the table's dtype must be float32 or float64, got int8$"):
        V.check_float_dtype(np.int8, "the table's dtype")


# -- data ---------------------------------------------------------------------------------------
def test_as_numeric_array():
    x = np.arange(6, dtype=np.int16).reshape(2, 3)
    assert V.as_numeric_array(x) is x
    assert V.as_numeric_array([[1.5, 2.0]], "X").dtype == np.float64
    for bad in (np.array(["a", "b"]), [object()], np.array([True, False])):
        with pytest.raises(TypeError, match=r"^X must hold numbers \(float or int\), got dtype "):
            V.as_numeric_array(bad, "X")


def test_check_features():
    out = V.check_features(np.arange(6).reshape(3, 2)[:, ::-1])
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert V.check_features(np.ones((2, 3), np.float64)).dtype == np.float64
    assert V.check_features(np.ones((2, 3), np.float64), dtype=np.float32).dtype == np.float32
    cases = [(np.ones(3), r"X must have a sample axis and feature axes \(at least 2-D\), got shape \(3,\)"),
             (np.ones((0, 3)), r"X is empty \(shape \(0, 3\)\)"),
             (np.ones((3, 0)), r"X has no features \(shape \(3, 0\)\)"),
             (np.array([[1.0, np.nan], [np.inf, 0]]), "X contains 2 NaN or infinite values")]
    for X, message in cases:
        with pytest.raises(ValueError, match=message):
            V.check_features(X)
    with pytest.raises(ValueError, match="X holds values too large for float32"):
        V.check_features(np.full((2, 2), 1e300), dtype=np.float32)
    with pytest.raises(TypeError, match="X_val must hold numbers"):
        V.check_features(np.array([["a"]]), "X_val")


def test_check_rows_and_check_images():
    assert V.check_rows(np.ones((4, 3)), 3).shape == (4, 3)
    assert V.check_rows(np.ones((4, 3)), dtype=np.float32).dtype == np.float32
    with pytest.raises(ValueError, match=r"X must be a 2-D array \(n_samples, n_features\), got shape \(4, 3, 2\)"):
        V.check_rows(np.ones((4, 3, 2)))
    with pytest.raises(ValueError, match="H has 3 features but the extractor was fitted on 5"):
        V.check_rows(np.ones((4, 3)), 5, "H")
    assert V.check_images(np.ones((2, 1, 8, 8)), (1, 8, 8)).shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"X must be images of shape \(N, C, H, W\), got shape \(2, 64\)"):
        V.check_images(np.ones((2, 64)))
    with pytest.raises(ValueError, match=r"X has images of shape \(1, 8, 8\) but the extractor was fitted on "
                                         r"\(3, 8, 8\)"):
        V.check_images(np.ones((2, 1, 8, 8)), np.array([3, 8, 8]))


def test_check_same_length_and_fit_arguments():
    V.check_same_length(np.ones((3, 2)), [0, 1, 2])
    with pytest.raises(ValueError, match="y is required"):
        V.check_same_length(np.ones((3, 2)), None)
    with pytest.raises(ValueError, match="X_val has 3 samples but y_val has 2; they must match"):
        V.check_same_length(np.ones((3, 2)), [0, 1], "X_val", "y_val")
    assert V.check_fit_arguments(np.int64(2), 16) == (2, 16)
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        V.check_fit_arguments(1, 0)
    with pytest.raises(TypeError, match="epochs must be an integer, got 1.5"):
        V.check_fit_arguments(1.5, 8)


def test_check_model_input_and_validation_data():
    model = nk.Sequential([L.Dense(4, 3)], seed=0)
    loss = nk.losses.get_loss("cross_entropy")
    assert V.check_model_input(model, np.ones((5, 4), np.float32)) == (5, 3)
    with pytest.raises(ValueError, match=r"X of shape \(5, 2\) does not fit the model"):
        V.check_model_input(model, np.ones((5, 2), np.float32))
    X_val, y_val = V.check_validation_data([np.ones((2, 4)), np.array([0, 2])], model, loss)
    assert X_val.dtype == model.dtype and list(y_val) == [0, 2]
    with pytest.raises(TypeError, match=r"validation_data must be a pair \(X_val, y_val\), got dict"):
        V.check_validation_data({"X": 1}, model, loss)
    with pytest.raises(ValueError, match=r"validation_data must be a pair \(X_val, y_val\), got a list of 1 items"):
        V.check_validation_data([np.ones((2, 4))], model, loss)


def test_messages_name_the_argument_and_show_the_value():
    calls = [lambda: V.check_int(-3, "my_arg"), lambda: V.check_int("x", "my_arg"),
             lambda: V.check_number(math.nan, "my_arg"), lambda: V.check_number("x", "my_arg"),
             lambda: V.check_bool(7, "my_arg"), lambda: V.check_choice("zz", "my_arg", ("a",)),
             lambda: V.check_seed(-3, "my_arg"), lambda: V.check_pair((1, 2, 3), "my_arg"),
             lambda: V.check_float_dtype("zz", "my_arg")]
    for call in calls:
        with pytest.raises((TypeError, ValueError)) as info:
            call()
        message = str(info.value)
        assert message.startswith("my_arg must be ") and re.search(r", got .+", message), message


def test_the_core_uses_the_checks():
    """The layers, optimizers, schedules and schemes raise the shared checks' errors."""
    with pytest.raises(TypeError, match=r"^in_features must be an integer, got '4' \(str\)$"):
        L.Dense("4", 3)
    with pytest.raises(ValueError, match=r"^kernel_size must be an int or a pair of ints, each at least 1"):
        L.Conv2D(1, 2, (3, 0))
    with pytest.raises(TypeError, match=r"^p must be a number, got '0.5' \(str\)$"):
        L.Dropout("0.5")
    with pytest.raises(ValueError, match=r"^seed must be at least 0, got -1$"):
        L.Dropout(0.5, seed=-1)
    with pytest.raises(TypeError, match=r"^nesterov must be True or False, got 1 \(int\)$"):
        nk.optimizers.SGD(momentum=0.9, nesterov=1)
    with pytest.raises(ValueError, match=r"^gamma must be a finite number in \(0, 1\), got 1.0$"):
        nk.schedules.StepLR(2, gamma=1.0)
    with pytest.raises(TypeError, match=r"^gamma must be a number, got '0.1' \(str\)$"):
        nk.schedules.StepLR(2, gamma="0.1")
    with pytest.raises(ValueError, match=r"^min_delta must be a finite number at least 0, got -1.0$"):
        nk.schedules.EarlyStopping(min_delta=-1)
    with pytest.raises(TypeError, match=r"^dtype must be float32 or float64, got int32$"):
        nk.Sequential([L.Dense(2, 2)]).astype(np.int32)


# -- one vocabulary: no copies ------------------------------------------------------------------
#: names that argument-check helpers have gone by in plugins
CHECK_HELPER = re.compile(r"^_?(check|validate)_|^_(number|count|positive|fraction|int|integer|float|bool|choice|"
                          r"seed|pair|rate|factor)$")
VALIDATION_MODULE = "nkernels.validation"


def plugin_sources(root: Path = ROOT) -> list[Path]:
    """The source files of the first-party plugins' packages (not their tests or scripts)."""
    files = sorted(p for p in (root / "plugins").glob("*/nkernels_*/**/*.py"))
    assert len({p.relative_to(root / "plugins").parts[0] for p in files}) >= 6, files
    return files


def _functions_outside_classes(tree: ast.AST):
    """Module-level functions and the functions nested in them (methods are not argument-check helpers)."""
    stack = list(ast.iter_child_nodes(tree))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.ClassDef):
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _is_bool_type_test(node: ast.AST) -> bool:
    """``isinstance(x, bool)`` or ``isinstance(x, (bool, ...))``: the mark of a hand-written type check."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance"
            and len(node.args) == 2):
        return False
    kinds = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
    return any(isinstance(k, ast.Name) and k.id == "bool" for k in kinds)


def copied_checks(path: Path) -> list[str]:
    """What in ``path`` re-implements or re-exports a check instead of importing it from nkernels.validation."""
    tree = ast.parse(path.read_text(), str(path))
    where = "/".join(path.parts[-3:])
    found = [f"{where}:{f.lineno} defines {f.name}()" for f in _functions_outside_classes(tree)
             if CHECK_HELPER.match(f.name)]
    found += [f"{where}:{n.lineno} tests isinstance(..., bool) by hand" for n in ast.walk(tree)
              if _is_bool_type_test(n)]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            for alias in node.names:
                if module != VALIDATION_MODULE and (alias.name in V.__all__ or module == "nkernels.layers.base"):
                    found.append(f"{where}:{node.lineno} imports {alias.name} from {module}")
    return found


def test_no_first_party_plugin_keeps_its_own_argument_checks():
    found = [item for path in plugin_sources() for item in copied_checks(path)]
    assert not found, "import the checks from nkernels.validation instead:\n" + "\n".join(found)


def test_the_scan_finds_copies(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("from nkernels.layers.base import check_bool\nfrom .base import check_int\n"
                      "def _count(value, name):\n    return value\n"
                      "class A:\n    def _check_fitted(self):\n        return isinstance(self, (int, bool))\n")
    found = copied_checks(source)
    assert [item.split(" ", 1)[1] for item in found] == [
        "defines _count()", "tests isinstance(..., bool) by hand", "imports check_bool from nkernels.layers.base",
        "imports check_int from .base"]


def test_the_checks_are_defined_once():
    """No module of the package or of the plugins defines a function by the name of a shared check."""
    names = set(V.__all__)
    sources = [p for p in (ROOT / "nkernels").rglob("*.py") if p != ROOT / "nkernels" / "validation.py"]
    found = [f"{p.relative_to(ROOT)}: {node.name}" for p in sources + plugin_sources()
             for node in ast.walk(ast.parse(p.read_text())) if isinstance(node, ast.FunctionDef) and node.name in names]
    assert not found, found
