"""Automatic differentiation, one module per idea, each importing only those before it:

* ``forward``: forward mode (``JVPTrace``), ``jvp`` and ``linearize``;
* ``reverse``: reverse mode (``ReverseTrace`` and its tape), ``vjp``, ``grad`` and
  ``value_and_grad``;
* ``custom_call`` and ``custom``: user-defined rules (``custom_jvp``, ``custom_vjp``)
  and ``stop_gradient``;
* ``jacobians``: ``jacfwd``, ``jacrev`` and ``hessian``.
"""
