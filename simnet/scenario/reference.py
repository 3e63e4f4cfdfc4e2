"""The scenario file's field reference, made from the models that read the file.

What a scenario may say is exactly what `simnet.scenario.model.Scenario` accepts, so its
reference (docs/scenarios.md) is generated from those models: every field's name, type, bounds,
default and description, each model's own text, the NAT presets and the error kinds a call can
expect. A reference written by hand drifts from the code; this one cannot, because
tests/unit/test_scenario_reference.py fails when the document differs from `markdown()`.

    python -m simnet.scenario.reference > docs/scenarios.md
"""

from __future__ import annotations

import enum
import inspect
import ipaddress
import json
import sys
import types
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from simnet.callspec import ERROR_KINDS
from simnet.fielddoc import bounds
from simnet.scenario.model import NAME_MAX, NAME_PATTERN, Scenario
from simnet.scenario.nat import CARRIER_PRESETS, CHAINED_PRESETS, PRESETS, NatBehavior

COMMAND = "python -m simnet.scenario.reference > docs/scenarios.md"

INTRO = f"""\
# Scenario file reference

<!-- Generated from simnet/scenario/model.py and simnet/callspec.py by
`{COMMAND}`; tests/unit/test_scenario_reference.py fails when this file differs. Edit the
models' descriptions, not this file. -->

A scenario is a YAML file: NATs, hosts and servers, and the call to make across them. Every
field below can also be set on the command line with `--set dotted.path=value` (the value is
YAML), e.g. `--set nats.home.hairpin=false`. A field not allowed, a value out of bounds or a
name that does not exist is one error naming the file, the field and what is allowed (exit 2),
before anything is built. How to write one, with examples: [the scenario
guide](guides/scenarios.md).

In the tables, *name* means {NAME_MAX} characters at most: lower-case letters, digits and `-`,
starting with a letter (`{NAME_PATTERN}`). A NAME in a path is a name you choose, `[]` an item
of a list.
"""


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """The type inside `Annotated[...]` layers, and their metadata, outermost first."""
    metadata: list[Any] = []
    while get_origin(annotation) is Annotated:
        metadata += list(annotation.__metadata__)
        annotation = get_args(annotation)[0]
    return annotation, metadata


def _pattern(metadata: list[Any]) -> str | None:
    for item in metadata:
        for part in [item, *getattr(item, "metadata", [])]:
            pattern = getattr(part, "pattern", None)
            if isinstance(pattern, str):
                return pattern
    return None


def _anchor(model: type[BaseModel]) -> str:
    return f"[{model.__name__}](#{model.__name__.lower()})"


def type_name(annotation: Any, metadata: list[Any] | None = None) -> str:
    """A field's type in the words of a YAML writer: string, number, "a" \\| "b", a model's
    link, list of ..., map of name to ..."""
    annotation, inner = _unwrap(annotation)
    pattern = _pattern([*(metadata or []), *inner])
    if annotation is str and pattern == NAME_PATTERN:
        return "name"
    if annotation is str and pattern is not None:
        return f"string matching `{pattern}`".replace("|", "\\|")
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _anchor(annotation)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(json.dumps(member.value) for member in annotation)
    if annotation in (ipaddress.IPv4Network, ipaddress.IPv6Network):
        return "address range (text, e.g. `192.0.2.0/24`)"
    if annotation in (ipaddress.IPv4Address, ipaddress.IPv6Address):
        return "address (text, e.g. `192.0.2.10`)"
    simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if annotation in simple:
        return simple[annotation]
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " \\| ".join(json.dumps(a) for a in args)
    if origin in (Union, types.UnionType):  # each word once: IPv4 | IPv6 is one "address range"
        return " \\| ".join(dict.fromkeys(type_name(a) for a in args))
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is tuple:
        return "[" + ", ".join(type_name(a) for a in args) + "]"
    if origin is dict:
        return f"map of {type_name(args[0])} to {type_name(args[1])}"
    return str(annotation)  # a new kind of annotation: the reference test shows it


