"""A population run's estimate: what share of a fleet's calls go direct, relayed, or fail.

Pure: from the run's calls (`SampledCall`, one per sampled call: its classes and what it did,
read from its result row) and the mix.

- The shares are the sampled calls' own outcome shares (`simnet.results.schema.call_outcome_of`:
  a call that connected and ended with an error failed, as `simnet run` judges it), each with a
  Wilson score interval (95 %): a proportion's interval that stays inside [0, 1] and is honest
  at small counts, unlike the normal approximation.
- Relay protocol shares (of relayed calls), set-up quantiles (successful calls), and the share of
  bytes that went through TURN: per call, the data-channel transfer plus the media each side
  sent over the call's media window (`*_sent_kbps` x `duration_s`).
- Each class's contribution to the TURN share, and the sensitivity table: the relay rate of each
  pair of classes, as measured, re-weighted with each class's share moved by +-10 points (the
  other classes of that side scaled to keep the sum 1): how much the fleet's TURN share depends
  on each input share.
- Which WebRTC stacks made the calls (`stacks`), the outcome shares of each pair of stacks
  (offerer's, answerer's) with their intervals (`stack_pairs`: a fleet that mixes stacks sees
  them differ, e.g. a stack that cannot use a proxy fails where a browser relays), and how
  many relayed calls had a direct pair that also passed its checks
  (`relayed_direct_also_succeeded`, of `relayed_checks_known`): a stack that nominates the
  first pair to succeed (aiortc) relays where the network would carry a direct call, so its
  relay share is partly that race, not the fleet's networks.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict

from simnet.peerkinds import DEFAULT_KIND
from simnet.population.mix import SIDES, Mix
from simnet.quantile import quantile
from simnet.results.schema import Outcome, ResultRow, call_outcome_of
from simnet.results.stats import wilson_interval

SENSITIVITY_POINTS = 0.10


class Sensitivity(BaseModel):
    model_config = ConfigDict(frozen=True)

    side: str
    network_class: str
    share: float
    relay_share_minus: float  # the fleet's TURN share with this class 10 points rarer
    relay_share_plus: float  # ... and 10 points more common


class OutcomeShares(BaseModel):
    """Calls' direct / relayed / failed shares, each with its 95 % Wilson interval."""

    model_config = ConfigDict(frozen=True)

    calls: int
    direct_share: float
    direct_share_ci_low: float
    direct_share_ci_high: float
    relay_share: float
    relay_share_ci_low: float
    relay_share_ci_high: float
    failed_share: float
    failed_share_ci_low: float
    failed_share_ci_high: float

    def share_of(self, outcome: Outcome) -> tuple[float, float, float]:
        """The outcome's share and its interval (low, high)."""
        share, low, high = (
            float(getattr(self, f"{outcome}_share{end}")) for end in ("", "_ci_low", "_ci_high")
        )
        return share, low, high


class StackPairShares(OutcomeShares):
    """The calls of one pair of stacks (the offerer's, the answerer's) and their shares."""

    offerer_stack: str
    answerer_stack: str


OUTCOMES: tuple[Outcome, ...] = ("direct", "relay", "failed")


def _outcome_shares(calls: Sequence[SampledCall]) -> dict[str, float]:
    """`<outcome>_share`, `_ci_low`, `_ci_high` of each outcome (`OutcomeShares`'s fields but
    `calls`), rounded as the output is."""
    counts = Counter(c.outcome for c in calls)
    out: dict[str, float] = {}
    for outcome in OUTCOMES:
        share, low, high = _share(counts[outcome], len(calls))
        out |= {
            f"{outcome}_share": round(share, 4),
            f"{outcome}_share_ci_low": round(low, 4),
            f"{outcome}_share_ci_high": round(high, 4),
        }
    return out


def _stack_pairs(calls: Sequence[SampledCall]) -> list[StackPairShares]:
    """Each pair of stacks that made calls, with its outcome shares, in name order."""
    by_pair: dict[tuple[str, str], list[SampledCall]] = {}
    for call in calls:
        by_pair.setdefault((call.offerer_stack, call.answerer_stack), []).append(call)
    return [
        StackPairShares(
            offerer_stack=a, answerer_stack=b, calls=len(group), **_outcome_shares(group)
        )
        for (a, b), group in sorted(by_pair.items())
    ]


