"""Option enums (MONAI style: options are ``StrEnum`` members that compare equal to their string)."""

from __future__ import annotations

from enum import Enum


class StrEnum(str, Enum):
    """String enum whose members compare equal to, and print as, their value."""

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def parse(cls, value: str | StrEnum, argname: str = "value"):
        """Return the member for ``value`` or raise a ``ValueError`` listing the valid options."""
        try:
            return cls(str(value).lower()) if not isinstance(value, cls) else value
        except ValueError:
            options = ", ".join(repr(m.value) for m in cls)
            raise ValueError(f"{argname}={value!r} is not a valid option; expected one of {options}.") from None
