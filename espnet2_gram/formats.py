"""The audio formats of the project, in one table that every module reads.

A format names the channels of its audio and the features GRAM computes from them
(``logmel``: one log-mel per channel; ``foa_intensity``: FOA's log-mels and intensity vectors);
``rendered`` formats are the spatial ones that the room simulation renders (RIR banks, scenes,
evaluation sets), ``mono`` is the dry source. How the rooms render a format is its ``receivers``:
``hrtf`` (two ears at the head centre, with measured HRIRs), ``sh1`` (first-order spherical
harmonics at the head centre) or ``omni`` (omnidirectional capsules at ``receiver_offsets``,
metres in the listener frame: x front, y left, z up). The
order of :data:`FORMATS` is the order of reports. The ESPnet frontend of GRAMTask that reads a
format carries its name (``--frontend binaural``).

The recipes' shell scripts ask this table before any environment exists, so the module needs
nothing beyond the standard library: ``python3 espnet2_gram/formats.py --rendered`` prints the
rendered formats on one line.
"""

import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple


@dataclass(frozen=True)
class AudioFormat:
    name: str
    channels: Tuple[str, ...]
    description: str
    rendered: bool
    convention: str = ""
    features: str = "logmel"
    receivers: str = ""
    receiver_offsets: Tuple[Tuple[float, float, float], ...] = ()

    @property
    def num_channels(self) -> int:
        return len(self.channels)

    @property
    def layout(self) -> str:
        """``"2 channels (left, right)"``, as error messages state it."""
        plural = "s" if self.num_channels > 1 else ""
        names = ", ".join(self.channels) + (f"; {self.convention}" if self.convention else "")
        return f"{self.num_channels} channel{plural} ({names})"


def _tetrahedron(radius: float) -> Tuple[Tuple[float, float, float], ...]:
    """Capsule positions of the STARSS23 / Eigenmike tetrahedral subset (listener frame)."""
    angles = ((45, 35), (-45, -35), (135, -35), (-135, 35))
    return tuple((radius * math.cos(math.radians(el)) * math.cos(math.radians(az)),
                  radius * math.cos(math.radians(el)) * math.sin(math.radians(az)),
                  radius * math.sin(math.radians(el))) for az, el in angles)


FORMATS: Dict[str, AudioFormat] = {f.name: f for f in (
    AudioFormat("binaural", ("left", "right"), "binaural", rendered=True, receivers="hrtf"),
    AudioFormat("foa", ("W", "Y", "Z", "X"), "first-order Ambisonics", rendered=True,
                convention="ACN order, SN3D", features="foa_intensity", receivers="sh1"),
    AudioFormat("mic", ("M1", "M2", "M3", "M4"), "tetrahedral microphone array", rendered=True,
                convention="STARSS23 MIC: capsules at azimuth/elevation 45/35, -45/-35,"
                           " 135/-35, -135/35 deg on a 4.2-cm sphere",
                receivers="omni", receiver_offsets=_tetrahedron(0.042)),
    AudioFormat("mono", ("mono",), "mono", rendered=False),
)}
RENDERED = tuple(name for name, f in FORMATS.items() if f.rendered)


def get_format(name: str, option: str = "format", rendered: bool = False) -> AudioFormat:
    """The format ``name``; an unknown one (or, with ``rendered``, one the rooms do not render)
    is a ``ValueError`` naming ``option`` and the choices."""
    choices = RENDERED if rendered else tuple(FORMATS)
    if name not in choices:
        raise ValueError(f"{option} must be one of {list(choices)}, got {name!r}")
    return FORMATS[name]


def num_channels(name: str) -> int:
    return get_format(name).num_channels


def format_with_channels(count: int) -> Optional[AudioFormat]:
    """The format with ``count`` channels (None if there is none or several)."""
    found = [f for f in FORMATS.values() if f.num_channels == count]
    return found[0] if len(found) == 1 else None


def main(argv=None) -> None:
    import argparse

    p = argparse.ArgumentParser(description="The audio formats, for shell scripts.")
    p.add_argument("--rendered", action="store_true", help="only the rendered (spatial) ones")
    args = p.parse_args(argv)
    print(" ".join(RENDERED if args.rendered else FORMATS))


if __name__ == "__main__":
    main()
