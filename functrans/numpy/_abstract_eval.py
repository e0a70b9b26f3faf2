"""Abstract evaluation: run a function on shapes and dtypes alone.

The eager path uses it to explain a NumPy failure in functrans' own words: the
traced implementation runs again with the NumPy arrays replaced by tracers that
carry only an abstract value, so each shape rule checks what NumPy rejected.
Nothing is recorded or computed for those tracers; operations on constants alone
are handed to the parent trace, as staging does, so concrete values stay concrete.
A Python conversion of an abstract tracer (``int(x)``, ``bool(x)``) raises
``ConcretizationTypeError``, as it does under ``jit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from functrans.core import Primitive, ShapedArray, Trace, Tracer, get_aval, missing_rule


class AbstractTracer(Tracer):
    __slots__ = ("aval",)

    def __init__(self, trace: AbstractEvalTrace, aval: ShapedArray):
        self._trace = trace
        self.aval = aval


class AbstractEvalTrace(Trace):
    """Applies each primitive's shape rule (``abstract_eval``) and nothing else."""

    __slots__ = ()

    def new_arg(self, aval: ShapedArray) -> AbstractTracer:
        return AbstractTracer(self, aval)

    def process_primitive(self, prim: Primitive, args: Sequence[Any], params: dict) -> Any:
        for x in args:
            if type(x) is AbstractTracer and x._trace is self:
                break
        else:
            return self.parent.process_primitive(prim, args, params)
        if prim.abstract_eval is None:
            raise missing_rule(prim, "abstract evaluation", "shape", "prim.def_abstract_eval(rule)")
        out = prim.abstract_eval(*[get_aval(x) for x in args], **params)
        if prim.multiple_results:
            return [AbstractTracer(self, aval) for aval in out]
        return AbstractTracer(self, out)
