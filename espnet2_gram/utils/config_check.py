"""Type checks of YAML config sections against the dataclass fields they fill."""

import collections.abc
import dataclasses
import typing
from typing import Mapping

# type: (singular, plural, test); bool is not a number here, though Python says it is.
_SCALARS = {
    bool: ("true or false", "booleans", lambda v: isinstance(v, bool)),
    int: ("an integer", "integers", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    float: ("a number", "numbers",
            lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    str: ("a string", "strings", lambda v: isinstance(v, str)),
}


def check_field_types(cls, mapping: Mapping, where: str) -> None:
    """Raise ``ValueError`` ("<where>.<key> must be <type>, got <value>") for a value of the
    wrong type. ``Sequence[T]`` fields take a list as long as the field's default (if any).
    Unknown keys and fields of other types are left to the caller."""
    hints = typing.get_type_hints(cls)
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    for key, value in mapping.items():
        hint = hints.get(key)
        if hint in _SCALARS:
            expected, _, ok = _SCALARS[hint]
            valid = ok(value)
        elif (typing.get_origin(hint) is collections.abc.Sequence
              and typing.get_args(hint)[0] in _SCALARS):
            _, plural, ok = _SCALARS[typing.get_args(hint)[0]]
            default = defaults[key]
            size = len(default) if isinstance(default, (list, tuple)) else None
            expected = f"a list of {size or 'any number of'} {plural}"
            valid = (isinstance(value, (list, tuple)) and size in (None, len(value))
                     and all(ok(v) for v in value))
        else:
            continue
        if not valid:
            raise ValueError(f"{where}.{key} must be {expected}, got {value!r}")
