"""jitgrad/_checks.py: the one int check of nn, data and optim (TypeError for a type, ValueError for a value)."""

import re

import numpy as np
import pytest

from jitgrad._checks import check_int, check_real, positive_int


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.int32(1)])
def test_an_int_in_range_comes_back_as_a_python_int(value):
    got = positive_int("Owner", "n", value)
    assert got == value and type(got) is int


@pytest.mark.parametrize("value", [1.0, 2.5, True, np.bool_(True), "3", None, np.float32(1)])
def test_a_wrong_type_is_a_type_error(value):
    with pytest.raises(TypeError, match=r"^Owner: n must be a positive int, got "):
        positive_int("Owner", "n", value)


@pytest.mark.parametrize("value", [0, -1, np.int64(-5)])
def test_a_wrong_value_is_a_value_error(value):
    with pytest.raises(ValueError, match="^" + re.escape(f"Owner: n must be a positive int, got {value!r}") + "$"):
        positive_int("Owner", "n", value)


@pytest.mark.parametrize("kwargs, value, message", [
    ({}, -9, None),
    ({"minimum": 0}, -1, "a non-negative int"),
    ({"minimum": 2}, 1, "an int >= 2"),
    ({"maximum": 3}, 4, "an int <= 3"),
    ({"minimum": 0, "maximum": 3}, 4, r"an int in \[0, 3\]"),
    ({"minimum": 0, "maximum": 3, "what": "a day of the week"}, -1, "a day of the week"),
])
def test_bounds_and_message(kwargs, value, message):
    if message is None:
        assert check_int("f", "k", value, **kwargs) == value
        return
    with pytest.raises(ValueError, match=f"^f: k must be {message}, got {value}$"):
        check_int("f", "k", value, **kwargs)
    lo = kwargs.get("minimum", kwargs.get("maximum"))
    assert check_int("f", "k", lo, **kwargs) == lo  # bounds are inclusive
    with pytest.raises(TypeError, match=f"^f: k must be {message}, got 1.0$"):
        check_int("f", "k", 1.0, **kwargs)


@pytest.mark.parametrize("kwargs, good, bad", [
    ({"minimum": 0.0, "maximum": 1.0}, [0, 1, 0.5, np.float32(0.25)], [-0.1, 1.5, float("nan")]),
    ({"minimum": 0.0, "maximum": 1.0, "max_open": True}, [0.0, 0.999], [1.0]),
    ({"minimum": 0.0, "min_open": True}, [1e-12, float("inf")], [0.0, -1.0]),
    ({"finite": True}, [-3, 2.5], [float("inf"), -float("inf"), float("nan")]),
    ({"minimum": 0.0, "allow_nan": True}, [float("nan"), 0.0], [-1.0]),
])
def test_check_real_bounds(kwargs, good, bad):
    for v in good:
        got = check_real("f", "x", v, what="W", **kwargs)
        assert type(got) is float and (got == float(v) or got != got)
    for v in bad:
        with pytest.raises(ValueError, match="^f: x must be W, got "):
            check_real("f", "x", v, what="W", **kwargs)


@pytest.mark.parametrize("value", [True, np.bool_(False), "1.0", None, [1.0]])
def test_check_real_wrong_type_is_a_type_error(value):
    with pytest.raises(TypeError, match="^f: x must be W, got "):
        check_real("f", "x", value, what="W")
