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
from typing import Annotated, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from simnet.errors import EnvironmentProblem, ScenarioError, cut, printable, shown_field
from simnet.net.plan import plan_network
from simnet.peerkinds import DEFAULT_KIND, PeerKind, PeerPair, find_program, kind
from simnet.scenario.load import scenario_from_dict
from simnet.scenario.model import CallSpec, Scenario
from simnet.scenario.yaml_file import load_yaml_file

SHARE_TOLERANCE = 1e-6
ClassName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")]
#: a class's own server (its proxy): a scenario name once its side's prefix (`a-`, `b-`) is on
ServerName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,17}$")]
Share = Annotated[float, Field(gt=0, le=1)]
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
    # a scenario's `servers:` entries as written: the network's own HTTP proxies
    servers: dict[ServerName, dict[str, object]] = Field(
        default_factory=dict,
        max_length=2,
        description="the network's HTTP proxies (kind: http-proxy), named by its NATs' "
        "firewall.proxy_only; each is a server on the internet, one per side of a call",
    )

    @model_validator(mode="after")
    def _own_servers_are_proxies(self) -> NetworkClass:
        for name, server in self.servers.items():
            if server.get("kind") != "http-proxy":
                raise ValueError(
                    f"servers.{name}: a class brings only its network's HTTP proxy (kind: "
                    "http-proxy); the TURN and signaling servers are every call's own"
                )
        return self


class StackMix(BaseModel):
    """What a fleet's users run: per side, the share of each WebRTC stack (peer kind)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    offerer: dict[PeerKind, Share] = Field(min_length=1, description="the offerers' stacks")
    answerer: dict[PeerKind, Share] | Literal["same"] = Field(
        default="same", description="the answerers' stacks, or the offerers'"
    )

    def side(self, side: str) -> dict[PeerKind, float]:
        chosen = self.answerer if side == "answerer" else self.offerer
        return self.offerer if chosen == "same" else dict(chosen)


class Drawn(NamedTuple):
    """One drawn call: its cell, each side's network class and stack."""

    offerer_class: str
    offerer_stack: PeerKind
    answerer_class: str
    answerer_stack: PeerKind


class Mix(BaseModel):
    """A mix file, validated: each side's classes, their shares summing to 1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="mix", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    sides: dict[Literal["offerer", "answerer"], list[NetworkClass] | Literal["same"]]
    call: dict[str, object] = Field(
        default_factory=dict, description="the call's settings (scenario `call:` fields)"
    )
    stacks: StackMix | None = Field(
        default=None, description="each side's WebRTC stacks and their shares (default: aiortc)"
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
            total = sum(self.stack_shares(side).values())
            if not math.isclose(total, 1.0, abs_tol=SHARE_TOLERANCE):
                raise ValueError(
                    f"stacks.{side}: the shares sum to {total:g}, not 1; make them add up "
                    "(shares are probabilities of one side's stack)"
                )
        return self

    def stack_shares(self, side: str) -> dict[PeerKind, float]:
        """The side's stacks and their shares: the mix's `stacks:`, else aiortc alone."""
        return {DEFAULT_KIND: 1.0} if self.stacks is None else self.stacks.side(side)

    def running(self, peers: PeerPair) -> Mix:
        """The same mix with one stack a side, `peers` (`--peers`), in place of its `stacks:`."""
        one = StackMix(offerer={peers[0]: 1.0}, answerer={peers[1]: 1.0})
        return self.model_copy(update={"stacks": one})

    def stacks_label(self) -> str:
        """The stacks for a headline and a report's grouping: "aiortc", "aiortc -> chromium"
        (one stack a side), else each side's shares ("chromium 70 %, aiortc 30 %")."""
        offerers, answerers = (self.stack_shares(side) for side in SIDES)
        if len(offerers) == len(answerers) == 1:
            a, b = next(iter(offerers)), next(iter(answerers))
            return a if a == b else f"{a} -> {b}"

        def shares(side: dict[PeerKind, float]) -> str:
            return ", ".join(f"{k} {v * 100:g} %" for k, v in side.items())

        if offerers == answerers:
            return shares(offerers)
        return f"offerers {shares(offerers)}; answerers {shares(answerers)}"

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


def load_mix(path: str | Path, peers: PeerPair | None = None) -> Mix:
    """The mix file, or one clear error naming the file and the field (exit 2).

    The file is read as a scenario is (`simnet.scenario.yaml_file`: a regular file of at most
    1 MiB, no duplicate keys, aliases bounded), and every class and stack is validated and its
    addresses planned before anything runs (`check_classes`): a class that cannot be built
    fails in a second, not after other calls. `peers` (`--peers`: the offerers' and the
    answerers' stack) replaces the mix's `stacks:`."""
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
        raise ScenarioError(describe_mix_error(exc, str(path))) from None
    if peers is not None:
        mix = mix.running(peers)
    check_classes(mix, path)
    return mix


