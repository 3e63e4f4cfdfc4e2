"""A population mix: the shares of the networks a fleet's users sit behind, as data.

Why: "what share of our users' calls will need TURN" is a rate over a population of networks,
not over repetitions of one. A mix file gives, for each side of a call, network classes with
their shares (probabilities summing to 1) and, per class, the network: a chain of NATs from the
user's own router outwards (each a `nats:` entry of a scenario: preset, knobs, firewall, link)
or the open internet. `simnet population` draws calls from it (`sample`), builds each drawn pair
of classes as a scenario (`scenario_for`) and estimates the fleet's direct / relayed / failed
shares (`simnet.population.estimate`).

```yaml
name: field
sides:
  offerer:
    - class: home-cone            # a name for the reports
      share: 0.5                  # of all callers
      why: "Ford et al. 2005: 82% of NATs allow hole punching"   # where the share comes from
      nats: [{preset: port-restricted-cone}]
    - {class: mobile-cgnat, share: 0.3, nats: [{preset: symmetric}, {preset: full-cone}]}
    - {class: public, share: 0.2, nats: []}
  answerer: same                  # or a list of its own
```

Pure: no kernel, no network.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from simnet.errors import ScenarioError, printable
from simnet.net.plan import plan_network
from simnet.peerkinds import DEFAULT_PAIR, PeerPair
from simnet.scenario.load import scenario_from_dict
from simnet.scenario.model import CallSpec, Scenario
from simnet.scenario.yaml_file import load_yaml_file

SHARE_TOLERANCE = 1e-6
ClassName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")]
SIDES = ("offerer", "answerer")
MAX_CLASSES = 1_000  # a side's; checking each class's network takes a few ms
DEFAULT_DURATION_S: float = CallSpec.model_fields["duration_s"].default


class NetworkClass(BaseModel):
    """One kind of network a side of a call can sit behind, and how common it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ClassName = Field(alias="class")
    share: float = Field(gt=0, le=1)
    why: str = Field(default="", description="where the share comes from, or 'assumption'")
    # a scenario's `nats:` entries and `link:` as written: `scenario_for` validates them
    nats: list[dict[str, object]] = Field(
        default_factory=list, max_length=3, description="the user's router first, outwards"
    )
    link: dict[str, object] | None = Field(default=None, description="the user's access link")


class Mix(BaseModel):
    """A mix file, validated: each side's classes, their shares summing to 1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="mix", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    sides: dict[Literal["offerer", "answerer"], list[NetworkClass] | Literal["same"]]
    call: dict[str, object] = Field(
        default_factory=dict, description="the call's settings (scenario `call:` fields)"
    )

    @model_validator(mode="after")
    def _complete(self) -> Mix:
        if "offerer" not in self.sides or self.sides["offerer"] == "same":
            raise ValueError("sides.offerer: give the offerers' classes as a list")
        for side in SIDES:
            classes = self.classes(side)
            total = sum(c.share for c in classes)
            if not math.isclose(total, 1.0, abs_tol=SHARE_TOLERANCE):
                raise ValueError(
                    f"sides.{side}: the shares sum to {total:g}, not 1; make them add up "
                    "(shares are probabilities of one side's network)"
                )
            names = [c.name for c in classes]
            if len(set(names)) != len(names):
                raise ValueError(f"sides.{side}: a class name appears twice: {names}")
        return self

    @property
    def duration_s(self) -> float:
        """How long each call lasts: `call.duration_s`, else a scenario call's default."""
        value = self.call.get("duration_s")
        return float(value) if isinstance(value, int | float | str) else DEFAULT_DURATION_S

    def classes(self, side: str) -> list[NetworkClass]:
        chosen = self.sides.get(side, "same")  # type: ignore[call-overload]
        if chosen == "same":
            chosen = self.sides["offerer"]
        assert isinstance(chosen, list)
        return chosen

    def by_name(self, side: str, name: str) -> NetworkClass:
        for network in self.classes(side):
            if network.name == name:
                return network
        known = ", ".join(c.name for c in self.classes(side))
        raise ScenarioError(f"sides.{side}: no class {name!r}", fix=f"one of {known}")


def load_mix(path: str | Path, peers: PeerPair = DEFAULT_PAIR) -> Mix:
    """The mix file, or one clear error naming the file and the field (exit 2).

    The file is read as a scenario is (`simnet.scenario.yaml_file`: a regular file of at most
    1 MiB, no duplicate keys, aliases bounded), and every class, with `peers` (the offerers'
    and the answerers' stacks), is validated and its addresses planned before anything runs
    (`check_classes`): a class that cannot be built fails in a second, not after other calls."""
    path = Path(path)
    data = load_yaml_file(path, "mix file")
    if not isinstance(data, dict):
        shown = "empty" if data is None else f"a {type(data).__name__}"
        raise ScenarioError(
            f"{path}: a mix must be a mapping (name, sides, call), not {shown}",
            fix="see scenarios/mixes/field.yaml",
        )
    try:
        mix = Mix.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_describe(exc, path)) from None
    check_classes(mix, path, peers)
    return mix


