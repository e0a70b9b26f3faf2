"""``functrans.datasets``: small data sets shipped with the package.

Nothing here touches the network or needs a dependency beyond NumPy; the files live
in ``functrans/data/`` (see its ``README.md`` for sources and licences).

>>> X, y = load_digits()
>>> X.shape, y.shape
((1797, 64), (1797,))
"""

from __future__ import annotations

import gzip
from importlib import resources

import numpy as np
import numpy.typing as npt

__all__ = ["load_digits"]

_DIGITS_FILE = "digits.csv.gz"
_DIGITS_MAX_PIXEL = 16.0


def load_digits(dtype: npt.DTypeLike = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """The UCI handwritten digits: 1,797 images of 8 x 8 pixels and their labels 0-9.

    Returns ``(X, y)``: ``X`` of shape ``(1797, 64)`` and dtype ``dtype``, each row one
    image in row-major order, pixels scaled from the original 0..16 counts to
    ``[0, 1]``; ``y`` of shape ``(1797,)`` and dtype ``int64``. Reshape a row to
    ``(8, 8)`` to see the image. Source: E. Alpaydin and C. Kaynak, "Optical
    Recognition of Handwritten Digits", UCI Machine Learning Repository, CC BY 4.0.

    >>> X, y = load_digits(dtype=np.float32)
    >>> X.dtype, float(X.min()), float(X.max())
    (dtype('float32'), 0.0, 1.0)
    >>> np.bincount(y)
    array([178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    """
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"load_digits: dtype must be a floating dtype, got {dtype}")
    source = resources.files("functrans").joinpath("data", _DIGITS_FILE)
    with source.open("rb") as raw, gzip.open(raw, "rt") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.int64)
    X = (table[:, :-1] / _DIGITS_MAX_PIXEL).astype(dtype)
    y = table[:, -1].astype(np.int64)
    return X, y