def missing_stacks(mix: Mix, path: str | Path, stacks_from: str = "stacks") -> None:
    """`EnvironmentProblem` (exit 2) for the first stack of the mix this machine cannot run:
    the program its kind's doctor check looks for (`simnet.peerkinds.Requirement`) is missing.
    `stacks_from` is where the stacks came from: the file's `stacks` or `--peers`."""
    for side in SIDES:
        for name in mix.stack_shares(side):
            needed = kind(name).requirement
            if needed is None or find_program(needed.binaries) is not None:
                continue
            where = f"{path}: stacks.{side}.{name}" if stacks_from == "stacks" else stacks_from
            instead = (
                f"or give its share to other stacks in {path}'s stacks.{side}, or run with "
                f"--peers {DEFAULT_KIND}"
                if stacks_from == "stacks"
                else f"or name another stack in --peers (e.g. {DEFAULT_KIND})"
            )
            raise EnvironmentProblem(
                f"{where}: {name} peers need a {needed.what}, and this machine has none",
                fix=f"{needed.fix}; {instead}",
            )


def check_classes(mix: Mix, path: str | Path) -> None:
    """Validate and plan (addresses, LANs) each class's network, and check each stack's call,
    each side's in turn.

    A class is checked in a call with itself: the planner's limits are per NAT chain (a LAN
    too small for its host, overlapping LANs in one chain) or on pools every NAT of a call
    draws from, and a call between two classes draws no more than the larger of the two calls
    of a class with itself. So if these pass, every pair the draw can make does too. A stack
    is checked in a call of the side's first class: what a scenario asks of a stack (e.g.
    replayed media) is the call's, not the network's."""
    sides = ("offerer",) if mix.sides.get("answerer", "same") == "same" else SIDES
    for side in sides:
        if len(mix.classes(side)) > MAX_CLASSES:
            raise ScenarioError(
                f"{path}: sides.{side}: {len(mix.classes(side)):,} classes; a mix has at most "
                f"{MAX_CLASSES:,} a side",
                fix="merge classes with the same network (their shares add up)",
            )
        stack = next(iter(mix.stack_shares(side)))
        for network in mix.classes(side):
            _check(mix, network, (stack, stack), f"{path}: sides.{side}, class {network.name}")
    for side in SIDES:
        if side == "answerer" and mix.stacks is not None and mix.stacks.answerer == "same":
            continue
        first = mix.classes(side)[0]
        for stack in list(mix.stack_shares(side))[1:]:  # (the first: with every class, above)
            _check(mix, first, (stack, stack), f"{path}: stacks.{side}.{stack}", "call")


def _check(
    mix: Mix, network: NetworkClass, peers: PeerPair, where: str, what: str = "class"
) -> None:
    """The call of `network` with itself, `peers` its stacks, validated and planned; its
    error in the mix's terms, starting with `where` (and "invalid `what`")."""
    try:
        plan_network(scenario_for(mix, network, network, peers, source=where))
    except ScenarioError as exc:
        message = exc.message if exc.message.startswith(where) else f"{where}: {exc.message}"
        fix = None if exc.fix is None else _in_class_terms(exc.fix, network)
        if "too many hosts behind" in exc.message:  # (the fix speaks of host counts)
            fix = "give that NAT's `lan:` a larger private range (its first host is .10)"
        message = message.replace(": invalid scenario", f": invalid {what}")
        raise ScenarioError(_in_class_terms(message, network), fix=fix) from None


def _in_class_terms(text: str, network: NetworkClass) -> str:
    """A class's scenario error in the mix's terms: the i-th NAT of the class's chain is
    `nats[i]` (in the scenario, the offerer's `a<i>` and the answerer's `b<i>`), its link
    `link` (the host `alice`'s or `bob`'s), its server `NAME` (`a-NAME`, `b-NAME`)."""
    text = _HOST_LINK.sub("link", text.replace(": invalid scenario", ": invalid class"))
    for name in map(re.escape, _own_names(network)):
        text = re.sub(rf"(?<![\w-])[ab]-{name}(?![\w-])", name, text)
        text = re.sub(rf"(?<![\w-]){name}, {name}(?![\w-])", name, text)  # both sides' copy
    text = _CHAIN_NAT_FIELD.sub(r"nats[\1]", text)
    lines = _CHAIN_NAT.sub(r"nats[\1]", text).split("\n")
    return "\n".join(dict.fromkeys(lines))  # both sides' copies of one mistake: said once


def _own_names(network: NetworkClass) -> set[str]:
    """The server names a class's network uses: its servers and its NATs' `proxy_only`."""
    named = {_proxy_of(nat) for nat in network.nats} - {None}
    return set(network.servers) | {str(n) for n in named}


def _proxy_of(nat: dict[str, object]) -> object:
    firewall = nat.get("firewall")
    return firewall.get("proxy_only") if isinstance(firewall, dict) else None


