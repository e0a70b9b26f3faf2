"""functrans: composable function transforms (grad, vmap, jit) for NumPy programs.

>>> import numpy as np, functrans as ft, functrans.numpy as fnp
>>> ft.grad(lambda w: fnp.sum(fnp.tanh(w) ** 2))(np.zeros(2))
array([0., 0.])
"""

from functrans import (  # noqa: F401
    core,
    datasets,
    errors,
    lax,
    nn,
    numpy,  # noqa: F401  (also attaches NumPy operators to tracers)
    optim,
    test_util,
    tree_util,
    viz,
)
from functrans.config import config  # noqa: F401
from functrans.ir import ClosedJaxpr, Jaxpr, eval_jaxpr  # noqa: F401
from functrans.transforms.ad import grad, jvp, linearize, value_and_grad, vjp  # noqa: F401
from functrans.transforms.batching import vmap  # noqa: F401
from functrans.transforms.custom import custom_jvp, custom_vjp, stop_gradient  # noqa: F401
from functrans.transforms.jacobians import hessian, jacfwd, jacrev  # noqa: F401
from functrans.transforms.jit import jit  # noqa: F401
from functrans.transforms.staging import make_jaxpr  # noqa: F401

__version__ = "0.1.0"
