"""Special functions that NumPy has no ufunc for, as primitives with all their rules."""

from __future__ import annotations

__all__: list[str] = []
