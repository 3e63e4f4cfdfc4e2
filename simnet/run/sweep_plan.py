"""The sweep file and its plan: which runs a sweep makes, and which of them are still to do.

Planning is pure (`plan_sweep`), so what a sweep will do can be checked and tested without root.
Each planned run is a `Point`: its overrides, a point id hashed from them (stable across
processes, machines and Python versions, unlike `hash()`) and a repetition index. Those two
identify a run in the results, which is what makes resuming exact: `pending_runs` drops every
(point id, repetition) already stored, so an interrupted sweep, resumed, ends with one row per
planned run.

Running them is `simnet.run.sweep`; a Dask cluster gets them as `simnet.run.cluster` batches.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simnet.errors import ScenarioError
from simnet.scenario.model import name_from_stem
from simnet.scenario.yaml_file import load_yaml_file

if TYPE_CHECKING:
    import pandas as pd

DOTTED_PATH = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"


DottedPath = Annotated[str, Field(pattern=DOTTED_PATH)]
# Every point is validated and planned before the first run (a few ms each), and a point is a
# network built and at least one call made: 10,000 points are days of calls already.
MAX_POINTS = 10_000
MAX_RUNS = 100_000  # points x repeat
# Each point's overrides are validated in full, so a value in `set` is checked once per point:
# the values (scalars, lists, mappings) of all points' overrides together are bounded too.
MAX_POINT_VALUES = 1_000_000


# --- the sweep file ---------------------------------------------------------------------------


class SweepSpec(BaseModel):
    """A sweep file, validated. `scenario` is resolved against the sweep file's folder on load."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="sweep", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    scenario: Path
    set: dict[DottedPath, Any] = Field(
        default_factory=dict, description="overrides applied to every point"
    )
    axes: dict[DottedPath, Annotated[list[Any], Field(min_length=1)]] = Field(
        default_factory=dict, description="every combination of these values is a point"
    )
    points: list[dict[DottedPath, Any]] | None = Field(
        default=None, min_length=1, description="explicit points instead of the product of axes"
    )
    repeat: int = Field(default=1, ge=1, le=10_000)

    @model_validator(mode="after")
    def _one_way_to_vary(self) -> SweepSpec:
        if self.points is not None and self.axes:
            raise ValueError("give either `axes` (their product) or explicit `points`, not both")
        if self.points is None and not self.axes:
            raise ValueError("nothing varies: give `axes` or `points`")
        for path, values in self.axes.items():
            seen: set[str] = set()
            for value in values:
                if _canonical(value) in seen:
                    raise ValueError(f"axis {path} lists {_short(value)} twice")
                seen.add(_canonical(value))
        for i, point in enumerate(self.points or []):
            if not point:
                raise ValueError(f"points[{i}] is empty")
        varied = set(self.axes) | {k for p in self.points or [] for k in p}
        if both := sorted(varied & set(self.set)):
            raise ValueError(f"{', '.join(both)}: both fixed in `set` and varied")
        count = self.point_count
        if count > MAX_POINTS:
            sizes = [len(v) for v in self.axes.values()]
            made = " x ".join(map(str, sizes)) if len(sizes) <= 6 else f"{len(sizes)} axes"
            made = made if self.points is None else "listed"
            raise ValueError(
                f"{count:,} points ({made}); a sweep has at most {MAX_POINTS:,}: "
                "vary fewer axes at once, or list the points you need under `points:`"
            )
        if count * self.repeat > MAX_RUNS:
            raise ValueError(
                f"{count:,} points x repeat {self.repeat:,} = {count * self.repeat:,} runs; a "
                f"sweep makes at most {MAX_RUNS:,}: lower `repeat`, or split the sweep"
            )
        if (held := self._point_values()) > MAX_POINT_VALUES:
            raise ValueError(
                f"the {count:,} points' overrides hold {held:,} values in all (each point "
                f"repeats `set`); at most {MAX_POINT_VALUES:,}: put large fixed values in the "
                "base scenario instead of `set`, or vary fewer points"
            )
        return self

    def _point_values(self) -> int:
        """The values of every point's overrides together, counted without making the points:
        `set` is in every point, and each value of an axis in its share of them."""
        count, seen = self.point_count, dict[int, int]()
        total = count * sum(_values(v, seen) for v in self.set.values())
        if self.points is not None:
            return total + sum(_values(v, seen) for p in self.points for v in p.values())
        for values in self.axes.values():
            total += count // len(values) * sum(_values(v, seen) for v in values)
        return total

    @field_validator("scenario")
    @classmethod
    def _a_path(cls, value: Path) -> Path:
        if "\0" in str(value):
            raise ValueError("a path cannot hold a NUL character (\\0)")
        return value

    @property
    def point_count(self) -> int:
        """How many points the sweep has, counted without making them."""
        if self.points is not None:
            return len(self.points)
        return math.prod(len(values) for values in self.axes.values())