class PopulationEstimate(OutcomeShares):
    """`simnet population --json` prints this."""

    relay_protocol_shares: dict[str, float]
    relayed_bytes_share: float | None
    setup_ms_p50: float | None
    setup_ms_p95: float | None
    model_relay_share: float  # the pairs' measured relay rates weighted by the mix's shares
    contributions: dict[str, dict[str, float]]  # side -> class -> part of the TURN share
    sensitivity: list[Sensitivity]
    # the WebRTC stacks of the calls ("aiortc", or "aiortc -> chromium": offerer's, answerer's)
    stacks: list[str] = []
    # each pair of stacks' calls and outcome shares (offerer's stack, answerer's)
    stack_pairs: list[StackPairShares] = []
    # relayed calls whose stack reported its checks, and those of them where a direct pair
    # passed its checks too: relays decided by ICE's nomination race, not by the network
    relayed_checks_known: int = 0
    relayed_direct_also_succeeded: int = 0

    @property
    def stack(self) -> str:
        """The stacks in one phrase, for a headline."""
        if len(self.stack_pairs) > 2:
            return f"{len(self.stack_pairs)} pairs of stacks"
        return ", ".join(self.stacks) or "unknown stack"

    def race_note(self) -> str | None:
        """What a headline says of relays the nomination race decided (None: nothing to say)."""
        if not self.relayed_direct_also_succeeded:
            return None
        return (
            f"{self.relayed_direct_also_succeeded} of {self.relayed_checks_known} relayed calls "
            "had a direct pair that also passed its checks: relayed because the stack nominated "
            "the relay first (a race), not because the network needed TURN"
        )


@dataclass(frozen=True)
class SampledCall:
    """What the estimate reads of one sampled call: its pair of classes and what it did."""

    offerer_class: str
    answerer_class: str
    connected: bool
    path: str | None
    relay_protocol: str | None
    setup_ms: float | None
    dc_bytes: float | None  # what the data-channel transfer delivered
    sent_kbps: tuple[float, ...]  # each media stream's sent bitrate (`*_sent_kbps`)
    error: str | None = None
    offerer_stack: str = DEFAULT_KIND  # the peer kinds of the two sides
    answerer_stack: str = DEFAULT_KIND
    direct_pair_succeeded: bool | None = None  # see `CallOutcome.direct_pair_succeeded`

    @property
    def stack(self) -> str:
        """The call's stacks as the report names them: one kind, or "offerer's -> answerer's"."""
        a, b = self.offerer_stack, self.answerer_stack
        return a if a == b else f"{a} -> {b}"

    @property
    def outcome(self) -> Outcome:
        """failed, relay or direct, as every output has it (`call_outcome_of`)."""
        return call_outcome_of(self.connected, self.error, self.path)

    @classmethod
    def of_row(cls, row: ResultRow) -> SampledCall:
        """The call of a row `simnet.population.run` placed (its cell has the classes)."""
        call = row.call
        return cls(
            offerer_class=str(row.cell["offerer_class"]),
            answerer_class=str(row.cell["answerer_class"]),
            connected=call.connected,
            path=call.path,
            relay_protocol=call.relay_protocol,
            setup_ms=call.setup_ms,
            dc_bytes=None if call.dc_bytes is None else float(call.dc_bytes),
            sent_kbps=_sent(call.media),
            error=call.error,
            offerer_stack=_kind(call.offerer_peer),
            answerer_stack=_kind(call.answerer_peer),
            direct_pair_succeeded=call.direct_pair_succeeded,
        )

    @classmethod
    def of_columns(cls, columns: Mapping[str, object]) -> SampledCall:
        """The call of a stored row: column -> value, as `simnet.results.load(...)`'s records
        have them. A missing figure is None or NaN there (a column of numbers holds NaN where a
        call had none): both read as missing, as in the live row."""
        path, protocol = columns.get("path"), columns.get("relay_protocol")
        setup, transfer = _figure(columns.get("setup_ms")), _figure(columns.get("dc_bytes"))
        error, race = columns.get("error"), columns.get("direct_pair_succeeded")
        return cls(
            offerer_class=str(columns["offerer_class"]),
            answerer_class=str(columns["answerer_class"]),
            connected=bool(columns.get("connected")),
            path=path if isinstance(path, str) else None,
            relay_protocol=protocol if isinstance(protocol, str) else None,
            setup_ms=setup or None,
            dc_bytes=transfer,
            sent_kbps=_sent(columns),
            error=error if isinstance(error, str) and error else None,
            offerer_stack=_kind(columns.get("offerer_peer")),
            answerer_stack=_kind(columns.get("answerer_peer")),
            direct_pair_succeeded=bool(race) if isinstance(race, bool | np.bool_) else None,
        )


