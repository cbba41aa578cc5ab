"""RandomShift: each image equals a per-image translated copy of itself (checked against np.roll), errors."""

import numpy as np
import pytest

from jitgrad.data import RandomShift, random_shift


def _shift_reference(img: np.ndarray, dy: int, dx: int, fill) -> np.ndarray:
    """img moved by (dy, dx) pixels (content goes down/right for positive), uncovered pixels = fill."""
    h, w = img.shape[-2:]
    out = np.full_like(img, fill)
    src = img[..., max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    out[..., max(0, dy):max(0, dy) + src.shape[-2], max(0, dx):max(0, dx) + src.shape[-1]] = src
    return out


@pytest.mark.parametrize("shape", [(64, 7, 9), (40, 3, 6, 5)])
def test_every_image_is_a_translated_copy(shape):
    rng = np.random.default_rng(0)
    x = rng.integers(1, 256, size=shape).astype(np.uint8)  # no zeros: the fill is recognisable
    out = RandomShift(2, fill=0, seed=1)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    seen = set()
    for img, got in zip(x, out):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(_shift_reference(img, dy, dx, 0), got)]
        assert len(matches) == 1, matches
        seen.add(matches[0])
    assert len(seen) > 10  # the offsets vary over the batch (25 possible)
    assert not np.array_equal(out, x)


def test_float_fill_seed_and_zero_shift():
    x = np.random.default_rng(2).standard_normal((8, 5, 5)).astype(np.float32)
    a, b = RandomShift(1, fill=-0.5, seed=3)(x), random_shift(1, fill=-0.5, seed=3)(x)
    np.testing.assert_array_equal(a, b)  # same seed, same offsets
    assert a.dtype == np.float32
    moved = ~np.all(a == x, axis=(1, 2))
    assert np.all(np.any(a[moved] == np.float32(-0.5), axis=(1, 2)))  # a moved image shows fill
    same = RandomShift(0)(x)
    np.testing.assert_array_equal(same, x)
    assert same is not x


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_shift must be a non-negative int, got -1"):
        RandomShift(-1)
    with pytest.raises(TypeError, match="max_shift must be a non-negative int, got 1.5"):
        RandomShift(1.5)
    with pytest.raises(ValueError, match="fill must be finite, got nan"):
        RandomShift(1, fill=float("nan"))
    with pytest.raises(ValueError, match=r"expected a batch of shape \(N, H, W\) or \(N, C, H, W\), got \(4, 4\)"):
        RandomShift(1)(np.zeros((4, 4)))
