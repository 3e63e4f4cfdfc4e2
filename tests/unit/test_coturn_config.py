"""The coturn command line and TURN credentials, without starting anything.

Why: what simnet asks coturn to do is decided here, in pure code, and a wrong flag shows up
only as a call that silently fails over TURN (a private-range denial, a missing TLS port, a
system config file taking over). Credentials must match coturn's TURN REST algorithm exactly,
which the known-answer tests pin independently of the code under test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from simnet.errors import EnvironmentProblem, SimnetError
from simnet.services.coturn import (
    PRIVATE_PEER_RANGES,
    CoturnFiles,
    LongTermAuth,
    RestAuth,
    TurnConfig,
    find_turnserver,
    rest_credentials,
    turn_credentials,
    turnserver_argv,
    write_certificates,
)

SERVER = IPv4Address("192.0.2.10")
FILES = CoturnFiles(Path("/tmp/simnet-test-coturn"))


def _config(**kwargs: object) -> TurnConfig:
    kwargs.setdefault("listening_ips", (SERVER,))
    return TurnConfig(**kwargs)  # type: ignore[arg-type]


def _values(argv: list[str], flag: str) -> list[str]:
    """Every value given to `flag`, in both `--flag value` and `--flag=value` forms."""
    out = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]
    out += [a.split("=", 1)[1] for a in argv if a.startswith(flag + "=")]
    return out


def test_default_long_term_command_line() -> None:
    argv = turnserver_argv(_config(auth=LongTermAuth.single("alice", "s3cret")), FILES)
    assert argv[0] == "turnserver"
    # -n: never read /etc/turnserver.conf (Debian's says `syslog`).
    for flag in ("-n", "--no-cli", "--fingerprint", "--no-multicast-peers", "--lt-cred-mech"):
        assert flag in argv
    assert "--simple-log" in argv and "--no-stdout-log" in argv
    assert _values(argv, "--listening-ip") == ["192.0.2.10"]
    assert _values(argv, "--relay-ip") == ["192.0.2.10"]
    assert _values(argv, "--user") == ["alice:s3cret"]
    assert _values(argv, "--realm") == ["simnet.test"]
    assert _values(argv, "--listening-port") == ["3478"]
    assert _values(argv, "--tls-listening-port") == ["5349"]
    assert _values(argv, "--aux-server") == ["192.0.2.10:443"]
    assert _values(argv, "--min-port") == ["49152"] and _values(argv, "--max-port") == ["65535"]
    assert _values(argv, "--log-file") == [str(FILES.log)]
    assert _values(argv, "--pidfile") == [str(FILES.pid)]
    assert _values(argv, "--userdb") == [str(FILES.userdb)]
    assert _values(argv, "--cert") == [str(FILES.cert)]
    assert _values(argv, "--pkey") == [str(FILES.pkey)]
    assert "--use-auth-secret" not in argv and "--static-auth-secret" not in argv
    assert "--external-ip" not in argv  # servers sit on public addresses: not needed
    assert "--no-tls" not in argv and "--denied-peer-ip" not in " ".join(argv)


def test_emulated_public_ranges_are_always_allowed_peers() -> None:
    argv = turnserver_argv(_config(denied_peers=PRIVATE_PEER_RANGES), FILES)
    allowed = _values(argv, "--allowed-peer-ip")
    assert allowed == [
        "192.0.2.0-192.0.2.255",
        "198.51.100.0-198.51.100.255",
        "203.0.113.0-203.0.113.255",
    ]
    denied = _values(argv, "--denied-peer-ip")
    assert "192.168.0.0-192.168.255.255" in denied
    assert "10.0.0.0-10.255.255.255" in denied
    assert len(denied) == len(PRIVATE_PEER_RANGES)


def test_rest_auth_command_line() -> None:
    argv = turnserver_argv(_config(auth=RestAuth("north-star")), FILES)
    assert "--use-auth-secret" in argv
    assert _values(argv, "--static-auth-secret") == ["north-star"]
    assert "--lt-cred-mech" not in argv and "--user" not in argv


def test_every_user_is_passed() -> None:
    auth = LongTermAuth(users=(("alice", "a"), ("bob", "b:with:colons")))
    argv = turnserver_argv(_config(auth=auth), FILES)
    assert _values(argv, "--user") == ["alice:a", "bob:b:with:colons"]


def test_no_tls_disables_tls_and_dtls_and_needs_no_certificate() -> None:
    argv = turnserver_argv(_config(tls_port=None), FILES)
    assert "--no-tls" in argv and "--no-dtls" in argv
    assert "--cert" not in argv and "--tls-listening-port" not in argv


def test_addresses_ports_and_options() -> None:
    second = IPv4Address("192.0.2.11")
    config = _config(
        listening_ips=(SERVER, second),
        relay_ips=(second,),
        external_ip=IPv4Address("198.51.100.99"),
        port=3479,
        tls_port=5350,
        extra_ports=(443, 8443),
        min_relay_port=50000,
        max_relay_port=50100,
        verbose=True,
        extra_args=("--stale-nonce=600",),
    )
    argv = turnserver_argv(config, FILES, binary="/usr/bin/turnserver")
    assert argv[0] == "/usr/bin/turnserver"
    assert _values(argv, "--listening-ip") == ["192.0.2.10", "192.0.2.11"]
    assert _values(argv, "--relay-ip") == ["192.0.2.11"]
    assert _values(argv, "--external-ip") == ["198.51.100.99"]
    assert _values(argv, "--listening-port") == ["3479"]
    assert _values(argv, "--tls-listening-port") == ["5350"]
    assert _values(argv, "--aux-server") == [
        "192.0.2.10:443",
        "192.0.2.11:443",
        "192.0.2.10:8443",
        "192.0.2.11:8443",
    ]
    assert _values(argv, "--min-port") == ["50000"] and _values(argv, "--max-port") == ["50100"]
    assert "--verbose" in argv and argv[-1] == "--stale-nonce=600"
    assert config.udp_ports == (3479, 443, 8443)
    assert config.tcp_ports == (3479, 5350, 443, 8443)
    assert config.tls_ports == (5350, 443, 8443)


def test_rendering_needs_a_listening_address() -> None:
    with pytest.raises(SimnetError, match="no listening address"):
        turnserver_argv(TurnConfig(), FILES)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"port": 0}, "not in 1-65535"),
        ({"tls_port": 3478}, "overlap"),
        ({"extra_ports": (5349,)}, "overlap"),
        ({"min_relay_port": 60000, "max_relay_port": 50000}, "is empty"),
        ({"min_relay_port": 400, "max_relay_port": 1000}, "lie in the relay port range"),
        ({"realm": "two words"}, "realm"),
    ],
)
def test_invalid_configs_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SimnetError, match=message):
        _config(**kwargs)


def test_invalid_auth_is_rejected() -> None:
    with pytest.raises(SimnetError, match="contains ':'"):
        LongTermAuth.single("a:b", "pw")
    with pytest.raises(SimnetError, match="empty password"):
        LongTermAuth.single("alice", "")
    with pytest.raises(SimnetError, match="shared secret"):
        RestAuth("")
    with pytest.raises(SimnetError, match="positive"):
        RestAuth("s", ttl_s=0)


def test_rest_credentials_known_answer() -> None:
    # Fixed vector, computed outside Python:
    #   printf '1700003600:alice' | openssl dgst -sha1 -hmac north-star -binary | base64
    assert rest_credentials("north-star", "alice", 1_700_003_600) == (
        "1700003600:alice",
        "hkfdlfWYpVBeofXj/45bV7mPHEs=",
    )


def test_turn_credentials_rest_mode_expiry_and_hmac() -> None:
    config = _config(auth=RestAuth("north-star", ttl_s=3600))
    username, password = turn_credentials(config, "bob", now=1_700_000_000.7)
    assert username == "1700003600:bob"
    expected = base64.b64encode(
        hmac.new(b"north-star", b"1700003600:bob", hashlib.sha1).digest()
    ).decode()
    assert password == expected
    default_user, _ = turn_credentials(config, now=0)
    assert default_user == "3600:simnet"


def test_turn_credentials_rest_mode_defaults_to_now() -> None:
    config = _config(auth=RestAuth("x", ttl_s=600))
    before = int(time.time())
    username, _ = turn_credentials(config, "carol")
    expiry = int(username.split(":", 1)[0])
    assert before + 600 <= expiry <= int(time.time()) + 600


def test_turn_credentials_long_term_mode() -> None:
    config = _config(auth=LongTermAuth(users=(("alice", "a"), ("bob", "b"))))
    assert turn_credentials(config) == ("alice", "a")
    assert turn_credentials(config, "bob") == ("bob", "b")
    with pytest.raises(SimnetError, match="not configured"):
        turn_credentials(config, "mallory")


def test_missing_turnserver_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EnvironmentProblem) as info:
        find_turnserver()
    assert info.value.fix is not None and "./setup.sh" in info.value.fix
    assert "apt-get install coturn" in info.value.fix


def test_the_server_certificate_covers_its_addresses_and_is_signed_by_the_run_ca(
    tmp_path: Path,
) -> None:
    """Clients trust the per-run CA; the server's certificate (no CA: Firefox refuses a CA as a
    server's) names the server's name and addresses and is sent with the CA after it."""
    files = CoturnFiles(tmp_path)
    addresses = [SERVER, IPv4Address("192.0.2.11")]
    write_certificates(files, addresses, "turn.simnet.test")
    (ca,) = x509.load_pem_x509_certificates(files.ca.read_bytes())
    cert, sent_ca = x509.load_pem_x509_certificates(files.cert.read_bytes())
    assert sent_ca == ca
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.issuer == ca.subject != cert.subject
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == addresses
    assert san.get_values_for_type(x509.DNSName) == ["turn.simnet.test"]
    key = serialization.load_pem_private_key(files.pkey.read_bytes(), password=None)
    assert key.public_key() == cert.public_key()
    assert files.pkey.stat().st_mode & 0o077 == 0  # the private key is not world-readable