def _kind(peer: object) -> str:
    """A side's peer kind; rows from before peer kinds were aiortc's."""
    return peer if isinstance(peer, str) and peer else DEFAULT_KIND


def _figure(value: object) -> float | None:
    """A stored number, None where it is missing (None or NaN)."""
    if not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def _sent(columns: Mapping[str, object]) -> tuple[float, ...]:
    return tuple(
        float(v)
        for k, v in columns.items()
        if k.endswith("_sent_kbps") and isinstance(v, int | float) and not math.isnan(v)
    )


def _call_bytes(call: SampledCall, duration_s: float) -> float:
    media = sum(kbps * 1000 / 8 * duration_s for kbps in call.sent_kbps)
    return media + (call.dc_bytes if call.dc_bytes is not None else 0.0)


def _rounded(figure: float | None) -> float | None:
    return None if figure is None else round(figure, 1)


def _share(count: int, n: int) -> tuple[float, float, float]:
    """A share with its 95 % Wilson interval; (0, 0, 1) when nothing was drawn."""
    if n == 0:
        return 0.0, 0.0, 1.0
    interval = wilson_interval(count, n)
    return count / n, interval.low, interval.high


def pair_rates(calls: Sequence[SampledCall]) -> dict[tuple[str, str], float]:
    """The measured relay rate of each pair of classes that was drawn."""
    counts: Counter[tuple[str, str]] = Counter()
    relayed: Counter[tuple[str, str]] = Counter()
    for call in calls:
        key = (call.offerer_class, call.answerer_class)
        counts[key] += 1
        relayed[key] += call.outcome == "relay"
    return {key: relayed[key] / n for key, n in counts.items()}


@dataclass(frozen=True)
class RelayModel:
    """The relay rate of every pair of classes: a drawn pair's as measured; a pair never drawn
    takes the mean rate of its offerer class's drawn pairs (else of all drawn pairs).

    The fleet's TURN share is sum over a, b of w_a * w_b * r(a, b), with w the two sides' class
    shares. Only drawn pairs differ from their offerer's fallback rate, so each side's weighted
    sums are computed from the drawn pairs alone: linear in the classes and the pairs, where
    the full table of pairs is quadratic (and the estimate, which moves every class's share,
    would be cubic)."""

    rates: Mapping[tuple[str, str], float]
    fallback: Mapping[str, float]  # offerer class -> the rate of its pairs never drawn
    overall: float  # ... of an offerer class never drawn

    @classmethod
    def of(cls, rates: Mapping[tuple[str, str], float]) -> RelayModel:
        by_offerer: dict[str, list[float]] = {}
        for (a, _), rate in rates.items():
            by_offerer.setdefault(a, []).append(rate)
        overall = float(np.mean(list(rates.values()))) if rates else 0.0
        fallback = {a: float(np.mean(known)) for a, known in by_offerer.items()}
        return cls(rates, fallback, overall)

    def rate(self, a: str, b: str) -> float:
        return self.rates.get((a, b), self.fallback.get(a, self.overall))

    def by_offerer(
        self, offerers: Mapping[str, float], answerers: Mapping[str, float]
    ) -> dict[str, float]:
        """Per offerer class a: sum over b of w_b * r(a, b)."""
        total_b = sum(answerers.values())
        out = {a: self.fallback.get(a, self.overall) * total_b for a in offerers}
        for (a, b), rate in self.rates.items():
            if a in out and b in answerers:
                out[a] += answerers[b] * (rate - self.fallback[a])
        return out

    def by_answerer(
        self, offerers: Mapping[str, float], answerers: Mapping[str, float]
    ) -> dict[str, float]:
        """Per answerer class b: sum over a of w_a * r(a, b)."""
        base = sum(w * self.fallback.get(a, self.overall) for a, w in offerers.items())
        out = dict.fromkeys(answerers, base)
        for (a, b), rate in self.rates.items():
            if b in out and a in offerers:
                out[b] += offerers[a] * (rate - self.fallback[a])
        return out


