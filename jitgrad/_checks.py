"""Argument checks shared by ``nn``, ``data`` and ``optim``: one rule, one message.

The project's rule for a bad argument: a wrong *type* (a float, a bool or a
string where an int is wanted) is a ``TypeError``; a wrong *value* of the right
type (0 or a negative where a positive int is wanted) is a ``ValueError``. Both
say ``"<owner>: <name> must be <what>, got <value>"`` on one line.

This module imports nothing of jitgrad, so ``data`` (independent of ``nn`` and
``autograd``) can use it too. The kernels keep their own checks in
``kernels/_validate.py`` (``kernels`` imports nothing of jitgrad but ``config``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_int", "positive_int", "check_real"]


def _describe(minimum: int | None, maximum: int | None) -> str:
    if minimum is None and maximum is None:
        return "an int"
    if maximum is None:
        return {0: "a non-negative int", 1: "a positive int"}.get(minimum, f"an int >= {minimum}")
    if minimum is None:
        return f"an int <= {maximum}"
    return f"an int in [{minimum}, {maximum}]"


def check_int(owner: str, name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None,
              what: str | None = None) -> int:
    """``value`` as a Python int, after checking its type and its range.

    Parameters
    ----------
    owner, name : str
        Who checks (``"DataLoader"``, ``"fit"``) and which argument: the message starts ``"owner: name"``.
    value : object
        The argument. A Python or NumPy integer is an int; a bool is not.
    minimum, maximum : int, optional
        Inclusive bounds.
    what : str, optional
        What the message says was wanted; by default from the bounds ("a positive int", ...).

    Returns
    -------
    int

    Raises
    ------
    TypeError
        ``value`` is not an int (a bool, a float, a string, None).
    ValueError
        ``value`` is an int outside ``[minimum, maximum]``.
    """
    if what is None:
        what = _describe(minimum, maximum)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{owner}: {name} must be {what}, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{owner}: {name} must be {what}, got {value!r}")
    return int(value)


def positive_int(owner: str, name: str, value: Any) -> int:
    """``check_int(owner, name, value, minimum=1)``: sizes, counts, periods."""
    return check_int(owner, name, value, minimum=1)


def check_real(owner: str, name: str, value: Any, *, what: str, minimum: float | None = None,
               maximum: float | None = None, min_open: bool = False, max_open: bool = False,
               finite: bool = False, allow_nan: bool = False) -> float:
    """``value`` as a Python float, after checking its type and its range.

    Parameters
    ----------
    owner, name : str
        Who checks and which argument: the message starts ``"owner: name"``.
    value : object
        The argument. A Python or NumPy int or float is a real number; a bool is not.
    what : str
        What the message says was wanted (``"a probability in [0, 1]"``).
    minimum, maximum : float, optional
        Bounds, inclusive unless ``min_open`` / ``max_open``.
    finite : bool
        Refuse ``±inf`` and NaN.
    allow_nan : bool
        Let NaN through the bounds (for arguments whose NaN the caller propagates).

    Returns
    -------
    float

    Raises
    ------
    TypeError
        ``value`` is not a real number (a bool, a string, None).
    ValueError
        ``value`` is out of range (NaN included, unless ``allow_nan``), or not finite when ``finite``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: {name} must be {what}, got {value!r}")
    v = float(value)
    if v != v:
        ok = allow_nan and not finite
    else:
        ok = ((not finite or abs(v) != float("inf"))
              and (minimum is None or (v > minimum if min_open else v >= minimum))
              and (maximum is None or (v < maximum if max_open else v <= maximum)))
    if not ok:
        raise ValueError(f"{owner}: {name} must be {what}, got {value!r}")
    return v
