"""The shared tail of every benchmark script: root check, errors and signals, JSON or tables.

Benchmarks are scripts (`python benchmarks/NAME.py`), so this sibling module is imported by name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from rich.console import Console

from simnet.errors import SimnetError
from simnet.net.run import Terminated


class BenchmarkError(RuntimeError):
    """The benchmark could not produce a trustworthy figure (e.g. a network did not work)."""


def run_benchmark(
    measure: Callable[[], dict[str, Any]],
    show: Callable[[dict[str, Any]], None],
    *,
    as_json: bool,
    log: Console,
) -> int:
    """Run `measure`, print its result, and turn failures and signals into exit codes."""
    if os.geteuid() != 0:
        log.print("[red]needs root: it creates network namespaces[/red]")
        return 2
    try:
        result = measure()
    except (BenchmarkError, SimnetError) as exc:
        log.print("benchmark failed:", style="bold red")
        log.print(str(exc), markup=False, highlight=False)
        return 1
    except KeyboardInterrupt:
        log.print("interrupted; everything the benchmark built was removed", style="yellow")
        return 130
    except Terminated as exc:
        log.print(f"terminated ({exc}); everything the benchmark built was removed", style="yellow")
        return 143
    if as_json:
        print(json.dumps(result))
    else:
        show(result)
    return 0
