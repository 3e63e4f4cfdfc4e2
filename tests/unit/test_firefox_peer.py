"""The Firefox peer's pure logic, without a browser: its profile's preferences, the WebDriver
BiDi messages the agent builds and reads, and the result figures from Firefox-shaped
`getStats()` (no transport stats; relayed candidates that name no TURN URL).

Why: a preference missing from `user.js` is an idle browser that talks to Mozilla's servers
or hides its host candidates behind mDNS names, which a call then measures; a BiDi message
mis-built or mis-read is an agent that never says ready; and a Firefox row must name its pair
and relay as a Chromium row does.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from simnet.errors import EnvironmentProblem
from simnet.peer.browser.results import relay_info, selected_pair, turn_attempts, url_of_relay
from simnet.peer.firefox import agent_argv, certs, require_firefox
from simnet.peer.firefox.agent import _trustable
from simnet.peer.firefox.bidi import BidiError, ScriptError, command, evaluated, plain, session_url
from simnet.peer.firefox.browser import (
    LISTENING_LINE,
    PRELOAD,
    BrowserError,
    browser_env,
    flags,
    write_profile,
)
from simnet.peer.firefox.certs import certutil
from simnet.peer.firefox.prefs import PREFS, proxy_prefs, user_js
from simnet.services.coturn import CoturnFiles, write_certificates

# --- profile ---------------------------------------------------------------------------------


def _parsed(text: str) -> dict[str, object]:
    """`user.js` read back: name -> value, every line checked for its form."""
    found: dict[str, object] = {}
    for line in text.splitlines():
        if line.startswith("//"):
            continue
        match = re.fullmatch(r'user_pref\(("[^"]+"), (.+)\);', line)
        assert match, f"not a user_pref line: {line!r}"
        found[json.loads(match.group(1))] = json.loads(match.group(2))
    return found


def test_user_js_holds_every_pref_once_and_reads_back() -> None:
    text = user_js(PREFS)
    assert _parsed(text) == PREFS
    assert text == user_js(dict(reversed(list(PREFS.items()))))  # sorted: same file each run


@pytest.mark.parametrize(
    ("name", "value"),
    [
        # fake media, no prompt
        ("media.navigator.streams.fake", True),
        ("media.navigator.permission.disabled", True),
        # real host candidates: no mDNS, all interfaces, host candidates gathered
        ("media.peerconnection.ice.obfuscate_host_addresses", False),
        ("media.peerconnection.ice.default_address_only", False),
        ("media.peerconnection.ice.no_host", False),
        # an idle browser talks to nobody
        ("app.update.enabled", False),
        ("toolkit.telemetry.enabled", False),
        ("datareporting.healthreport.uploadEnabled", False),
        ("browser.safebrowsing.malware.enabled", False),
        ("browser.safebrowsing.provider.google4.updateURL", ""),
        ("network.captive-portal-service.enabled", False),
        ("network.connectivity-service.enabled", False),
        ("services.settings.server", "data:,#remote-settings-dummy/v1"),
        ("dom.push.enabled", False),
        ("app.normandy.enabled", False),
        ("extensions.pocket.enabled", False),
        ("network.trr.mode", 5),
        ("network.proxy.type", 0),
        # the page's clock at full resolution
        ("privacy.reduceTimerPrecision", False),
    ],
)
def test_the_profile_says_what_a_measured_peer_needs(name: str, value: object) -> None:
    assert _parsed(user_js(PREFS))[name] == value


def test_a_pref_of_another_type_is_refused() -> None:
    with pytest.raises(TypeError, match=r"x\.y"):
        user_js({"x.y": 1.5})  # type: ignore[dict-item]


def test_a_fresh_profile_is_emptied_and_given_its_prefs(tmp_path: Path) -> None:
    profile = tmp_path / "firefox-alice"
    profile.mkdir()
    (profile / "prefs.js").write_text("left from an earlier run")
    write_profile(profile)
    assert sorted(p.name for p in profile.iterdir()) == [
        "home",
        "user.js",
        "xdg-cache",
        "xdg-config",
    ]
    assert _parsed((profile / "user.js").read_text()) == PREFS
    env = browser_env(profile)
    assert env["HOME"] == str(profile / "home")  # nothing of a run outside its profile
    assert env["MOZ_REMOTE_SETTINGS_DEVTOOLS"] == "1"  # else services.settings.server is ignored


def test_a_profile_behind_a_proxy_sends_http_and_ssl_through_it(tmp_path: Path) -> None:
    """A manual proxy for HTTP and SSL (the signaling WebSocket and WebRTC's TURN over TCP/TLS
    go through `CONNECT`), on top of every other preference; ICE is not forced onto it (forced,
    nICEr finds no address to gather on: `proxy_prefs`)."""
    profile = tmp_path / "firefox-alice"
    profile.mkdir()
    write_profile(profile, proxy="http://192.0.2.10:3128")
    prefs = _parsed((profile / "user.js").read_text())
    assert prefs == {**PREFS, **proxy_prefs("http://192.0.2.10:3128")}
    assert prefs["network.proxy.type"] == 1
    assert (prefs["network.proxy.http"], prefs["network.proxy.http_port"]) == ("192.0.2.10", 3128)
    assert (prefs["network.proxy.ssl"], prefs["network.proxy.ssl_port"]) == ("192.0.2.10", 3128)
    assert prefs["media.peerconnection.ice.proxy_only"] is False
    assert PREFS["network.proxy.type"] == 0  # without a proxy: none, not the system's
    with pytest.raises(ValueError, match=r"not http://\[user:password@\]address:port") as bad:
        proxy_prefs("http://alice:s3cret@192.0.2.10")
    assert "s3cret" not in str(bad.value)  # the message never repeats a password


@pytest.mark.skipif(certutil() is None, reason="needs NSS's certutil (libnss3-tools)")
def test_the_profile_trusts_the_calls_ca_in_its_own_nss_database(tmp_path: Path) -> None:
    """The CA is in the profile's cert9.db, trusted for TLS servers ("C,,"), and nowhere else."""
    files = CoturnFiles(tmp_path)
    write_certificates(files, [IPv4Address("192.0.2.10")], "turn.simnet.test")
    profile = tmp_path / "firefox-alice"
    profile.mkdir()
    write_profile(profile, [files.ca])
    assert {"cert9.db", "key4.db"} <= {p.name for p in profile.iterdir()}
    listed = subprocess.run(
        ["certutil", "-L", "-d", f"sql:{profile}"], capture_output=True, text=True, check=True
    ).stdout
    assert re.search(r"simnet-ca-0\s+C,,\s*$", listed, re.MULTILINE), listed


