"""No class in simnet/ is longer than `MAX_CLASS_LINES`.

Why: a class that long does several jobs at once (a call's aiortc side once held its signaling,
ICE, DTLS, data-channel protocol, media and statistics in one class of 650 lines); past this
size a class is to be split along what it does, as `simnet.peer.aiortc.call` is. Read with
`ast`, so decorators, docstrings and nested definitions count as the class's lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

SIMNET = Path(__file__).resolve().parents[2] / "simnet"
MAX_CLASS_LINES = 300


def class_lengths(root: Path) -> list[tuple[int, str]]:
    """(lines, "path:line Class") of every class under `root`, nested ones included."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                assert node.end_lineno is not None
                where = f"{path.relative_to(root.parent)}:{node.lineno} {node.name}"
                found.append((node.end_lineno - first + 1, where))
    return found


def test_the_scan_sees_every_class() -> None:
    lengths = class_lengths(SIMNET)
    assert len(lengths) > 100  # simnet's classes, not an empty or misplaced scan
    assert any(where.endswith(" Call") for _, where in lengths)  # simnet.peer.aiortc.call.driver


def test_no_class_is_longer_than_the_limit() -> None:
    too_long = sorted((n, where) for n, where in class_lengths(SIMNET) if n > MAX_CLASS_LINES)
    assert too_long == [], f"classes over {MAX_CLASS_LINES} lines (split them): {too_long}"