def check_classes(mix: Mix, path: str | Path, peers: PeerPair = DEFAULT_PAIR) -> None:
    """Validate and plan (addresses, LANs) each class's network, each side's in turn.

    A class is checked in a call with itself: the planner's limits are per NAT chain (a LAN
    too small for its host, overlapping LANs in one chain) or on pools every NAT of a call
    draws from, and a call between two classes draws no more than the larger of the two calls
    of a class with itself. So if these pass, every pair the draw can make does too."""
    sides = ("offerer",) if mix.sides.get("answerer", "same") == "same" else SIDES
    for side in sides:
        if len(mix.classes(side)) > MAX_CLASSES:
            raise ScenarioError(
                f"{path}: sides.{side}: {len(mix.classes(side)):,} classes; a mix has at most "
                f"{MAX_CLASSES:,} a side",
                fix="merge classes with the same network (their shares add up)",
            )
        for network in mix.classes(side):
            where = f"{path}: sides.{side}, class {network.name}"
            try:
                plan_network(scenario_for(mix, network, network, peers, source=where))
            except ScenarioError as exc:
                message = (
                    exc.message if exc.message.startswith(where) else f"{where}: {exc.message}"
                )
                fix = None if exc.fix is None else _in_class_terms(exc.fix)
                if "too many hosts behind" in exc.message:  # (the fix speaks of host counts)
                    fix = "give that NAT's `lan:` a larger private range (its first host is .10)"
                raise ScenarioError(_in_class_terms(message), fix=fix) from None


def _in_class_terms(text: str) -> str:
    """A class's scenario error in the mix's terms: the i-th NAT of the class's chain is
    `nats[i]` (in the scenario, the offerer's `a<i>` and the answerer's `b<i>`), its link
    `link` (the host `alice`'s or `bob`'s)."""
    text = _HOST_LINK.sub("link", text.replace(": invalid scenario", ": invalid class"))
    text = _CHAIN_NAT_FIELD.sub(r"nats[\1]", text)
    lines = _CHAIN_NAT.sub(r"nats[\1]", text).split("\n")
    return "\n".join(dict.fromkeys(lines))  # both sides' copies of one mistake: said once


_HOST_LINK = re.compile(r"\bhosts\.(?:alice|bob)\.link\b")
_CHAIN_NAT_FIELD = re.compile(r"\bnats\.[ab]([0-9])(?![\w-])")
# a NAT's name as a word of the message ("behind a0:"), not part of an address (fd00:a0::)
_CHAIN_NAT = re.compile(r"(?<![\w:.\[-])[ab]([0-9])(?![\w.-]|:[\w:])")


def _describe(exc: ValidationError, path: Path) -> str:
    """The mix's validation errors, one a line, each at its field as the file writes it
    (`sides.offerer[1].share`); a class's union branch (a list, or `same`) is not a field."""
    errors = exc.errors(include_url=False)
    as_list = [e for e in errors if not any(str(p).startswith("literal[") for p in e["loc"])]
    lines = [f"{path}: invalid mix"]
    for error in as_list or errors:
        parts = [p for p in error["loc"] if not str(p).startswith(("list[", "literal["))]
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{printable(p)}" for p in parts)
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  {loc.lstrip('.')}: {message}" if loc else f"  {message}")
    return "\n".join(lines)


def sample(mix: Mix, calls: int, seed: int) -> list[tuple[str, str]]:
    """`calls` (offerer class, answerer class) pairs, each side drawn independently with the
    mix's shares; the same seed gives the same calls."""
    rng = random.Random(seed)
    offerers, answerers = mix.classes("offerer"), mix.classes("answerer")
    a = rng.choices([c.name for c in offerers], weights=[c.share for c in offerers], k=calls)
    b = rng.choices([c.name for c in answerers], weights=[c.share for c in answerers], k=calls)
    return list(zip(a, b, strict=True))


def cells(pairs: list[tuple[str, str]]) -> Counter[tuple[str, str]]:
    """How many drawn calls each pair of classes has (each pair is run as one scenario)."""
    return Counter(pairs)


def scenario_for(
    mix: Mix,
    offerer: NetworkClass,
    answerer: NetworkClass,
    peers: PeerPair = DEFAULT_PAIR,
    *,
    source: str = "<scenario>",
) -> Scenario:
    """The scenario of one call between a user of class `offerer` and one of `answerer`:
    each side's NAT chain (its router innermost), one TURN server, one signaling server; the
    offerer runs the WebRTC stack `peers[0]`, the answerer `peers[1]` (the mix says where users
    sit, not what they run: the stack under test is the run's choice). `source` starts its
    errors."""
    nats: dict[str, dict[str, object]] = {}
    hosts: dict[str, dict[str, object]] = {}
    sides = (("a", "alice", offerer, peers[0]), ("b", "bob", answerer, peers[1]))
    for side, host, network, peer in sides:
        behind = "internet"
        for depth, nat in reversed(list(enumerate(network.nats))):
            name = f"{side}{depth}"
            nats[name] = {**nat, "behind": behind}
            behind = name
        hosts[host] = {
            "behind": behind,
            "peer": peer,
            **({"link": network.link} if network.link else {}),
        }
    return scenario_from_dict(
        {
            "name": f"{mix.name}-{offerer.name}-{answerer.name}"[:64],
            "nats": nats,
            "hosts": hosts,
            "servers": {"turn": {"kind": "turn"}, "signaling": {"kind": "signaling"}},
            "call": {"offerer": "alice", "answerer": "bob", **mix.call},
        },
        source=source,
    )
