"""What the generated references say of a pydantic field's bounds.

Why one module: the scenario reference (docs/scenarios.md) and the peer protocol's
(docs/peer-protocol.md) are both written from the models, and a bound must read the same in
both. Ground floor: it needs pydantic only.
"""

from __future__ import annotations

from pydantic.fields import FieldInfo

_WORDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "at least"}


def bounds(field: FieldInfo) -> str:
    """The field's bounds as they are written after its type, e.g. ", >= 1, <= 65536"."""
    found = []
    for item in field.metadata:
        for attribute, word in _WORDS.items():
            value = getattr(item, attribute, None)
            if value is not None:
                found.append(f"{word} {value}")
    return "".join(f", {bound}" for bound in found)