def test_a_missing_certutil_is_a_browser_error_saying_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(certs, "certutil", lambda: None)
    profile = tmp_path / "firefox-alice"
    profile.mkdir()
    with pytest.raises(BrowserError, match="libnss3-tools"):
        write_profile(profile, [tmp_path / "ca.pem"])
    write_profile(profile)  # trusting nothing needs no certutil
    # the agent then trusts nothing extra rather than failing its start (UDP and TCP still work)
    assert _trustable([tmp_path / "ca.pem"]) == []


def test_flags_launch_headless_on_the_profile_with_a_kernel_picked_port(tmp_path: Path) -> None:
    argv = flags(tmp_path)
    assert "--headless" in argv and "--no-remote" in argv
    assert argv[argv.index("--profile") + 1] == str(tmp_path)
    assert "--remote-debugging-port=0" in argv


def test_argv_and_a_missing_browser() -> None:
    argv = agent_argv(
        "sn-x", Path("/w/firefox-x"), trust=[Path("/w/a.pem"), Path("/w/b.pem")], firefox="/opt/ff"
    )
    assert argv[:3] == [sys.executable, "-m", "simnet.peer.firefox"]
    assert argv[argv.index("--profile") + 1] == "/w/firefox-x"
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--trust"] == ["/w/a.pem", "/w/b.pem"]
    assert argv[argv.index("--firefox") + 1] == "/opt/ff"
    assert "--proxy" not in argv
    proxied = agent_argv("sn-x", Path("/w/firefox-x"), proxy="http://192.0.2.10:3128")
    assert proxied[proxied.index("--proxy") + 1] == "http://192.0.2.10:3128"
    with pytest.raises(EnvironmentProblem, match="/nonexistent/ff") as info:
        require_firefox("/nonexistent/ff")
    assert "apt-get install firefox-esr" in str(info.value.fix)


# --- WebDriver BiDi ----------------------------------------------------------------------------


def test_the_listening_line_gives_the_session_url() -> None:
    line = "WebDriver BiDi listening on ws://127.0.0.1:36517"
    match = LISTENING_LINE.search(line)
    assert match is not None
    assert session_url(match.group(1)) == "ws://127.0.0.1:36517/session"
    assert session_url("ws://127.0.0.1:36517/") == "ws://127.0.0.1:36517/session"


def test_a_command_message() -> None:
    assert command(7, "script.evaluate", {"expression": "1"}) == {
        "id": 7,
        "method": "script.evaluate",
        "params": {"expression": "1"},
    }
    assert command(8, "browser.close") == {"id": 8, "method": "browser.close", "params": {}}


def test_the_preload_script_gives_the_page_its_event_function() -> None:
    assert PRELOAD.startswith("(channel) =>") and "window.simnetEvent" in PRELOAD


