"""What the synthetic generator makes: :class:`SynthSpec`, the generator's option object.

Kept apart from :mod:`cpc_core.synth.generator` (numpy, pandas) so that the configuration's
``synth:`` section (:class:`cpc_core.config.core.SynthConfig`), which takes its defaults from
:class:`SynthSpec` and converts into it, loads without them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cpc_core.netmob import facts as netmob

__all__ = ["DEMO_CITIES", "SynthSpec", "check_cities", "text_bytes"]

#: Default cities of the demo-sized data set (a large, two medium and a small metropole).
DEMO_CITIES = ("Paris", "Lyon", "Toulouse", "Nice")


@dataclass(frozen=True)
class SynthSpec:
    """What to generate. ``scale`` is the number of tiles as a fraction of the real city's.

    The library's option object; the configuration's ``synth:`` section
    (:class:`cpc_core.config.core.SynthConfig`) takes its defaults from here and converts into
    it with ``to_spec()``.
    """

    cities: tuple[str, ...] = DEMO_CITIES
    services: tuple[str, ...] = netmob.STUDY_SERVICES
    start: dt.date = netmob.NETMOB_START
    days: int = 28
    directions: tuple[str, ...] = ("DL",)
    scale: float = 0.01
    seed: int = 0
    lag_h: int = 0
    #: lambda of simultaneous autoregressive (SAR) errors of the validation outcome over the
    #: communes' queen contiguity: ``u = (I - lambda W)^-1 eps``; 0 gives independent errors.
    spatial_errors: float = 0.0

    def __post_init__(self):
        if not -1 < self.spatial_errors < 1:
            raise ValueError(f"spatial_errors={self.spatial_errors}: must lie in (-1, 1)")
        check_cities(self.cities)
        bad = [d for d in self.directions if d not in netmob.DIRECTIONS]
        if bad:
            raise ValueError(f"unknown directions {bad}; allowed: DL, UL")
        if not 0 < self.scale <= 1:
            raise ValueError(f"scale={self.scale}: must be in (0, 1] (fraction of the real tile count)")
        if self.days < 1:
            raise ValueError(f"days={self.days}: must be >= 1")
        if abs(self.lag_h) > 24:
            raise ValueError(f"lag_h={self.lag_h}: must be within +-24 hours")
        if not self.services:
            raise ValueError("services: at least one is needed")

    @property
    def day_list(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range(self.days)]

    def n_communes(self, city: str) -> int:
        """Communes per city: the real count (``docs/method.md`` section 8) times ``scale ** 0.25``."""
        real = _REAL_COMMUNES[city]
        return max(3, int(round(real * self.scale**0.25)))


def check_cities(cities: Sequence[str]) -> tuple[str, ...]:
    """``cities`` as a tuple, or a ``ValueError`` naming the unknown ones and the allowed names.

    The one check of a city name, for :class:`SynthSpec` and the configuration's ``synth:``
    section.

    Examples
    --------
    >>> check_cities(["Nice"])
    ('Nice',)
    """
    unknown = [c for c in cities if c not in netmob.CITY_DIMS]
    if unknown:
        raise ValueError(f"unknown cities {unknown}; allowed: {', '.join(netmob.CITIES)}")
    return tuple(cities)


_REAL_COMMUNES = {
    "Paris": 201, "Lille": 119, "Lyon": 106, "Saint-Etienne": 94, "Rennes": 80, "Metz": 78,
    "Grenoble": 75, "Toulouse": 67, "Montpellier": 61, "Strasbourg": 56, "Bordeaux": 51,
    "Dijon": 48, "Nantes": 48, "Tours": 44, "Clermont-Ferrand": 43, "Orleans": 41, "Mans": 40,
    "Nancy": 38, "Nice": 26, "Marseille": 25,
}


def text_bytes(spec: SynthSpec) -> int:
    """About the bytes of NetMob text ``spec`` generates (96 values a day, ~7 characters each).

    The size hint of its cluster (``cluster.processes: auto``: threads for a small input).

    Examples
    --------
    >>> text_bytes(SynthSpec(cities=("Nice",), days=1, scale=0.01)) > 0
    True
    """
    tiles = sum(max(1, round(spec.scale * netmob.CITY_TILE_COUNTS[c])) for c in spec.cities)
    return int(tiles * spec.days * len(spec.services) * len(spec.directions) * 96 * 7)
