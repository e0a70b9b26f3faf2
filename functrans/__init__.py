"""functrans: composable function transforms (grad, vmap, jit) for NumPy programs."""

from functrans import numpy  # noqa: F401  (attaches operators to tracers)
from functrans import tree_util  # noqa: F401
from functrans.ir import ClosedJaxpr, eval_jaxpr  # noqa: F401
from functrans.transforms.staging import make_jaxpr  # noqa: F401
