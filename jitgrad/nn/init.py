"""Parameter initialisers, as PyTorch's ``torch.nn.init``, and jitgrad's global seed.

Every initialiser fills a Tensor (or a NumPy array) in place and returns it.
Random numbers come from jitgrad's one global ``numpy.random.Generator``
(kept by :mod:`jitgrad.autograd.creation`, shared with ``randn`` and
dropout); :func:`manual_seed` (the same as ``jitgrad.manual_seed``) resets it, so a model built after ``manual_seed(s)`` has
the same weights every run. Each function also takes an explicit
``generator=`` for code that wants its own stream.

Samples are drawn in float64 and rounded to the parameter's dtype, so a
float32 and a float64 model built from the same seed agree to float32
precision.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jitgrad.autograd import creation

__all__ = [
    "manual_seed", "get_generator", "calculate_gain", "calculate_fan_in_and_fan_out",
    "uniform_", "normal_", "zeros_", "ones_", "constant_",
    "xavier_uniform_", "xavier_normal_", "glorot_uniform", "glorot_normal",
    "kaiming_uniform_", "kaiming_normal_",
]

def manual_seed(seed: int) -> np.random.Generator:
    """Seed jitgrad's global generator (parameter init, dropout, ``randn``), for reproducible runs.

    The generator itself lives in :mod:`jitgrad.autograd.creation` (so that
    ``jitgrad.manual_seed`` and this function seed the same stream); this
    wrapper validates the seed and returns the new generator.

    Parameters
    ----------
    seed : int
        A non-negative integer.

    Returns
    -------
    numpy.random.Generator
        The new global generator.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"manual_seed: seed must be >= 0, got {seed}")
    creation.manual_seed(int(seed))
    return creation.default_generator()


def get_generator() -> np.random.Generator:
    """The global generator that initialisers and dropout draw from by default."""
    return creation.default_generator()


def _fill(tensor: Any, values: np.ndarray) -> Any:
    """Write ``values`` into ``tensor`` (a Tensor or an array) in place, keeping its dtype."""
    target = getattr(tensor, "data", tensor) if not isinstance(tensor, np.ndarray) else tensor
    if isinstance(target, np.ndarray):
        target[...] = values.astype(target.dtype, copy=False)
    elif hasattr(target, "copy_to_device"):
        # A device array: build on the host, copy over once.
        target.copy_to_device(np.require(values.astype(target.dtype, copy=False), requirements="C"))
    else:
        raise TypeError(f"init: expected a Tensor or a NumPy array, got {type(tensor).__name__}")
    return tensor


def _shape(tensor: Any) -> tuple[int, ...]:
    shape = getattr(tensor, "shape", None)
    if shape is None:
        raise TypeError(f"init: expected a Tensor or a NumPy array, got {type(tensor).__name__}")
    return tuple(int(s) for s in shape)


def _gen(generator: np.random.Generator | None) -> np.random.Generator:
    return creation.default_generator() if generator is None else generator


def calculate_fan_in_and_fan_out(shape: tuple[int, ...]) -> tuple[int, int]:
    """Fan-in and fan-out of a weight of ``shape``: ``(out, in, *kernel)`` layout.

    Parameters
    ----------
    shape : tuple of int
        At least 2-D: ``(out_features, in_features)`` or ``(C_out, C_in, kH, kW)``.

    Returns
    -------
    (fan_in, fan_out) : tuple of int
        ``in * prod(kernel)`` and ``out * prod(kernel)``.
    """
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a weight of at least 2 dimensions, got shape {tuple(shape)}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


_GAINS = {"linear": 1.0, "conv1d": 1.0, "conv2d": 1.0, "conv3d": 1.0, "sigmoid": 1.0,
          "tanh": 5.0 / 3.0, "relu": math.sqrt(2.0), "selu": 3.0 / 4.0}


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """Recommended gain for a nonlinearity (PyTorch's table).

    ``leaky_relu`` uses ``sqrt(2 / (1 + slope**2))`` with ``slope = param``
    (default 0.01).
    """
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1.0 + slope * slope))
    if nonlinearity not in _GAINS:
        raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}; "
                         f"expected one of {sorted([*_GAINS, 'leaky_relu'])}")
    return _GAINS[nonlinearity]


def uniform_(tensor: Any, a: float = 0.0, b: float = 1.0, *,
             generator: np.random.Generator | None = None) -> Any:
    """Fill ``tensor`` with samples of U(a, b)."""
    if not a <= b:
        raise ValueError(f"uniform_: need a <= b, got a={a}, b={b}")
    return _fill(tensor, _gen(generator).uniform(a, b, size=_shape(tensor)))


def normal_(tensor: Any, mean: float = 0.0, std: float = 1.0, *,
            generator: np.random.Generator | None = None) -> Any:
    """Fill ``tensor`` with samples of N(mean, std**2)."""
    if std < 0:
        raise ValueError(f"normal_: std must be >= 0, got {std}")
    return _fill(tensor, _gen(generator).normal(mean, std, size=_shape(tensor)))


def constant_(tensor: Any, value: float) -> Any:
    """Fill ``tensor`` with ``value``."""
    return _fill(tensor, np.full(_shape(tensor), value, dtype=np.float64))


def zeros_(tensor: Any) -> Any:
    """Fill ``tensor`` with zeros."""
    return constant_(tensor, 0.0)


def ones_(tensor: Any) -> Any:
    """Fill ``tensor`` with ones."""
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor: Any, gain: float = 1.0, *,
                    generator: np.random.Generator | None = None) -> Any:
    """Glorot/Xavier uniform: U(-b, b) with ``b = gain * sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(_shape(tensor))
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator=generator)


def xavier_normal_(tensor: Any, gain: float = 1.0, *,
                   generator: np.random.Generator | None = None) -> Any:
    """Glorot/Xavier normal: N(0, std**2) with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(_shape(tensor))
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator=generator)


#: Flux's names for the same initialisers.
glorot_uniform = xavier_uniform_
glorot_normal = xavier_normal_


def _kaiming_std(shape: tuple[int, ...], a: float, mode: str, nonlinearity: str) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor: Any, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *,
                     generator: np.random.Generator | None = None) -> Any:
    """He/Kaiming uniform: U(-b, b) with ``b = gain * sqrt(3 / fan)``.

    ``a`` is the negative slope of the following leaky ReLU; PyTorch's default
    layer init is ``a = sqrt(5)``, which gives ``b = 1 / sqrt(fan_in)``.
    """
    bound = math.sqrt(3.0) * _kaiming_std(_shape(tensor), a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, generator=generator)


def kaiming_normal_(tensor: Any, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *,
                    generator: np.random.Generator | None = None) -> Any:
    """He/Kaiming normal: N(0, std**2) with ``std = gain / sqrt(fan)``."""
    std = _kaiming_std(_shape(tensor), a, mode, nonlinearity)
    return normal_(tensor, 0.0, std, generator=generator)
