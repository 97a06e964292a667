from __future__ import annotations

from .enums import StrEnum
from .validation import check_complex, check_finite, check_shape, check_positive, to_complex_tensor
