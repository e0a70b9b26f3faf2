"""``scipy.special``'s functions with SciPy's names and dtype rules (integers and
booleans compute in float64), composed from functrans primitives so that every
transform applies.

>>> import numpy as np, functrans as ft
>>> from functrans.scipy.special import erf
>>> print(erf(np.array([0.0, 1.0])))
[0.         0.84270079]
>>> print(round(float(ft.grad(erf)(0.0)), 6))  # 2 / sqrt(pi)
1.128379
"""

from __future__ import annotations

from typing import Any

import numpy as np

from functrans import numpy as fnp
from functrans import primitives as lax

__all__ = ["erf"]


def _as_inexact(x: Any) -> Any:
    """``x`` as an array of a floating dtype: integers and booleans become float64, as
    in SciPy's ufuncs."""
    x = fnp.asarray(x)
    return x if x.dtype.kind in "fc" else fnp.asarray(x, np.float64)


def erf(z: Any) -> Any:
    """The error function (``scipy.special.erf``) of a real array."""
    return lax.erf(_as_inexact(z))
