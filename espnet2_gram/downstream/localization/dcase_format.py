"""The DCASE SELD metadata format: CSV rows read and written, and the class list.

Metadata rows (one per active event and 100-ms frame, no header)::

    frame, class index, source index, azimuth, elevation[, distance]
    frame, class index, source index, x, y, z, distance

DCASE 2022/2023 files have 5 columns, DCASE 2024 files add the distance in centimetres;
the 7-column form is the Cartesian one the DCASE baselines write for predictions (a direction
vector of any length; the 2023 baseline writes distance 0). Angles are in degrees,
listener-relative (x front, y left, z up; azimuth counter-clockwise from the front, +90 =
left; elevation up), as in :mod:`espnet2_gram.simulation.geometry`. ``classes.txt`` holds
"index name" lines.
"""

import math
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence

from espnet2_gram.simulation.geometry import cart_to_sph, sph_to_cart
from espnet2_gram.utils.fileio import atomic_open

class DcaseRow(NamedTuple):
    """One metadata row; ``distance`` in centimetres, None in 5-column files."""

    frame: int
    class_index: int
    source: int
    azimuth: float
    elevation: float
    distance: Optional[float] = None


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        value = float(text)  # "3.0" is accepted, "3.5" is not
        if not value.is_integer():
            raise ValueError(text) from None
        return int(value)