@dataclass(frozen=True)
class Point:
    """One planned run: which overrides, under which point id, and which repetition."""

    point_id: str
    repetition: int
    axes: dict[str, Any]  # what this point varies: stored as `axis.<path>` columns
    overrides: dict[str, Any]  # everything laid over the base scenario (`set` and `axes`)

    @property
    def key(self) -> tuple[str, int]:
        return (self.point_id, self.repetition)

    def columns(self) -> dict[str, Any]:
        """The columns a sweep adds to this run's row."""
        return {
            "point_id": self.point_id,
            "repetition": self.repetition,
            **{f"axis.{path}": value for path, value in self.axes.items()},
        }

    def set_args(self) -> list[str]:
        """The overrides as `--set` strings; JSON is YAML, so every value round-trips."""
        return [f"{path}={json.dumps(value)}" for path, value in self.overrides.items()]


def _values(value: Any, seen: dict[int, int]) -> int:
    """How many values (scalars, lists, mappings) `value` holds, itself included; a list or
    mapping met before (a YAML alias is one object, shared) is counted from `seen`."""
    if not isinstance(value, list | dict):
        return 1
    if id(value) not in seen:
        children = value if isinstance(value, list) else [*value, *value.values()]
        seen[id(value)] = 1 + sum(_values(child, seen) for child in children)
    return seen[id(value)]


def _short(value: Any, limit: int = 60) -> str:
    text = _canonical(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def point_id(overrides: dict[str, Any]) -> str:
    """A short id that depends only on the overrides' content (not their order)."""
    return hashlib.sha256(_canonical(overrides).encode()).hexdigest()[:10]


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; every mistake is one `ScenarioError` naming the file."""
    path = Path(path)
    try:  # (the scenario loader's checks: not a FIFO or device, 1 MiB, duplicate keys)
        data = load_yaml_file(path, "sweep file")
    except ScenarioError as exc:
        fix = "see benchmarks/sweeps/ for examples" if "no such" in exc.message else exc.fix
        raise ScenarioError(exc.message, fix=fix) from None
    if not isinstance(data, dict):
        raise ScenarioError(
            f"{path}: a sweep must be a mapping (scenario, axes or points, repeat)",
            fix="see benchmarks/sweeps/ for examples",
        )
    data.setdefault("name", name_from_stem(path.stem))
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        lines = [f"{path}: invalid sweep"]
        for error in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"  {loc}: {message}" if loc else f"  {message}")
        raise ScenarioError("\n".join(lines)) from None
    scenario = spec.scenario if spec.scenario.is_absolute() else path.parent / spec.scenario
    try:
        scenario = scenario.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a loop of symbolic links
        raise ScenarioError(f"{path}: scenario: cannot resolve {scenario}: {exc}") from None
    return spec.model_copy(update={"scenario": scenario})


def plan_sweep(sweep: SweepSpec) -> list[Point]:
    """Every run the sweep makes, point by point (axes in file order), repetitions innermost."""
    if sweep.points is not None:
        combos = [dict(p) for p in sweep.points]
    else:
        paths = list(sweep.axes)
        combos = [
            dict(zip(paths, values, strict=True))
            for values in itertools.product(*(sweep.axes[p] for p in paths))
        ]
    runs: list[Point] = []
    seen: dict[str, dict[str, Any]] = {}
    for axes in combos:
        overrides = {**sweep.set, **axes}
        pid = point_id(overrides)
        if pid in seen:
            raise ScenarioError(f"sweep {sweep.name}: point {axes} is listed twice")
        seen[pid] = axes
        runs += [Point(pid, rep, axes, overrides) for rep in range(sweep.repeat)]
    return runs


def pending_runs(planned: Sequence[Point], existing: pd.DataFrame, sweep_name: str) -> list[Point]:
    """The planned runs that `existing` (rows already stored) does not hold yet.

    A run is done when a row of this sweep has its point id and repetition, whatever its outcome:
    a failed call is a measurement too. Rows without a `sweep` column (written by hand) count
    by point id alone.
    """
    if existing.empty or not {"point_id", "repetition"} <= set(existing.columns):
        return list(planned)
    rows = existing
    if "sweep" in rows.columns:
        rows = rows[rows["sweep"].isna() | (rows["sweep"] == sweep_name)]
    rows = rows.dropna(subset=["point_id", "repetition"])
    done = {(str(p), int(r)) for p, r in zip(rows["point_id"], rows["repetition"], strict=True)}
    return [p for p in planned if p.key not in done]


def batches(runs: Sequence[Point], jobs: int) -> list[list[Point]]:
    """Group runs into worker tasks: one network per batch, calls between its warm agents.

    Runs of one point share a batch (one build for several calls) unless there are fewer points
    than jobs; then each point's repetitions are split so that every job has work.
    """
    by_point: dict[str, list[Point]] = {}
    for run in runs:
        by_point.setdefault(run.point_id, []).append(run)
    if not by_point:
        return []
    split = max(1, -(-jobs // len(by_point)))
    out: list[list[Point]] = []
    for reps in by_point.values():
        size = -(-len(reps) // min(split, len(reps)))
        out += [reps[i : i + size] for i in range(0, len(reps), size)]
    return out
