"""Bad family input is one error naming the file, the field and the fix, exit 2, through the
CLI's `validate` (which plans the network, as every command does before building anything)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from simnet import cli

BASE = """\
servers:
  signaling: {kind: signaling}
  turn: {kind: turn, ip: v4, relay_families: [ipv4]}
hosts:
  alice: {behind: home}
  bob: {behind: internet}
"""

CASES = [
    # (the nats section, what the error line names)
    ("home: {v6_filtering: open}", ["nats.home", "v6_filtering", "ip: dual or v6"]),
    ("home: {v6: blackhole}", ["nats.home", "v6: blackhole", "IPv4 only"]),
    ("home: {ip: dual, nat64: true}", ["nats.home", "nat64", "set ip: v6"]),
    ("home: {nat64: true}", ["nats.home", "nat64", "set ip: v6"]),
    ("home: {ip: v6, mapping: eim}", ["nats.home", "mapping", "IPv6-only network without a NAT64"]),
    ("home: {ip: v6, preset: symmetric}", ["nats.home", "preset", "nat64: true"]),
    ("home: {ip: v6, hairpin: false}", ["nats.home", "hairpin", "remove it"]),
    ("home: {ip: v6, lan: 10.1.0.0/24}", ["nats.home", "lan", "no IPv4 LAN"]),
    ("home: {ip: v6, v4: blackhole}", ["nats.home", "v4: blackhole", "remove it"]),
    ("home: {ip: dual, v4: blackhole, v6: blackhole}", ["nats.home", "cut"]),
    ("home: {ip: v6, nat64: true, preset: open}", ["nats.home", "nat64", "preset open"]),
    ("home: {ip: dual, lan6: 'fd00:1::/64'}", ["nats.home.lan6", "outside 2001:db8::/32"]),
    ("home: {ip: dual, lan6: '2001:db8:3::/48'}", ["nats.home.lan6", "a /64"]),
    ("home: {ip: dual, lan6: '2001:db8:0:5::/64'}", ["nats.home.lan6", "overlaps 2001:db8::/48"]),
    ("home: {ip: dual, lan6: '2001:db8:64:1::/64'}", ["nats.home.lan6", "2001:db8:64::/48"]),
    ("home: {ip: dual, lan: 'fd00::/64'}", ["nats.home.lan", "`lan6:`"]),
    (
        "home: {ip: dual, lan6: '2001:db8:3:9::/64'}\n"
        "  other: {ip: dual, lan6: '2001:db8:3:9::/64'}",
        ["nats.other.lan6", "overlaps nats.home.lan6", "its own /64"],
    ),
    (
        "isp: {preset: open}\n  home: {ip: dual, behind: isp}",
        ["nats.home.ip", "IPv6 from nats.isp", "give nats.isp ip: dual"],
    ),
    (
        "carrier: {ip: v6, nat64: true}\n  home: {ip: v6, nat64: true, behind: carrier}",
        ["nats.home.nat64", "IPv4 from nats.carrier"],
    ),
    (
        "carrier: {ip: v6, preset: cgn}\n  home: {behind: carrier}",
        ["nats.home.ip", "IPv4 from nats.carrier"],
    ),
    ("home: {ip: v6, firewall: {block: ['10.0.0.0/8']}, v6_filtering: adf}", None),
]


def _validate(
    tmp_path: Path, nats: str, capsys: pytest.CaptureFixture[str], relay: str = "[ipv4]"
) -> tuple[int, str]:
    path = tmp_path / "family.yaml"
    base = BASE.replace("[ipv4]", relay)
    path.write_text(f"nats:\n  {nats}\n{base}", encoding="utf-8")
    argv = sys.argv
    sys.argv = ["simnet", "validate", str(path)]
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = argv
    captured = capsys.readouterr()
    return code, captured.err.replace("\n", " ") + captured.out


@pytest.mark.parametrize(("nats", "names"), CASES, ids=[c[0][:40] for c in CASES])
def test_bad_family_input_is_one_error_naming_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], nats: str, names: list[str] | None
) -> None:
    code, output = _validate(tmp_path, nats, capsys)
    if names is None:  # a control: the same knobs, fitting together
        assert code == 0, output
        return
    assert code == 2, output
    assert "Traceback" not in output
    assert str(tmp_path / "family.yaml") in output
    for name in names:
        assert name in " ".join(output.split()), (name, output)


def test_a_server_relaying_in_a_family_it_lacks_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = _validate(tmp_path, "home: {ip: dual}", capsys, relay="[ipv6]")
    assert code == 2 and "relay_families" in output and "no IPv6 address" in output, output


def test_a_move_into_an_ipv6_network_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nats = (
        "home: {ip: dual}\n  cafe: {}\ncall:\n  offerer: alice\n  answerer: bob\n"
        "  duration_s: 5\n  timeline: [{at_s: 1, action: move, target: alice, to: cafe}]"
    )
    code, output = _validate(tmp_path, nats, capsys)
    assert code == 2 and "call.timeline[0]" in output and "IPv4 address only" in output, output
