"""Benchmark data, generated deterministically from the real demo files.

Territories are pieces of the real US state shapes cut by a square grid; accounts
are points jittered around the real ZIP centroids. The same seed gives the same
accounts, and the territories depend on the files only.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, shape

DEMO_DATA = Path(__file__).resolve().parent.parent / "demo_data"
STATES_FILE = DEMO_DATA / "us-states.json"
ZIPCODES_FILE = DEMO_DATA / "us_zipcodes.csv"

TARGET_PIECES = 2000
# About 2 km at these latitudes: accounts stay near their ZIP centroid, yet do
# not stack on exactly the same point.
JITTER_DEGREES = 0.02
SEGMENTS = ("Consumer", "Corporate", "Home Office")


@dataclass(frozen=True)
class Piece:
    """One territory: the part of a state inside one grid cell."""

    state: str
    state_code: str
    column: int
    row: int
    shape: MultiPolygon

    @property
    def name(self) -> str:
        return f"{self.state} {self.column}:{self.row}"


@dataclass(frozen=True)
class ZipCentroids:
    codes: list[str]
    cities: list[str]
    states: list[str]
    countries: list[str]
    lon: np.ndarray
    lat: np.ndarray


@dataclass(frozen=True)
class AccountRows:
    """Generated accounts as columns; row ``i`` is account ``i``."""

    zip_index: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    segment_index: np.ndarray

    def __len__(self) -> int:
        return len(self.zip_index)


def _polygons(geometry: shapely.Geometry) -> list[Polygon]:
    if isinstance(geometry, Polygon):
        return [geometry] if geometry.area > 0 else []
    if hasattr(geometry, "geoms"):
        return [polygon for part in geometry.geoms for polygon in _polygons(part)]
    return []


def polygonal(geometry: shapely.Geometry) -> MultiPolygon | None:
    """The polygonal parts of ``geometry`` as one MultiPolygon, or None if none.

    Repairs and cuts can leave lines and points along edges; a territory keeps
    only its area.
    """
    polygons = _polygons(geometry)
    return MultiPolygon(polygons) if polygons else None


def load_states(path: Path = STATES_FILE) -> dict[str, MultiPolygon]:
    """Each state's shape, made valid, polygonal parts only."""
    features = json.loads(path.read_text(encoding="utf-8"))["features"]
    states: dict[str, MultiPolygon] = {}
    for feature in features:
        valid = polygonal(shapely.make_valid(shape(feature["geometry"])))
        if valid is not None:
            states[feature["properties"]["name"]] = valid
    return states


def load_zip_centroids(path: Path = ZIPCODES_FILE) -> ZipCentroids:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["lat"] and row["long"]]
    return ZipCentroids(
        codes=[row["zip_code"] for row in rows],
        cities=[row["city"] for row in rows],
        states=[row["state"] for row in rows],
        countries=[row["country"] for row in rows],
        lon=np.array([float(row["long"]) for row in rows]),
        lat=np.array([float(row["lat"]) for row in rows]),
    )


def state_codes(states: dict[str, MultiPolygon], zips: ZipCentroids) -> dict[str, str]:
    """Each state's postal code: the code most ZIP centroids inside its shape carry.

    Read from the data rather than typed in, so the state-list rules use exactly
    the values the accounts hold.
    """
    codes: dict[str, str] = {}
    for name, geometry in states.items():
        inside = shapely.contains_xy(geometry, zips.lon, zips.lat)
        tally = Counter(zips.states[i] for i in np.flatnonzero(inside))
        if tally:
            codes[name] = tally.most_common(1)[0][0]
    return codes


def _cells(geometry: MultiPolygon, cell: float) -> Iterator[tuple[int, int, Polygon]]:
    min_x, min_y, max_x, max_y = geometry.bounds
    for column in range(math.floor(min_x / cell), math.ceil(max_x / cell)):
        for row in range(math.floor(min_y / cell), math.ceil(max_y / cell)):
            x, y = column * cell, row * cell
            yield column, row, shapely.box(x, y, x + cell, y + cell)


def cut_by_grid(
    states: dict[str, MultiPolygon], codes: dict[str, str], cell: float
) -> list[Piece]:
    """Every non-empty intersection of a state with a grid cell of ``cell`` degrees."""
    pieces = []
    for name, geometry in states.items():
        for column, row, box in _cells(geometry, cell):
            part = polygonal(shapely.intersection(geometry, box))
            if part is not None:
                pieces.append(Piece(name, codes.get(name, ""), column, row, part))
    return pieces


def count_pieces(states: dict[str, MultiPolygon], cell: float) -> int:
    total = 0
    for geometry in states.values():
        boxes = [box for _, _, box in _cells(geometry, cell)]
        total += int((shapely.area(shapely.intersection(geometry, boxes)) > 0).sum())
    return total


def grid_cell(states: dict[str, MultiPolygon], target: int = TARGET_PIECES) -> float:
    """The grid cell size, in degrees, that cuts the states into about ``target``."""
    small, large = 0.1, 10.0
    for _ in range(10):
        middle = math.sqrt(small * large)
        if count_pieces(states, middle) > target:
            small = middle
        else:
            large = middle
    return round(large, 4)


def generate_accounts(zips: ZipCentroids, count: int, seed: int) -> AccountRows:
    """``count`` accounts: a random ZIP centroid each, moved by a small gaussian."""
    rng = np.random.default_rng(seed)
    zip_index = rng.integers(0, len(zips.codes), size=count)
    lon = zips.lon[zip_index] + rng.normal(0.0, JITTER_DEGREES, size=count)
    lat = zips.lat[zip_index] + rng.normal(0.0, JITTER_DEGREES, size=count)
    segment_index = rng.integers(0, len(SEGMENTS), size=count)
    return AccountRows(zip_index, lon.round(6), lat.round(6), segment_index)