def test_remote_values_read_as_json() -> None:
    report = {
        "type": "object",
        "value": [
            ["connected", {"type": "boolean", "value": True}],
            ["rtt", {"type": "number", "value": 0.25}],
            ["error", {"type": "null"}],
            ["missing", {"type": "undefined"}],
            ["ids", {"type": "array", "value": [{"type": "string", "value": "a"}]}],
            ["big", {"type": "bigint", "value": "12345678901234567890"}],
            ["node", {"type": "node", "sharedId": "x"}],
        ],
    }
    assert plain(report) == {
        "connected": True,
        "rtt": 0.25,
        "error": None,
        "missing": None,
        "ids": ["a"],
        "big": 12345678901234567890,
        "node": None,
    }
    assert math.isnan(plain({"type": "number", "value": "NaN"}))
    assert plain({"type": "number", "value": "-Infinity"}) == -math.inf


def test_an_evaluation_result_or_its_exception() -> None:
    ok = {"type": "success", "result": {"type": "number", "value": 1.5}, "realm": "r"}
    assert evaluated("script.evaluate", ok) == 1.5
    thrown = {"type": "exception", "exceptionDetails": {"text": "ReferenceError: x"}}
    with pytest.raises(ScriptError, match="ReferenceError: x") as info:
        evaluated("script.evaluate", thrown)
    assert isinstance(info.value, BidiError)  # the driver's failures include it


# --- Firefox-shaped statistics ----------------------------------------------------------------

TURN_UDP = "turn:203.0.113.5:3478?transport=udp"
TURN_TCP = "turn:203.0.113.5:3478?transport=tcp"


def _firefox_stats(local_type: str, relay_protocol: str | None = None) -> list[dict[str, object]]:
    """What Firefox 153's getStats() holds for a connected pair: no `transport` entry; the pair
    in use is flagged `selected`, and a relayed candidate names no URL."""
    local: dict[str, object] = {
        "id": "L1",
        "type": "local-candidate",
        "candidateType": local_type,
        "protocol": "udp",
        "address": "203.0.113.5" if local_type == "relay" else "192.168.1.10",
        "port": 50000,
    }
    if relay_protocol:
        local["relayProtocol"] = relay_protocol
    return [
        local,
        {"id": "L2", "type": "local-candidate", "candidateType": "host", "address": "x"},
        {
            "id": "R1",
            "type": "remote-candidate",
            "candidateType": "prflx",
            "protocol": "udp",
            "address": "192.168.1.11",
            "port": 40000,
        },
        {"id": "P0", "type": "candidate-pair", "localCandidateId": "L2", "remoteCandidateId": "R1"},
        {
            "id": "P1",
            "type": "candidate-pair",
            "localCandidateId": "L1",
            "remoteCandidateId": "R1",
            "selected": True,
            "nominated": True,
            "state": "succeeded",
        },
    ]


def test_firefox_selected_pair_is_the_one_flagged_selected() -> None:
    pair = selected_pair(_firefox_stats("host"))
    assert pair is not None and pair.relay is None
    assert (pair.local.address, pair.remote.type, pair.remote.port) == (
        "192.168.1.10",
        "prflx",
        40000,
    )


def test_a_relay_without_url_is_named_by_its_server_and_protocol() -> None:
    pair = selected_pair(_firefox_stats("relay", "udp"), [TURN_UDP, TURN_TCP])
    assert pair is not None and pair.relay is not None
    assert (pair.relay.server_url, pair.relay.server, pair.relay.transport) == (
        TURN_UDP,
        "203.0.113.5:3478",
        "udp",
    )
    # unsaid protocol and two URLs on that server: which one cannot be told, none is named
    assert url_of_relay("203.0.113.5", None, [TURN_UDP, TURN_TCP]) is None
    assert url_of_relay("203.0.113.5", None, [TURN_UDP]) == TURN_UDP
    assert url_of_relay("198.51.100.7", "udp", [TURN_UDP]) is None  # another server's relay
    local = {"candidateType": "relay", "address": "203.0.113.5", "relayProtocol": "tcp"}
    info = relay_info(local, [TURN_UDP, TURN_TCP])
    assert info is not None and info.server_url == TURN_TCP and info.transport == "tcp"


def test_turn_attempts_count_firefox_relayed_candidates() -> None:
    local = [
        {
            "candidate": "candidate:1 1 UDP 6 203.0.113.5 61000 typ relay raddr 0.0.0.0 rport 0",
            "url": None,
            "relay_protocol": None,
            "pt": 1120.0,
        }
    ]
    (attempt,) = turn_attempts([TURN_UDP], local, [], gather_started_pt=1000.0)
    assert attempt.ok and attempt.transport == "udp" and attempt.elapsed_ms == pytest.approx(120.0)