def _plain(value: Any) -> Any:
    """A default as YAML would hold it."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return f"{_anchor(type(value))} defaults"
    return f"`{json.dumps(_plain(value), ensure_ascii=False)}`"


def _models_in(annotation: Any) -> Iterator[tuple[type[BaseModel], str]]:
    """The models a field's type holds, each with the path suffix that reaches it: "" for the
    field itself, ".NAME" through a map, "[]" through a list."""
    annotation, _ = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, ""
        return
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is dict:
        for model, suffix in _models_in(args[1]):
            yield model, ".NAME" + suffix
    elif origin is list:
        for model, suffix in _models_in(args[0]):
            yield model, "[]" + suffix
    else:
        for arg in args:
            yield from _models_in(arg)


def documented_models() -> dict[type[BaseModel], list[tuple[type[BaseModel], str]]]:
    """Every model reachable from `Scenario`, depth first (a model right after the one that
    first holds it), each with where it is written: (the model holding it, the field's name
    and path suffix). `Scenario` itself has no holder."""
    found: dict[type[BaseModel], list[tuple[type[BaseModel], str]]] = {}

    def visit(model: type[BaseModel]) -> None:
        found.setdefault(model, [])
        for name, field in model.model_fields.items():
            for sub, suffix in _models_in(field.annotation):
                first = sub not in found
                found.setdefault(sub, []).append((model, name + suffix))
                if first:
                    visit(sub)

    visit(Scenario)
    return found


def _paths(model: type[BaseModel], models: dict[type[BaseModel], list[Any]]) -> list[str]:
    """The dotted paths at which `model` is written in a file."""
    if model is Scenario:
        return [""]
    return [
        f"{outer}.{field}".lstrip(".")
        for holder, field in models[model]
        for outer in _paths(holder, models)
    ]


def _model_table(model: type[BaseModel]) -> str:
    rows = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        meaning = (field.description or "").replace("|", "\\|")
        kind = type_name(field.annotation, list(field.metadata)) + bounds(field)
        rows.append(f"| `{name}` | {kind} | {default_text(field)} | {meaning} |")
    return "\n".join(rows)


def _where(model: type[BaseModel], models: dict[type[BaseModel], list[Any]]) -> str:
    """Where a model is written: its paths, or for one written in many places, the fields of
    the models that hold it."""
    if model is Scenario:
        return "Written at: the top level of the file."
    paths = _paths(model, models)
    if len(paths) <= 4:
        return "Written at: " + ", ".join(f"`{p}`" for p in paths) + "."
    holders = [f"`{field}` of {_anchor(holder)}" for holder, field in models[model]]
    return "Written as " + ", ".join(holders) + "."


def _model_section(model: type[BaseModel], models: dict[type[BaseModel], list[Any]]) -> str:
    text = inspect.cleandoc(model.__doc__ or "")
    where = _where(model, models)
    return f"## {model.__name__}\n\n{where}\n\n{text}\n\n{_model_table(model)}\n"


def _behaviour_row(label: str, behaviour: NatBehavior) -> str:
    if not behaviour.translates:
        return f"| {label} | no translation (a router) | | | |"
    return (
        f"| {label} | {behaviour.mapping.value} | {behaviour.filtering.value} | "
        f"{behaviour.port_allocation.value} | {'yes' if behaviour.hairpin else 'no'} |"
    )


def presets_section() -> str:
    rows = [
        "| preset | mapping | filtering | port allocation | hairpin |",
        "|---|---|---|---|---|",
    ]
    rows += [_behaviour_row(f"`{name}`", behaviour) for name, behaviour in PRESETS.items()]
    for name, behaviour in CARRIER_PRESETS.items():
        rows.append(_behaviour_row(f"`{name}`: a carrier NAT, LAN on 100.64.0.0/10", behaviour))
    for name, (home, carrier) in CHAINED_PRESETS.items():
        rows.append(_behaviour_row(f"`{name}`: the home NAT", home))
        rows.append(_behaviour_row(f"`{name}`: its carrier NAT, `NAME-carrier`", carrier))
    return (
        "## NAT presets\n\n"
        "`nats.NAME.preset` starts a NAT from one of these RFC 4787 behaviours; each knob set "
        "beside it (`mapping`, `filtering`, `port_allocation`, `hairpin`, `udp_timeout_s`) "
        "overrides the preset's. Every translating preset's binding timeout is "
        f"{PRESETS['full-cone'].udp_timeout_s} s unless `udp_timeout_s` says otherwise.\n\n"
        + "\n".join(rows)
        + "\n"
    )


def errors_section() -> str:
    kinds = ", ".join(f"`{kind}`" for kind in ERROR_KINDS)
    return (
        "## Error kinds\n\n"
        "What `call.expect.error` may name, and what a result row's `error` holds for a call "
        f"that failed: {kinds}.\n"
    )


def markdown() -> str:
    """docs/scenarios.md: the introduction, the presets, one section per model, error kinds."""
    models = documented_models()
    contents = ["## Contents", ""]
    contents += [f"- {_anchor(model)}" for model in models]
    contents += ["- [NAT presets](#nat-presets)", "- [Error kinds](#error-kinds)"]
    parts = [INTRO, "\n".join(contents) + "\n"]
    parts += [_model_section(model, models) for model in models]
    parts += [presets_section(), errors_section()]
    return "\n".join(parts)


def main() -> int:
    """Print the reference (`python -m simnet.scenario.reference > docs/scenarios.md`)."""
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
