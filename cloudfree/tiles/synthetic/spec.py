"""The settings of a synthetic region (``regions.<name>.synthetic``) and its random streams.

The schema (``$defs/synthetic``) holds every default and allowed value; :class:`SyntheticSpec`
is built from the resolved section and checks what the schema cannot express (cross-key
limits, dates, the CRS), with errors naming the key.  :func:`check_size` refuses a region
too large to generate (``max_tiles``, ``max_memory_gb``) before anything is allocated.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import IntEnum
from typing import Any

from rasterio.crs import CRS
from rasterio.errors import CRSError

from cloudfree.errors import ConfigError
from cloudfree.tiles.grid import DEFAULT_MAX_TILES, check_memory
from cloudfree.tiles.settings import check_keys

SOURCE = "synthetic"
REVISIT_DAYS = 5
# Peak memory of rendering one date, per pixel of the region grid: the scene's static
# fields, 13 float32 bands of surface, observation and noise, the cloud fields' FFTs
# (measured: about 550 bytes).
BYTES_PER_PIXEL = 600
# With Sentinel-1: the soil retention field and two dates' S1 (the one being written, the
# next), kept while a date renders (S1's own rendering peaks below the optical's).
S1_BYTES_PER_PIXEL = 20


class Stream(IntEnum):
    """Purposes of the random streams, ``np.random.default_rng([seed, purpose, ...])``.

    3 is the block-to-split draw of :func:`cloudfree.tiles.grid.block_splits`.  The radar
    streams (20 on) are never drawn from by the optical weather, so Sentinel-1 does not change
    with ``cloudiness``, ``haze`` or ``mask_errors``."""

    LANDCOVER = 1
    TEXTURE = 2
    DATES = 4
    SUN = 5
    WEATHER = 10
    CLOUDS = 11
    NOISE = 12
    HAZE = 13
    CHANGES = 14
    S1_DATES = 20  # Sentinel-1 revisit phase and outages
    RAIN = 21  # the daily rain series behind the soil moisture
    SOIL = 22  # static soil-moisture retention field
    WIND = 23  # wind over water, per S1 date
    SPECKLE = 24  # per S1 date


def _bad(key: str, problem: str, value: Any) -> ConfigError:
    return ConfigError(f"synthetic spec: {key!r} {problem} (got {value!r})")


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything that determines a synthetic region (checked on construction)."""

    seed: int
    tiles_x: int
    tiles_y: int
    tile_size: int
    overlap: int
    n_dates: int
    start: str
    end: str
    cloudiness: float
    landcover: dict[str, float]
    crs: str
    origin: tuple[float, float]
    resolution: float
    val_fraction: float
    test_fraction: float
    haze: float
    outages: float
    change_rate: float
    mask_errors: bool
    native_resolution: bool
    exclude_dates: tuple[str, ...]
    test_only: bool
    max_tiles: int = DEFAULT_MAX_TILES
    max_memory_gb: float = 16.0
    s1: bool = False
    s1_revisit_days: int = 12
    s1_max_days: int = 6
    s1_outages: float = 0.1

    def __post_init__(self) -> None:
        def put(key: str, value: Any) -> None:
            object.__setattr__(self, key, value)

        for key in (
            "seed",
            "tiles_x",
            "tiles_y",
            "tile_size",
            "overlap",
            "n_dates",
            "max_tiles",
            "s1_revisit_days",
            "s1_max_days",
        ):
            put(key, int(getattr(self, key)))
        for key in ("cloudiness", "resolution", "val_fraction", "test_fraction", "haze"):
            put(key, float(getattr(self, key)))
        put("max_memory_gb", float(self.max_memory_gb))
        for key in ("outages", "change_rate", "s1_outages"):
            put(key, float(getattr(self, key)))
        put("s1", bool(self.s1))
        if self.s1_revisit_days < 1:
            raise _bad("s1_revisit_days", "must be >= 1", self.s1_revisit_days)
        if self.s1_max_days < 0:
            raise _bad("s1_max_days", "must be >= 0", self.s1_max_days)
        if not 0.0 <= self.s1_outages <= 1.0:
            raise _bad("s1_outages", "must be between 0 and 1", self.s1_outages)
        put("origin", (float(self.origin[0]), float(self.origin[1])))
        excluded = []
        for v in self.exclude_dates:
            try:
                excluded.append(date.fromisoformat(str(v)).isoformat())
            except ValueError:
                raise _bad("exclude_dates", "must hold ISO dates YYYY-MM-DD", v) from None
        put("exclude_dates", tuple(sorted(set(excluded))))
        if self.overlap >= self.tile_size:
            raise _bad(
                "overlap", f"must be smaller than tile_size ({self.tile_size})", self.overlap
            )
        if self.tiles_x * self.tiles_y < 3 and not self.test_only:
            raise _bad(
                "tiles_x",
                "* tiles_y must be >= 3 to have a train, val and test tile",
                (self.tiles_x, self.tiles_y),
            )
        if self.val_fraction + self.test_fraction >= 1.0 and not self.test_only:
            raise _bad(
                "test_fraction",
                "+ val_fraction must be < 1 to leave training tiles",
                self.test_fraction,
            )
        days = {}
        for key in ("start", "end"):
            v = getattr(self, key)
            try:
                days[key] = v if isinstance(v, date) else date.fromisoformat(str(v))
            except ValueError:
                raise _bad(key, "must be an ISO date YYYY-MM-DD", v) from None
            put(key, days[key].isoformat()[:10])
        if days["end"] < days["start"]:
            raise _bad("end", f"must not be before start ({self.start})", self.end)
        slots = (days["end"] - days["start"]).days // REVISIT_DAYS + 1
        if self.n_dates > slots:
            raise _bad(
                "n_dates",
                f"exceeds the {slots} {REVISIT_DAYS}-day revisits between "
                f"{self.start} and {self.end}",
                self.n_dates,
            )
        weights = {name: float(w) for name, w in self.landcover.items()}
        if sum(weights.values()) <= 0:
            raise _bad("landcover", "needs at least one positive weight", self.landcover)
        put("landcover", weights)
        try:
            crs = CRS.from_user_input(self.crs)
        except (CRSError, TypeError, ValueError):
            raise _bad("crs", "is not a valid CRS", self.crs) from None
        if not crs.is_projected:
            raise _bad("crs", "must be a projected (UTM) CRS in metres", self.crs)

    def __hash__(self) -> int:  # the landcover dict would make the generated one fail
        return hash(tuple(sorted(self.landcover.items())) + dataclasses.astuple(self)[:9])

    def as_dict(self) -> dict[str, Any]:
        """The spec as a ``synthetic`` config section (lists where the YAML has lists)."""
        d = dataclasses.asdict(self)
        return {**d, "origin": list(self.origin), "exclude_dates": list(self.exclude_dates)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SyntheticSpec:
        """Build from a resolved ``synthetic`` section (``cloudfree.config.source_settings``);
        missing or unknown keys and bad values raise ConfigError naming the key."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"synthetic spec must be a mapping, got {type(d).__name__}")
        check_keys("synthetic", d, cls)
        return cls(
            **{
                **d,
                "landcover": dict(d["landcover"]),
                "origin": tuple(d["origin"]),
                "exclude_dates": tuple(d["exclude_dates"]),
            }
        )

    @property
    def step(self) -> int:
        """Pixels between the upper-left corners of neighbouring tiles."""
        return self.tile_size - self.overlap

    @property
    def region_shape(self) -> tuple[int, int]:
        """(rows, cols) of the full region grid the tiles are cut from."""
        return (
            self.tiles_y * self.step + self.overlap,
            self.tiles_x * self.step + self.overlap,
        )

    @property
    def split_block(self) -> int:
        """Tiles per side of the spatial blocks that go to one split: 2 x 2 when the grid
        gives at least 8 such blocks, else single tiles."""
        return 2 if math.ceil(self.tiles_y / 2) * math.ceil(self.tiles_x / 2) >= 8 else 1


def check_size(spec: SyntheticSpec, where: str = "synthetic") -> None:
    """Refuse a region of more than ``max_tiles`` tiles, or whose one date would take more
    than ``max_memory_gb`` (or this machine's memory) to render, before anything is allocated:
    ConfigError naming the region and the keys under ``where`` (``regions.<name>.synthetic``)."""
    region = where.rsplit(".", 1)[0] if where.count(".") >= 2 else where
    n = spec.tiles_x * spec.tiles_y
    if n > spec.max_tiles:
        raise ConfigError(
            f"{region}: {where}.tiles_x * tiles_y = {spec.tiles_x} * {spec.tiles_y} = {n} "
            f"tiles, above {where}.max_tiles ({spec.max_tiles}); make the region smaller, or "
            "raise max_tiles if it is meant to be this large"
        )
    rows, cols = spec.region_shape
    check_memory(
        float(rows) * cols * (BYTES_PER_PIXEL + (S1_BYTES_PER_PIXEL if spec.s1 else 0)),
        spec.max_memory_gb, f"{where}.max_memory_gb",
        f"rendering one date of the {cols} x {rows} px region grid ({spec.tiles_x} x "
        f"{spec.tiles_y} tiles of {where}.tile_size {spec.tile_size} px)", region,
    )  # fmt: skip