_HOST_LINK = re.compile(r"\bhosts\.(?:alice|bob)\.link\b")
_CHAIN_NAT_FIELD = re.compile(r"\bnats\.[ab]([0-9])(?![\w-])")
# a NAT's name as a word of the message ("behind a0:"), not part of an address (fd00:a0::)
_CHAIN_NAT = re.compile(r"(?<![\w:.\[-])[ab]([0-9])(?![\w.-]|:[\w:])")


def sample(mix: Mix, calls: int, seed: int) -> list[Drawn]:
    """`calls` calls, each side's class and stack drawn independently with the mix's shares;
    the same seed gives the same calls. The classes are drawn first (the offerers', then the
    answerers'), then the stacks: a mix's classes draw the same with or without stacks."""
    rng = random.Random(seed)
    offerers, answerers = mix.classes("offerer"), mix.classes("answerer")
    a = rng.choices([c.name for c in offerers], weights=[c.share for c in offerers], k=calls)
    b = rng.choices([c.name for c in answerers], weights=[c.share for c in answerers], k=calls)
    stacks = []
    for side in SIDES:
        shares = mix.stack_shares(side)
        stacks.append(rng.choices(list(shares), weights=list(shares.values()), k=calls))
    return [Drawn(*call) for call in zip(a, stacks[0], b, stacks[1], strict=True)]


def cells(drawn: list[Drawn]) -> Counter[Drawn]:
    """How many drawn calls each cell has (each cell is run as one scenario)."""
    return Counter(drawn)


def scenario_for(
    mix: Mix,
    offerer: NetworkClass,
    answerer: NetworkClass,
    peers: PeerPair = (DEFAULT_KIND, DEFAULT_KIND),
    *,
    source: str = "<scenario>",
) -> Scenario:
    """The scenario of one call between a user of class `offerer` and one of `answerer`:
    each side's NAT chain (its router innermost) and its network's own proxies (the offerer's
    `proxy` is `a-proxy`, the answerer's `b-proxy`: two offices, two proxies), one TURN server,
    one signaling server; the offerer runs the WebRTC stack `peers[0]`, the answerer
    `peers[1]` (the drawn cell's). `source` starts its errors."""
    nats: dict[str, dict[str, object]] = {}
    hosts: dict[str, dict[str, object]] = {}
    servers: dict[str, dict[str, object]] = {}
    sides = (("a", "alice", offerer, peers[0]), ("b", "bob", answerer, peers[1]))
    for side, host, network, peer in sides:
        servers |= {f"{side}-{name}": server for name, server in network.servers.items()}
        behind = "internet"
        for depth, nat in reversed(list(enumerate(network.nats))):
            name = f"{side}{depth}"
            nats[name] = {**_own_proxy(nat, side), "behind": behind}
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
            "servers": {**servers, "turn": {"kind": "turn"}, "signaling": {"kind": "signaling"}},
            "call": {"offerer": "alice", "answerer": "bob", **mix.call},
        },
        source=source,
    )


def _own_proxy(nat: dict[str, object], side: str) -> dict[str, object]:
    """A class's NAT with its `firewall.proxy_only` naming its side's copy of the proxy."""
    proxy, firewall = _proxy_of(nat), nat.get("firewall")
    if proxy is None or not isinstance(firewall, dict):
        return nat
    return {**nat, "firewall": {**firewall, "proxy_only": f"{side}-{proxy}"}}


# --- errors, in the names the mix file uses -----------------------------------------------------

#: The branch names pydantic puts in an error's location for a field that is a union
#: (`sides.offerer` is a list of classes or "same"): not fields a user can fix.
_UNION_BRANCH = re.compile(r"^(list|literal|dict)\[")
MESSAGE_CHARS = 400


def describe_mix_error(exc: ValidationError, source: str) -> str:
    """A mix file's validation errors, one line each under `source: invalid mix`: locations
    as the file writes them (`sides.offerer[0].share`, no union branch names), the message
    without pydantic's "Value error," and quoted values cut short."""
    errors = exc.errors(include_url=False)
    # a union's other branch ("Input should be 'same'") only repeats that the list is wrong
    kept = [e for e in errors if not any("literal[" in str(p) for p in e["loc"])] or errors
    lines = [f"{printable(source, newlines=False)}: invalid mix"]
    for error in kept:
        loc = ""
        for part in error["loc"]:
            if isinstance(part, int):
                loc += f"[{part}]"
            elif not _UNION_BRANCH.match(part) and part != "[key]":  # (a mapping's key)
                loc += f".{shown_field(part)}"
        message = cut(printable(error["msg"].removeprefix("Value error, ")), MESSAGE_CHARS)
        got = error.get("input")
        if error["type"] not in ("value_error", "missing") and not isinstance(got, dict | list):
            message += f" (got {cut(repr(got))})"
        loc = loc.lstrip(".")
        lines.append(f"  {loc}: {message}" if loc else f"  {message}")
    return "\n".join(lines)
