"""Facts about the NetMob23 input format, in one place.

Everything here is a property of the published dataset (Martinez-Durive et al. 2023), not a
tunable: city names and grid shapes, the file layout, the 15-minute slots of a *local*
(Europe/Paris) day and how they map to UTC instants, and the known outage days. See
``docs/method.md`` section 2.1, ``docs/real-data.md`` and ``docs/decisions.md``.

The time axis rule
------------------
A NetMob file for local day ``D`` holds one value per 15-minute slot that *exists* in
Europe/Paris on ``D``: 96 on a normal day, 92 on 2019-03-31 (02:00-02:45 do not exist) and 100
on an autumn fall-back day. The store keeps UTC instants, so a contiguous run of days maps to
a contiguous, regular 15-minute UTC axis and nothing is shifted. Because Paris offsets are whole
hours, every UTC hour lies inside exactly one local day; the cube is therefore chunked by hour
along time so that each file owns whole chunks (see :mod:`cpc_core.cube.store`).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

# numpy and pandas are imported by the functions that build time axes: the CLI reads the city
# names and services from here to build its parser, and `cpc --help` should not pay for pandas.
if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "CITIES",
    "CITY_DIMS",
    "CITY_ORIGINS",
    "GRID_CRS",
    "KNOWN_OUTAGES",
    "LOCAL_TZ",
    "SLOT_MINUTES",
    "STUDY_SERVICES",
    "DIRECTIONS",
    "FileKey",
    "COMPRESSIONS",
    "day_slots_utc",
    "file_path",
    "split_compression",
    "parse_file_path",
    "slots_per_day",
    "time_axis",
]

LOCAL_TZ = ZoneInfo("Europe/Paris")
SLOT_MINUTES = 15
#: CRS of the 100 m tile grid (NTF Paris / Lambert II etendu).
GRID_CRS = "EPSG:27572"
TILE_SIZE_M = 100.0
DIRECTIONS = ("DL", "UL")
#: The three services the seed study uses.
STUDY_SERVICES = ("Tor", "Web_Adult", "YouTube")

#: (rows, cols) of each city's 100 m grid (``cities_dims`` of the challenge).
CITY_DIMS: dict[str, tuple[int, int]] = {
    "Bordeaux": (334, 342),
    "Clermont-Ferrand": (208, 268),
    "Dijon": (195, 234),
    "Grenoble": (409, 251),
    "Lille": (330, 342),
    "Lyon": (426, 287),
    "Mans": (228, 246),
    "Marseille": (211, 210),
    "Metz": (226, 269),
    "Montpellier": (334, 327),
    "Nancy": (151, 165),
    "Nantes": (277, 425),
    "Nice": (150, 214),
    "Orleans": (282, 256),
    "Paris": (409, 346),
    "Rennes": (423, 370),
    "Saint-Etienne": (305, 501),
    "Strasbourg": (296, 258),
    "Toulouse": (280, 347),
    "Tours": (251, 270),
}
CITIES = tuple(CITY_DIMS)

#: South-west corner (x0, y0) of each grid in EPSG:27572, metres. Lyon is exact (checked on
#: the published sample tile 66); the others are the metropole's bounding box snapped down to
#: 100 m, which is how the challenge grids were laid out (the bounding boxes of the metropoles'
#: communes span exactly ``CITY_DIMS`` cells). Used to lay out synthetic grids; real tile
#: geometry always comes from the city's GeoJSON.
CITY_ORIGINS: dict[str, tuple[float, float]] = {
    "Bordeaux": (345500, 1975400),
    "Clermont-Ferrand": (647200, 2075800),
    "Dijon": (793600, 2250300),
    "Grenoble": (853900, 2000400),
    "Lille": (632100, 2611800),
    "Lyon": (783100, 2064700),
    "Mans": (428300, 2323700),
    "Marseille": (838700, 1804500),
    "Metz": (866200, 2450400),
    "Montpellier": (706800, 1830500),
    "Nancy": (875100, 2407700),
    "Nantes": (278200, 2241200),
    "Nice": (986100, 1860700),
    "Orleans": (557400, 2306800),
    "Paris": (585900, 2405200),
    "Rennes": (280000, 2333800),
    "Saint-Etienne": (733500, 2040900),
    "Strasbourg": (983600, 2395400),
    "Toulouse": (508400, 1835400),
    "Tours": (456700, 2254000),
}

#: Tiles listed in the real traffic files (the study area inside each grid).
CITY_TILE_COUNTS: dict[str, int] = {
    "Bordeaux": 57846,
    "Clermont-Ferrand": 30393,
    "Dijon": 23682,
    "Grenoble": 54412,
    "Lille": 67750,
    "Lyon": 54013,
    "Mans": 26859,
    "Marseille": 23663,
    "Metz": 30744,
    "Montpellier": 44148,
    "Nancy": 14353,
    "Nantes": 53370,
    "Nice": 16349,
    "Orleans": 33758,
    "Paris": 81731,
    "Rennes": 71597,
    "Saint-Etienne": 72502,
    "Strasbourg": 34023,
    "Toulouse": 46269,
    "Tours": 39131,
}

#: Days with missing or near-zero traffic in the real data, per city ("*" = all cities).
KNOWN_OUTAGES: dict[str, tuple[str, ...]] = {
    "*": ("2019-04-14", "2019-05-12"),
    "Bordeaux": ("2019-04-09", "2019-04-12", "2019-05-22", "2019-05-23", "2019-05-24", "2019-05-25"),
    "Toulouse": ("2019-04-12", "2019-05-22", "2019-05-23", "2019-05-24", "2019-05-25"),
}

#: The dataset's window.
NETMOB_START = dt.date(2019, 3, 16)
NETMOB_END = dt.date(2019, 5, 31)

_FILE_RE = re.compile(
    r"^(?P<city>[^_/]+)_(?P<service>.+)_(?P<date>\d{8})_(?P<direction>DL|UL)\.txt$"
)

#: Compressed copies of a traffic file that are read transparently: the suffix after ``.txt``
#: and fsspec's name of the codec (archives of the dataset are often stored compressed).
#: Matched exactly (lower case), like the rest of the name.
COMPRESSIONS: dict[str, str] = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".xz": "xz"}


def split_compression(name: str) -> tuple[str, str | None]:
    """``(name without a compression suffix, fsspec codec or None)``.

    Examples
    --------
    >>> split_compression("Lyon_Tor_20190316_DL.txt.gz")
    ('Lyon_Tor_20190316_DL.txt', 'gzip')
    >>> split_compression("Lyon_Tor_20190316_DL.txt")
    ('Lyon_Tor_20190316_DL.txt', None)
    """
    for suffix, codec in COMPRESSIONS.items():
        if name.endswith(".txt" + suffix):
            return name[: -len(suffix)], codec
    return name, None


@dataclass(frozen=True, order=True)
class FileKey:
    """Identity of one NetMob traffic file: city, service, local day and direction."""

    city: str
    service: str
    day: dt.date
    direction: str

    @property
    def relpath(self) -> str:
        """Path of the file relative to the NetMob root, as the dataset lays it out."""
        return file_path(self.city, self.service, self.day, self.direction)


def outage_days(city: str) -> tuple[dt.date, ...]:
    """Known outage days of ``city`` (all-city days included), sorted."""
    days = set(KNOWN_OUTAGES["*"]) | set(KNOWN_OUTAGES.get(city, ()))
    return tuple(sorted(dt.date.fromisoformat(d) for d in days))


def file_path(city: str, service: str, day: dt.date, direction: str) -> str:
    """Relative path ``<City>/<Service>/<YYYYMMDD>/<City>_<Service>_<YYYYMMDD>_<DIR>.txt``.

    Examples
    --------
    >>> file_path("Lyon", "YouTube", dt.date(2019, 3, 16), "DL")
    'Lyon/YouTube/20190316/Lyon_YouTube_20190316_DL.txt'
    """
    ymd = day.strftime("%Y%m%d")
    return f"{city}/{service}/{ymd}/{city}_{service}_{ymd}_{direction}.txt"


def parse_file_path(path: str | Path) -> FileKey:
    """Inverse of :func:`file_path`; accepts a path with any prefix, and a compressed copy
    (``.txt.gz``, ``.txt.bz2``, ``.txt.zst``, ``.txt.xz``: :data:`COMPRESSIONS`).

    Raises
    ------
    ValueError
        If the name or its folders do not follow the NetMob layout.
    """
    p = Path(path)
    m = _FILE_RE.match(split_compression(p.name)[0])
    parts = p.parts
    if m is None or len(parts) < 4:
        raise ValueError(f"{path}: not a NetMob traffic file name (<City>_<Service>_<YYYYMMDD>_<DL|UL>.txt)")
    city, service, ymd, direction = m["city"], m["service"], m["date"], m["direction"]
    if (parts[-4], parts[-3], parts[-2]) != (city, service, ymd):
        raise ValueError(
            f"{path}: folders {parts[-4]}/{parts[-3]}/{parts[-2]} do not match the file name "
            f"(expected {city}/{service}/{ymd})"
        )
    try:
        day = dt.datetime.strptime(ymd, "%Y%m%d").date()
    except ValueError as e:
        raise ValueError(f"{path}: {ymd} is not a calendar date ({e})") from None
    return FileKey(city, service, day, direction)


def day_slots_utc(day: dt.date) -> pd.DatetimeIndex:
    """UTC instants of the 15-minute slots that exist on local (Europe/Paris) ``day``.

    Examples
    --------
    >>> len(day_slots_utc(dt.date(2019, 3, 31)))
    92
    >>> str(day_slots_utc(dt.date(2019, 3, 31))[8])
    '2019-03-31 01:00:00'
    """
    import pandas as pd

    start = dt.datetime.combine(day, dt.time(0), tzinfo=LOCAL_TZ).astimezone(dt.UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=LOCAL_TZ).astimezone(
        dt.UTC
    )
    idx = pd.date_range(start, end, freq=f"{SLOT_MINUTES}min", inclusive="left")
    return idx.tz_localize(None)


def _utc_start(day: dt.date) -> dt.datetime:
    """The UTC instant (naive) at which local ``day`` begins: the first of its slots."""
    local = dt.datetime.combine(day, dt.time(0), tzinfo=LOCAL_TZ)
    return local.astimezone(dt.UTC).replace(tzinfo=None)


_SLOT = dt.timedelta(minutes=SLOT_MINUTES)


def slots_per_day(day: dt.date) -> int:
    """Number of value columns a NetMob file of local ``day`` has (96, 92 or 100).

    The length of :func:`day_slots_utc`, computed with ``datetime`` alone (the planner and the
    generator ask it for every file: building the index took ~0.2 ms a call).

    Examples
    --------
    >>> [slots_per_day(dt.date(2019, 3, d)) for d in (30, 31)], slots_per_day(dt.date(2019, 10, 27))
    ([96, 92], 100)
    """
    return (_utc_start(day + dt.timedelta(days=1)) - _utc_start(day)) // _SLOT


def time_axis(first_day: dt.date, last_day: dt.date) -> pd.DatetimeIndex:
    """Contiguous UTC 15-minute axis covering local days ``first_day`` .. ``last_day``."""
    import pandas as pd

    start = day_slots_utc(first_day)[0]
    end = day_slots_utc(last_day)[-1]
    return pd.date_range(start, end, freq=f"{SLOT_MINUTES}min")


def day_offsets(first_day: dt.date, days: list[dt.date] | tuple[dt.date, ...]) -> np.ndarray:
    """Index of each day's first slot on the axis that starts at ``first_day``."""
    import numpy as np

    t0 = _utc_start(first_day)
    return np.array([(_utc_start(d) - t0) // _SLOT for d in days], dtype=np.int64)
