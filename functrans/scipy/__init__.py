"""SciPy's functions, differentiable and batchable: ``functrans.scipy.special``.

>>> import functrans.scipy.special as fsp
>>> print(round(float(fsp.erf(0.5)), 6))
0.5205
"""

from functrans.scipy import special

__all__ = ["special"]
