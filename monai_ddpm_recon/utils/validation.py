"""Argument checks shared by operators, transforms and solvers.

Each check raises one ``TypeError``/``ValueError`` that names the argument and states what was expected.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def check_complex(name: str, x: torch.Tensor) -> torch.Tensor:
    """Require a complex torch tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    if not torch.is_complex(x):
        raise TypeError(f"{name} must be complex (complex64 or complex128), got dtype {x.dtype}.")
    return x


def check_finite(name: str, x: torch.Tensor) -> torch.Tensor:
    """Require every element to be finite (no NaN/Inf)."""
    if not bool(torch.isfinite(x).all()):
        n_bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} contains {n_bad} NaN/Inf value(s); expected finite values.")
    return x


def check_shape(name: str, x: torch.Tensor, expected: Sequence[int | None]) -> torch.Tensor:
    """Require ``x.shape`` to match ``expected`` (``None`` entries match any size)."""
    shape = tuple(x.shape)
    if len(shape) != len(expected) or any(e is not None and e != s for e, s in zip(expected, shape)):
        exp = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{name} has shape {shape}; expected {exp}.")
    return x


def check_positive(name: str, value: float, allow_zero: bool = False) -> float:
    """Require a finite positive (or non-negative) scalar."""
    bound = ">= 0" if allow_zero else "> 0"
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}.") from None
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}.")
    return v


def check_int(name: str, value, minimum: int = 1) -> int:
    """Require an integer ``>= minimum`` (bool and non-integral floats rejected)."""
    try:
        ok = not isinstance(value, bool) and float(value).is_integer() and int(value) >= minimum
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_bool(name: str, value) -> bool:
    """A boolean from Python or from a config / command line, where ``true``/``false`` arrive as strings."""
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ValueError(f"{name} must be true or false, got {value!r}.")
    return bool(value)


def check_unit_interval(name: str, value) -> float:
    """Require a number in ``[0, 1]``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if isinstance(value, bool) or not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}.")
    return v


def to_complex_tensor(name: str, x, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Convert numpy/torch input to a complex tensor, rejecting real input (phase would be lost silently)."""
    if isinstance(x, np.ndarray):
        if not np.iscomplexobj(x):
            raise TypeError(f"{name} must be complex, got real numpy dtype {x.dtype}.")
        x = torch.from_numpy(np.ascontiguousarray(x))
    check_complex(name, x)
    return x.to(dtype) if dtype is not None else x
