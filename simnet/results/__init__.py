"""Results as data: one row per run, stored as Parquet as each run ends."""

from simnet.results.store import ResultStore, load

__all__ = ["ResultStore", "load"]