def weighted_relay_share(
    rates: Mapping[tuple[str, str], float],
    offerer_shares: Mapping[str, float],
    answerer_shares: Mapping[str, float],
) -> float:
    """The fleet's TURN share from pair rates and class shares; a pair never drawn takes the
    mean rate of its offerer class's drawn pairs (else of all drawn pairs)."""
    per_offerer = RelayModel.of(rates).by_offerer(offerer_shares, answerer_shares)
    return sum(w * per_offerer[a] for a, w in offerer_shares.items())


def _moved_share(
    shares: Mapping[str, float],
    per_class: Mapping[str, float],
    total: float,
    name: str,
    delta: float,
) -> float:
    """The TURN share `total` (= sum of share x `per_class` over one side's classes) with
    `name`'s share moved by `delta` (clipped to [0, 1]) and the side's other shares scaled to
    keep the sum 1: the other classes' part scales, `name`'s is replaced."""
    own = shares[name]
    target = min(1.0, max(0.0, own + delta))
    rest = 1.0 - own
    scale = (1.0 - target) / rest if rest > 0 else 0.0
    return scale * (total - own * per_class[name]) + target * per_class[name]


def estimate(calls: Sequence[SampledCall | Mapping[str, object]], mix: Mix) -> PopulationEstimate:
    """The fleet's estimate from its sampled calls; a stored row (a mapping of its columns) is
    read with `SampledCall.of_columns`."""
    sampled = [c if isinstance(c, SampledCall) else SampledCall.of_columns(c) for c in calls]
    n = len(sampled)
    relayed_calls = [c for c in sampled if c.outcome == "relay"]
    protocols = Counter(str(c.relay_protocol) for c in relayed_calls)
    setups = [c.setup_ms for c in sampled if c.outcome != "failed" and c.setup_ms]
    known = [c for c in relayed_calls if c.direct_pair_succeeded is not None]
    duration = mix.duration_s
    total_bytes = sum(_call_bytes(c, duration) for c in sampled)
    relay_bytes = sum(_call_bytes(c, duration) for c in relayed_calls)
    shares = {side: {c.name: c.share for c in mix.classes(side)} for side in SIDES}
    model = RelayModel.of(pair_rates(sampled))
    offerers, answerers = shares["offerer"], shares["answerer"]
    # each class's weighted rate against the other side: the TURN share, each class's part of
    # it and the share with one class's share moved all follow from these two, in linear time
    per_class = {
        "offerer": model.by_offerer(offerers, answerers),
        "answerer": model.by_answerer(offerers, answerers),
    }
    modelled = sum(w * per_class["offerer"][a] for a, w in offerers.items())
    contributions = {
        side: {
            name: round(weight * per_class[side][name], 4) if weight else 0.0
            for name, weight in shares[side].items()
        }
        for side in SIDES
    }
    sensitivity = [
        Sensitivity(
            side=side,
            network_class=name,
            share=weight,
            relay_share_minus=round(
                _moved_share(shares[side], per_class[side], modelled, name, -SENSITIVITY_POINTS), 4
            ),
            relay_share_plus=round(
                _moved_share(shares[side], per_class[side], modelled, name, SENSITIVITY_POINTS), 4
            ),
        )
        for side in SIDES
        for name, weight in shares[side].items()
    ]
    return PopulationEstimate(
        calls=n,
        **_outcome_shares(sampled),
        relay_protocol_shares={k: round(v / len(relayed_calls), 4) for k, v in protocols.items()},
        relayed_bytes_share=round(relay_bytes / total_bytes, 4) if total_bytes else None,
        setup_ms_p50=_rounded(quantile(setups, 0.5)),
        setup_ms_p95=_rounded(quantile(setups, 0.95)),
        model_relay_share=round(modelled, 4),
        contributions=contributions,
        sensitivity=sensitivity,
        stacks=sorted({c.stack for c in sampled}),
        stack_pairs=_stack_pairs(sampled),
        relayed_checks_known=len(known),
        relayed_direct_also_succeeded=sum(bool(c.direct_pair_succeeded) for c in known),
    )


def estimate_of_rows(rows: Sequence[Mapping[str, object]]) -> PopulationEstimate:
    """The estimate of population rows without their mix file: each side's class shares are the
    rows' own class frequencies (`offerer_class`, `answerer_class`)."""
    sides = {
        side: [
            {"class": name, "share": count / len(rows)}
            for name, count in Counter(str(r[f"{side}_class"]) for r in rows).most_common()
        ]
        for side in SIDES
    }
    return estimate(rows, Mix.model_validate({"sides": sides}))
