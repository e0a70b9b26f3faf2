"""functrans: composable function transforms (grad, vmap, jit) for NumPy programs.

>>> import numpy as np, functrans as ft, functrans.numpy as fnp
>>> ft.grad(lambda w: fnp.sum(fnp.tanh(w) ** 2))(np.zeros(2))
array([0., 0.])
"""

from functrans import (  # noqa: F401
    core,
    datasets,
    errors,
    ir,
    lax,
    nn,
    numpy,  # noqa: F401  (also attaches NumPy operators to tracers)
    optim,
    scipy,
    test_util,
    tree_util,
    viz,
)
from functrans.config import config  # noqa: F401
from functrans.ir import ClosedJaxpr, Jaxpr, eval_jaxpr  # noqa: F401
from functrans.transforms.autodiff.custom import custom_jvp, custom_vjp, stop_gradient  # noqa: F401
from functrans.transforms.autodiff.forward import jvp, linearize  # noqa: F401
from functrans.transforms.autodiff.jacobians import hessian, jacfwd, jacrev  # noqa: F401
from functrans.transforms.autodiff.reverse import grad, value_and_grad, vjp  # noqa: F401
from functrans.transforms.batching import vmap  # noqa: F401
from functrans.transforms.jit import jit  # noqa: F401
from functrans.transforms.staging import make_jaxpr  # noqa: F401

# The IR's records are part of ``functrans.core``'s public API; ``functrans.ir`` defines
# them on top of the core, so they are attached here, from above.
for _name in ("ClosedJaxpr", "Jaxpr", "JaxprEqn", "Literal", "Var", "eval_jaxpr"):
    setattr(core, _name, getattr(ir, _name))
del _name

__version__ = "0.1.0"
