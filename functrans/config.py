"""Global settings: ``functrans.config.update(name, value)``.

Each setting also reads its initial value from an environment variable
``FUNCTRANS_<NAME>`` (``1``/``true``/``yes`` or ``0``/``false``/``no``).

>>> import functrans as ft
>>> ft.config.log_compiles
False
>>> with ft.config.override("log_compiles", True):
...     ft.config.log_compiles
True
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Config", "config"]

_SETTINGS: dict[str, tuple[bool, str]] = {
    "log_compiles": (
        False,
        "log each jit compilation (logger 'functrans.jit', level WARNING), saying which "
        "argument's shape, dtype or static value caused a retrace",
    ),
    "disable_jit": (
        False,
        "run jit-decorated functions eagerly (Python control flow works; for debugging)",
    ),
    "jit_optimize": (
        True,
        "run the jaxpr optimization passes (CSE, constant folding, simplification) in jit",
    ),
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _from_env(name: str, default: bool) -> bool:
    raw = os.environ.get(f"FUNCTRANS_{name.upper()}")
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"FUNCTRANS_{name.upper()}={raw!r}: expected one of 1/0, true/false, yes/no")


class Config:
    """The settings, as attributes (``config.log_compiles``). Change them with
    ``update`` or, for a block, ``override``."""

    __slots__ = tuple(_SETTINGS)

    def __init__(self) -> None:
        for name, (default, _) in _SETTINGS.items():
            object.__setattr__(self, name, _from_env(name, default))

    def update(self, name: str, value: Any) -> None:
        """Set ``name`` to ``value`` (a bool)."""
        if name not in _SETTINGS:
            known = ", ".join(sorted(_SETTINGS))
            raise AttributeError(f"config.update: unknown setting {name!r} (known: {known})")
        if not isinstance(value, bool):
            raise TypeError(
                f"config.update: {name} takes a bool, got {type(value).__name__} {value!r:.40}"
            )
        object.__setattr__(self, name, value)

    @contextmanager
    def override(self, name: str, value: Any) -> Iterator[None]:
        """Set ``name`` to ``value`` for the duration of a ``with`` block."""
        previous = getattr(self, name) if name in _SETTINGS else None
        self.update(name, value)
        try:
            yield
        finally:
            object.__setattr__(self, name, previous)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"use config.update({name!r}, value) to change a setting")

    def describe(self) -> str:
        """Every setting with its current value and what it does."""
        return "\n".join(
            f"{name} = {getattr(self, name)}: {doc}" for name, (_, doc) in _SETTINGS.items()
        )

    def __repr__(self) -> str:
        items = ", ".join(f"{name}={getattr(self, name)}" for name in _SETTINGS)
        return f"Config({items})"


config = Config()