def parse_finite_float(text: str) -> float:
    """``float(text)``; ``ValueError`` for text that is not a finite number."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def parse_fields(fields: Sequence[str], spec: Sequence[tuple], where: str) -> list:
    """The values of ``fields`` by ``spec`` entries ``(name, parse, check, rule)``; a value
    that does not parse or fails its check is a ``ValueError`` naming ``where`` and the rule."""
    values = []
    for text, (what, parse, check, rule) in zip(fields, spec):
        try:
            value = parse(text)
        except ValueError:
            raise ValueError(f"{where}: bad {what} {text!r}") from None
        if not check(value):
            raise ValueError(f"{where}: {what} {text!r} must be {rule}")
        values.append(value)
    return values


_INDEX_FIELDS = (
    ("frame", _parse_int, lambda v: v >= 0, ">= 0"),
    ("class index", _parse_int, lambda v: v >= 0, ">= 0"),
    ("source index", _parse_int, lambda v: v >= 0, ">= 0"),
)
_DISTANCE = ("distance", parse_finite_float, lambda v: v >= 0, ">= 0")
_POLAR = (("azimuth", parse_finite_float, lambda v: -180 <= v <= 180, "in [-180, 180]"),
          ("elevation", parse_finite_float, lambda v: -90 <= v <= 90, "in [-90, 90]"))
_CARTESIAN = tuple((name, parse_finite_float, lambda v: True, "") for name in "xyz")
# number of fields -> field parsers
_LAYOUTS = {5: _INDEX_FIELDS + _POLAR, 6: _INDEX_FIELDS + _POLAR + (_DISTANCE,),
            7: _INDEX_FIELDS + _CARTESIAN + (_DISTANCE,)}


def read_dcase_csv(path, num_frames: Optional[int] = None) -> List[DcaseRow]:
    """Rows of a DCASE metadata or prediction CSV: 5 (polar), 6 (polar + distance in cm) or 7
    (Cartesian x, y, z + distance) columns; Cartesian rows are returned as azimuth/elevation.

    Blank lines are skipped; every other line must have the same number of fields. With
    ``num_frames`` (the recording's length in label frames), a frame at or beyond it is an
    error. Raises ``FileNotFoundError`` or ``ValueError`` naming ``file:line`` and the field.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such metadata file")
    rows: List[DcaseRow] = []
    width = None
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = [v.strip() for v in line.split(",")]
            if len(fields) not in _LAYOUTS:
                raise ValueError(
                    f"{path}:{lineno}: expected 5 or 6 comma-separated fields (frame, class,"
                    f" source, azimuth, elevation[, distance]) or 7 (frame, class, source, x,"
                    f" y, z, distance), got {len(fields)}: {line.strip()!r}"
                )
            if width is None:
                width = len(fields)
            elif len(fields) != width:
                raise ValueError(
                    f"{path}:{lineno}: {len(fields)} fields where the previous lines have {width}"
                )
            values = parse_fields(fields, _LAYOUTS[width], f"{path}:{lineno}")
            if num_frames is not None and values[0] >= num_frames:
                raise ValueError(f"{path}:{lineno}: frame {values[0]} is beyond the recording"
                                 f" ({num_frames} label frames: 0..{num_frames - 1})")
            if width == 7:
                if not any(values[3:6]):
                    raise ValueError(f"{path}:{lineno}: x, y, z = 0, 0, 0 has no direction")
                azimuth, elevation, _ = cart_to_sph(values[3:6])
                values[3:6] = [float(azimuth), float(elevation)]
            rows.append(DcaseRow(*values))
    return rows


def _round_half_away(value: float) -> int:
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def format_dcase_csv(rows: Iterable[Sequence], exact: bool = False,
                     cartesian: bool = False) -> str:
    """CSV text of ``rows`` (frame, class, source, azimuth, elevation[, distance in cm]),
    sorted by frame, class and source.

    By default azimuth and elevation are rounded to whole degrees and the distance to whole
    centimetres, as in DCASE metadata; ``exact`` writes them with full precision (Python's
    shortest round-trip repr). ``cartesian`` writes 7 columns, frame, class, source, x, y,
    z, distance, with the unit direction vector at full precision and distance 0 where rows
    have none (as the DCASE 2023 baseline writes its predictions). Otherwise rows with a
    distance give 6 columns, rows without (5 fields, or a None distance) 5 columns; mixing
    both in one file raises ``ValueError``.
    """
    def number(value: float):
        return repr(float(value)) if exact or cartesian else _round_half_away(value)

    out = []
    with_distance = set()
    for row in rows:
        if len(row) not in (5, 6):
            raise ValueError(f"a DCASE row has 5 or 6 fields, got {len(row)}: {row!r}")
        row = tuple(row) + (None,) * (6 - len(row))
        frame, cls, source = (int(v) for v in row[:3])
        if min(frame, cls, source) < 0 or any(int(v) != v for v in row[:3]):
            raise ValueError(f"frame, class and source must be integers >= 0, got {row!r}")
        if not all(math.isfinite(float(v)) for v in row[3:5]):
            raise ValueError(f"azimuth and elevation must be finite, got {row!r}")
        if row[5] is not None and not (math.isfinite(float(row[5])) and row[5] >= 0):
            raise ValueError(f"distance must be finite and >= 0, got {row!r}")
        with_distance.add(row[5] is not None)
        direction = sph_to_cart(row[3], row[4]) if cartesian else row[3:5]
        values = [frame, cls, source, *(number(v) for v in direction)]
        if row[5] is not None or cartesian:
            values.append(number(row[5] or 0.0))
        out.append(values)
    if len(with_distance) > 1:
        raise ValueError("rows with and without a distance cannot share one DCASE file")
    out.sort(key=lambda v: (v[0], v[1], v[2]))
    return "".join(",".join(str(v) for v in values) + "\n" for values in out)


def write_dcase_csv(path, rows: Iterable[Sequence], exact: bool = False,
                    cartesian: bool = False) -> None:
    """Atomically write ``rows`` as a DCASE CSV (see :func:`format_dcase_csv`)."""
    text = format_dcase_csv(rows, exact, cartesian)
    with atomic_open(path, encoding="utf-8", newline="") as f:
        f.write(text)


def read_classes(path) -> List[str]:
    """Class names of an ``index name`` file, in index order (indices must be 0..n-1)."""
    path = Path(path)
    names: Dict[int, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split(maxsplit=1)
            if len(parts) != 2 or not parts[0].isdigit():
                raise ValueError(f"{path}:{lineno}: expected 'index name', got {line.strip()!r}")
            names[int(parts[0])] = parts[1].strip()
    if sorted(names) != list(range(len(names))):
        raise ValueError(f"{path}: class indices must be 0..{len(names) - 1} without gaps")
    return [names[i] for i in range(len(names))]
