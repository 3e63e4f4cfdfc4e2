"""coturn (turnserver) as a per-run STUN/TURN service inside a server's namespace.

The configuration is a small pure model (`TurnConfig`) rendered to a turnserver command line
(`turnserver_argv`), so what simnet asks coturn to do can be unit-tested without root; only
`start_coturn` touches the machine.

Choices, and why:

- Everything is on the command line with `-n` (no configuration file). Without `-n` turnserver
  reads /etc/turnserver.conf, and Debian's ships `syslog`, which would send our logs to syslog
  and mix the settings of the host's coturn into every run. The price: secrets are visible in
  /proc/PID/cmdline, which is acceptable for throwaway credentials on an emulator.
- Per-run files (log, pid file, CA and certificate, SQLite user DB) live in a private work
  directory, so concurrent runs never share state. `--userdb` is given because coturn otherwise
  opens the machine-wide /var/lib/turn/turndb.
- Port 443: a corporate firewall that only lets TCP 443 out must still reach TURN. coturn has
  one plain port and one TLS port per listener; a third endpoint is an `--aux-server IP:443`,
  which serves UDP and TCP and, because coturn detects TLS on any TCP listener once a
  certificate is loaded, TURN over TLS as well (verified by the integration tests).
- Peer filtering (measured on 4.6.1 with these flags, answers to CreatePermission): 127/8 and
  0/8 are denied by default (`--allow-loopback-peers` would admit loopback), 224.0.0.0 and above
  by `--no-multicast-peers` (set here); private ranges (10/8, 192.168/16, 169.254/16) and the
  documentation ranges are allowed unless `--denied-peer-ip` says otherwise.
  Relay targets in an emulated network are public NAT and host addresses in the RFC 5737
  documentation ranges, so those are always passed as `--allowed-peer-ip` (an allowed range wins
  over a denied one in coturn): they stay reachable even when a scenario denies private
  (`PRIVATE_PEER_RANGES`) or all ranges, as hardened production servers do.
- `--fingerprint` because browsers and aioice send FINGERPRINT and coturn then answers with it.
- Addresses of either family are rendered as coturn takes them: an IPv6 listening or relay
  address as it is, an `--aux-server` endpoint as `[address]:port`, a peer range as
  'first-last'. The default allowed peer ranges are the emulated internet's of both families
  (IPv6: the documentation range 2001:db8::/32, `IPV6_PUBLIC_PEER_RANGES`), each rendered only
  for a server that relays in its family, so an IPv4-only server's command line is IPv4 only.
- Both families (RFC 6156): coturn listens on every address of the server and relays from a
  `--relay-ip` of each family it relays (`TurnConfig.relay_families`: both by default). Which
  family an allocation gets is the client's REQUESTED-ADDRESS-FAMILY, and IPv4 without one
  (RFC 6156 section 4.2; aioice sends none), whatever family the client reached the server in:
  an IPv6-only client gets an IPv4 relay that reaches IPv4-only peers (measured on 4.6.1; see
  docs/guides/ipv6.md#peers-and-turn-on-ipv6). A family the server does not relay is refused with
  440 (Address Family not Supported), so a server that relays no IPv4 would refuse every
  allocation of aiortc and Chromium, which request no family (measured: 440 for both); such a
  server gets `--allocation-default-address-family=ipv6`, as its operator would have to set.
- coturn also tries SCTP listeners; kernels without SCTP make it print "socket: Protocol not
  supported" on its console, which is harmless.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import logging
import os
import shutil
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Literal

from simnet import settings
from simnet.addresses import IPV4, Family, IPAddress, IPNetwork, socket_family, url_host
from simnet.aio import within
from simnet.errors import EnvironmentProblem, SimnetError
from simnet.net import netns, realtime
from simnet.net.builder import Network
from simnet.net.process import POLL_S, ManagedProcess, start_logged
from simnet.services.turn_client import stun_binding

TURNSERVER = "turnserver"
INSTALL_FIX = "run ./setup.sh (apt-get install coturn)"

DEFAULT_PORT = 3478
DEFAULT_TLS_PORT = 5349
FIREWALL_FRIENDLY_PORT = 443

# The emulated public internet (see simnet.net.plan): servers, NAT WAN sides, public hosts and
# the LANs of non-translating routers. TURN must always be allowed to relay to these.
PUBLIC_PEER_RANGES: tuple[IPNetwork, ...] = (
    IPv4Network("192.0.2.0/24"),
    IPv4Network("198.51.100.0/24"),
    IPv4Network("203.0.113.0/24"),
)
IPV6_PUBLIC_PEER_RANGES: tuple[IPNetwork, ...] = (IPv6Network("2001:db8::/32"),)
# What hardened coturn deployments deny (coturn's example turnserver.conf list, IPv4 part).
PRIVATE_PEER_RANGES: tuple[IPNetwork, ...] = (
    IPv4Network("0.0.0.0/8"),
    IPv4Network("10.0.0.0/8"),
    IPv4Network("100.64.0.0/10"),
    IPv4Network("127.0.0.0/8"),
    IPv4Network("169.254.0.0/16"),
    IPv4Network("172.16.0.0/12"),
    IPv4Network("192.0.0.0/24"),
    IPv4Network("192.168.0.0/16"),
    IPv4Network("198.18.0.0/15"),
    IPv4Network("240.0.0.0/4"),
)

READY_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 0.2
STOP_GRACE_S = 2.0
LOG_TAIL_LINES = 15
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LongTermAuth:
    """Static long-term credentials (`--lt-cred-mech --user name:password`)."""

    users: tuple[tuple[str, str], ...] = (("simnet", "simnet"),)

    def __post_init__(self) -> None:
        if not self.users:
            raise SimnetError("TURN long-term auth needs at least one user")
        for name, password in self.users:
            if not name or ":" in name:
                raise SimnetError(
                    f"TURN user name {name!r} is empty or contains ':'",
                    fix="coturn splits 'name:password' at the first ':'; pick another name",
                )
            if not password:
                raise SimnetError(f"TURN user {name!r} has an empty password")

    @classmethod
    def single(cls, username: str, password: str) -> LongTermAuth:
        return cls(users=((username, password),))

    @property
    def mode(self) -> Literal["long-term"]:
        return "long-term"


@dataclass(frozen=True)
class RestAuth:
    """TURN REST API ephemeral credentials (`--use-auth-secret --static-auth-secret`).

    A client's username is "<expiry unix time>:<user>" and its password is
    base64(HMAC-SHA1(secret, username)); coturn recomputes the password from the secret and
    rejects the username once the expiry time has passed.
    """

    secret: str
    ttl_s: int = 24 * 3600

    def __post_init__(self) -> None:
        if not self.secret:
            raise SimnetError("TURN REST auth needs a non-empty shared secret")
        if self.ttl_s <= 0:
            raise SimnetError(f"TURN REST credential lifetime must be positive, not {self.ttl_s}")

    @property
    def mode(self) -> Literal["rest"]:
        return "rest"


TurnAuth = LongTermAuth | RestAuth


def _check_port(port: int, what: str) -> None:
    if not 1 <= port <= 65535:
        raise SimnetError(f"TURN {what} {port} is not in 1-65535")


@dataclass(frozen=True)
class TurnConfig:
    """What one coturn instance serves. Pure data; `turnserver_argv` renders it.

    `listening_ips` empty means "all of the server node's addresses" (filled in by
    `start_coturn`); `relay_ips` empty means "the listening addresses of `relay_families`"
    (empty: of every family). `allowed_peers` of a family the server does not relay are left
    off its command line. `port` serves UDP and
    TCP, `tls_port` TLS and DTLS (None: no TLS at all), each of `extra_ports` UDP, TCP and TLS
    (443 by default, for firewalls that only allow TCP 443 out).
    """

    realm: str = "simnet.test"
    auth: TurnAuth = field(default_factory=LongTermAuth)
    listening_ips: tuple[IPAddress, ...] = ()
    relay_ips: tuple[IPAddress, ...] = ()
    relay_families: tuple[Family, ...] = ()  # the families it relays (empty: every family)
    external_ip: IPAddress | None = None  # only for a server behind a NAT (not the default)
    port: int = DEFAULT_PORT
    tls_port: int | None = DEFAULT_TLS_PORT
    extra_ports: tuple[int, ...] = (FIREWALL_FRIENDLY_PORT,)
    min_relay_port: int = 49152
    max_relay_port: int = 65535
    allowed_peers: tuple[IPNetwork, ...] = PUBLIC_PEER_RANGES + IPV6_PUBLIC_PEER_RANGES
    denied_peers: tuple[IPNetwork, ...] = ()
    verbose: bool = False
    extra_args: tuple[str, ...] = ()
    # coturn's limits (None: coturn's default, unlimited): allocations at once in total and per
    # user, total and per-allocation bandwidth in bytes per second
    total_quota: int | None = None
    user_quota: int | None = None
    bps_capacity: int | None = None
    max_bps: int | None = None

    def __post_init__(self) -> None:
        if not self.realm or any(c.isspace() for c in self.realm):
            raise SimnetError(f"TURN realm {self.realm!r} must be non-empty without spaces")
        _check_port(self.port, "port")
        if self.tls_port is not None:
            _check_port(self.tls_port, "TLS port")
        for port in self.extra_ports:
            _check_port(port, "extra port")
        ports = self.listening_ports
        if len(set(ports)) != len(ports):
            raise SimnetError(f"TURN listening ports overlap: {ports}")
        _check_port(self.min_relay_port, "min relay port")
        _check_port(self.max_relay_port, "max relay port")
        if self.min_relay_port > self.max_relay_port:
            raise SimnetError(
                f"TURN relay port range {self.min_relay_port}-{self.max_relay_port} is empty"
            )
        clash = [p for p in ports if self.min_relay_port <= p <= self.max_relay_port]
        if clash:
            raise SimnetError(
                f"TURN listening port(s) {clash} lie in the relay port range "
                f"{self.min_relay_port}-{self.max_relay_port}"
            )

    @property
    def listening_ports(self) -> tuple[int, ...]:
        tls = () if self.tls_port is None else (self.tls_port,)
        return (self.port, *tls, *self.extra_ports)

    @property
    def udp_ports(self) -> tuple[int, ...]:
        """Ports where TURN over UDP is served (DTLS on the TLS port is not probed)."""
        return (self.port, *self.extra_ports)

    @property
    def tcp_ports(self) -> tuple[int, ...]:
        return self.listening_ports

    @property
    def tls_ports(self) -> tuple[int, ...]:
        """Ports where TURN over TLS is served (coturn detects TLS on aux endpoints too)."""
        return () if self.tls_port is None else (self.tls_port, *self.extra_ports)

    @property
    def effective_relay_ips(self) -> tuple[IPAddress, ...]:
        if self.relay_ips:
            return self.relay_ips
        wanted = self.relay_families or (4, 6)
        return tuple(ip for ip in self.listening_ips if ip.version in wanted)

    @property
    def peer_families(self) -> frozenset[Family]:
        """The families of the peers it can relay to: those of its relay addresses."""
        return frozenset(ip.version for ip in self.effective_relay_ips)


@dataclass(frozen=True)
class CoturnFiles:
    """Where one coturn instance keeps its per-run files."""

    workdir: Path

    @property
    def log(self) -> Path:
        return self.workdir / "turnserver.log"

    @property
    def console(self) -> Path:
        """stdout/stderr: what turnserver prints before its log file is open."""
        return self.workdir / "turnserver.console"

    @property
    def pid(self) -> Path:
        return self.workdir / "turnserver.pid"

    @property
    def userdb(self) -> Path:
        return self.workdir / "turndb.sqlite"

    @property
    def cert(self) -> Path:
        return self.workdir / "cert.pem"

    @property
    def pkey(self) -> Path:
        return self.workdir / "pkey.pem"

    @property
    def ca(self) -> Path:
        """The per-run CA that signed `cert`: what clients trust for TURN over TLS."""
        return self.workdir / "ca.pem"


def _range(network: IPNetwork) -> str:
    """coturn 4.6.1 takes peer ranges as 'first-last', not CIDR."""
    return f"{network.network_address}-{network.broadcast_address}"


def turnserver_argv(config: TurnConfig, files: CoturnFiles, binary: str = TURNSERVER) -> list[str]:
    """The turnserver command line for `config` (pure; see the module docstring for why)."""
    if not config.listening_ips:
        raise SimnetError("TURN config has no listening address; start_coturn fills it in")
    if not config.effective_relay_ips:
        raise SimnetError(
            f"TURN config relays no family it has an address of (relay families "
            f"{list(config.relay_families)}, addresses {[str(a) for a in config.listening_ips]})"
        )
    argv = [
        binary,
        "-n",
        "--no-cli",
        "--log-file",
        str(files.log),
        "--simple-log",
        "--no-stdout-log",
        "--pidfile",
        str(files.pid),
        "--userdb",
        str(files.userdb),
        "--fingerprint",
        "--no-multicast-peers",
        "--realm",
        config.realm,
        "--listening-port",
        str(config.port),
    ]
    for ip in config.listening_ips:
        argv += ["--listening-ip", str(ip)]
    for ip in config.effective_relay_ips:
        argv += ["--relay-ip", str(ip)]
    if config.external_ip is not None:
        argv += ["--external-ip", str(config.external_ip)]
    argv += ["--min-port", str(config.min_relay_port), "--max-port", str(config.max_relay_port)]
    for option, value in (
        ("--total-quota", config.total_quota),
        ("--user-quota", config.user_quota),
        ("--bps-capacity", config.bps_capacity),
        ("--max-bps", config.max_bps),
    ):
        if value is not None:
            argv += [option, str(value)]
    if isinstance(config.auth, RestAuth):
        argv += ["--use-auth-secret", "--static-auth-secret", config.auth.secret]
    else:
        argv.append("--lt-cred-mech")
        for name, password in config.auth.users:
            argv += ["--user", f"{name}:{password}"]
    if config.tls_port is None:
        argv += ["--no-tls", "--no-dtls"]
    else:
        argv += [
            "--tls-listening-port",
            str(config.tls_port),
            "--cert",
            str(files.cert),
            "--pkey",
            str(files.pkey),
        ]
    for port in config.extra_ports:
        for ip in config.listening_ips:
            argv += ["--aux-server", f"{url_host(ip)}:{port}"]
    if IPV4 not in config.peer_families:  # see the module's docstring
        argv.append("--allocation-default-address-family=ipv6")
    for network in config.allowed_peers:
        if network.version in config.peer_families:
            argv.append(f"--allowed-peer-ip={_range(network)}")
    for network in config.denied_peers:
        argv.append(f"--denied-peer-ip={_range(network)}")
    if config.verbose:
        argv.append("--verbose")
    argv += config.extra_args
    return argv


def rest_credentials(secret: str, user: str, expiry: int) -> tuple[str, str]:
    """TURN REST API credentials valid until unix time `expiry`."""
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def turn_credentials(
    config: TurnConfig, user: str | None = None, *, now: float | None = None
) -> tuple[str, str]:
    """(username, password) a client of this coturn should use.

    Long-term: the configured user named `user` (default: the first one). REST: ephemeral
    credentials for `user` (default "simnet") expiring `ttl_s` after `now` (default: now).
    """
    if isinstance(config.auth, RestAuth):
        moment = time.time() if now is None else now
        return rest_credentials(
            config.auth.secret, user or "simnet", int(moment) + config.auth.ttl_s
        )
    users = dict(config.auth.users)
    name = user or config.auth.users[0][0]
    if name not in users:
        raise SimnetError(
            f"TURN user {name!r} is not configured; users: {', '.join(users)}",
            fix="add it to LongTermAuth(users=...) or use REST auth",
        )
    return name, users[name]


def write_certificates(files: CoturnFiles, addresses: Sequence[IPAddress], name: str) -> None:
    """Throwaway P-256 certificates for TURN over TLS, valid for two days: a per-run CA
    (`files.ca`, what clients trust) and the server's certificate it signs (`files.cert`, with
    the CA after it, so a client is sent the whole chain; its key in `files.pkey`).

    The server's certificate names `name` and every one of `addresses` (subjectAltName) and is
    no CA: Firefox (mozilla::pkix) refuses a certificate that is a CA as a server's
    (MOZILLA_PKIX_ERROR_CA_CERT_USED_AS_END_ENTITY), so a self-signed certificate trusted as its
    own CA fails there. Generated per run with `cryptography` (an aiortc dependency) so no run
    shares a key.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"simnet run CA for {name}")])
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])

    def usage(cert_sign: bool) -> x509.KeyUsage:
        """A CA's key usage (certificates signed), or a TLS server's (signatures)."""
        return x509.KeyUsage(
            digital_signature=not cert_sign,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=cert_sign,
            crl_sign=cert_sign,
            encipher_only=False,
            decipher_only=False,
        )

    def builder(name: x509.Name, public: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(ca_name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
        )

    ca = (
        builder(ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(cert_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    sans: list[x509.GeneralName] = [x509.DNSName(name), *(x509.IPAddress(a) for a in addresses)]
    cert = (
        builder(subject, key.public_key())
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    fd = os.open(files.pkey, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    pem = serialization.Encoding.PEM
    files.ca.write_bytes(ca.public_bytes(pem))
    files.cert.write_bytes(cert.public_bytes(pem) + ca.public_bytes(pem))


def find_turnserver() -> str:
    """Path of the turnserver binary, or `EnvironmentProblem` saying how to install it."""
    path = shutil.which(TURNSERVER)
    if path is None:
        raise EnvironmentProblem(
            "turnserver (coturn) is not installed; simnet needs it for STUN/TURN servers",
            fix=INSTALL_FIX,
        )
    return path


def _tail(path: Path, lines: int) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


@dataclass
class CoturnHandle:
    """A running coturn. The run kills it at teardown anyway; `stop()` ends it earlier."""

    node: str
    ns: str
    config: TurnConfig
    files: CoturnFiles
    process: ManagedProcess
    ready_s: float  # from spawn to answering on every endpoint

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def address(self) -> IPAddress:
        """The primary public address clients use (and the relay address)."""
        return self.config.listening_ips[0]

    @property
    def cert_path(self) -> Path | None:
        """The per-run CA to trust for TURN over TLS (it signed the server's certificate), if
        TLS is on."""
        return None if self.config.tls_port is None else self.files.ca

    def urls(self) -> list[str]:
        """ICE server URLs (RFC 7065) for every endpoint this coturn serves."""
        host = url_host(self.address)
        out = [f"turn:{host}:{p}?transport=udp" for p in self.config.udp_ports]
        plain_tcp = (self.config.port, *self.config.extra_ports)
        out += [f"turn:{host}:{p}?transport=tcp" for p in plain_tcp]
        out += [f"turns:{host}:{p}?transport=tcp" for p in self.config.tls_ports]
        return out

    def credentials(self, user: str | None = None) -> tuple[str, str]:
        return turn_credentials(self.config, user)

    def alive(self) -> bool:
        return self.process.alive()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        return _tail(self.files.log, lines) + _tail(self.files.console, lines)

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after a grace period, and reap it.

        Blocks for at most `STOP_GRACE_S` (coturn exits on SIGTERM in milliseconds). Safe to
        call twice and after the run has already killed the process.
        """
        self.process.stop(STOP_GRACE_S)


async def start_coturn(
    network: Network,
    server_node: str,
    config: TurnConfig | None = None,
    *,
    workdir: Path | None = None,
    timeout_s: float = READY_TIMEOUT_S,
) -> CoturnHandle:
    """Start coturn in `server_node`'s namespace and return once it serves every endpoint.

    Ready means: a STUN Binding request to each UDP endpoint is answered and each TCP endpoint
    accepts a connection, both from a socket inside the server's namespace, polled until
    `timeout_s`. A process that exits early (bad option: turnserver prints its help and exits 0)
    or never gets ready (e.g. an address it cannot bind, which it retries forever) raises
    `SimnetError` with the end of its log. The process is registered with the network's run,
    which kills its process group at teardown; the work directory (log, certificate) lives in the
    run's work directory unless the caller chooses one, and goes with the run.
    """
    binary = find_turnserver()
    ns = network.ns(server_node)
    if config is None:
        config = TurnConfig()
    if not config.listening_ips:
        node = network.plan.nodes[server_node]
        config = replace(config, listening_ips=tuple(node.all_addresses()))
    if workdir is None:
        workdir = network.run.workdir / f"coturn-{server_node}"  # removed with the run
    workdir.mkdir(parents=True, exist_ok=True)
    files = CoturnFiles(workdir)
    if config.tls_port is not None:
        write_certificates(files, config.listening_ips, f"{server_node}.{config.realm}")
    argv = turnserver_argv(config, files, binary)
    started = time.monotonic()
    process = start_logged(
        network.run,
        f"coturn-{server_node}",
        argv,
        ns=ns,
        log=files.console,
        missing=f"cannot run {binary} (coturn)",
        fix=INSTALL_FIX,
    )
    handle = CoturnHandle(server_node, ns, config, files, process, ready_s=0.0)
    try:
        await _wait_ready(handle, started + timeout_s)
    except BaseException:
        handle.stop()
        raise
    handle.ready_s = time.monotonic() - started
    # scheduled before the peers, as a server on a machine of its own (`simnet.net.realtime`)
    problem = realtime.promote(process.pid, settings.server_rt_priority())
    if problem is not None:
        log.warning(
            "coturn-%s keeps normal scheduling (%s): busy peers can starve it", server_node, problem
        )
    network.run.info.setdefault("services", []).append(
        {"kind": "coturn", "node": server_node, "pid": process.pid, "workdir": str(workdir)}
    )
    network.run.save()
    return handle


async def _wait_ready(handle: CoturnHandle, deadline: float) -> None:
    """Poll every endpoint until all answer, the process dies, or the deadline passes."""
    config = handle.config
    pending: list[tuple[str, IPAddress, int]] = [
        ("udp", ip, port) for ip in config.listening_ips for port in config.udp_ports
    ]
    pending += [("tcp", ip, port) for ip in config.listening_ips for port in config.tcp_ports]
    last_error = ""
    while pending:
        if not handle.process.alive():
            raise _startup_error(
                handle,
                f"turnserver exited during start-up (exit code {handle.process.exit_status()})",
            )
        if time.monotonic() > deadline:
            waiting = ", ".join(f"{kind} {url_host(ip)}:{port}" for kind, ip, port in pending)
            raise _startup_error(
                handle, f"turnserver did not answer within the deadline on {waiting} ({last_error})"
            )
        still: list[tuple[str, IPAddress, int]] = []
        for kind, ip, port in pending:
            try:
                if kind == "udp":
                    await _probe_udp(handle.ns, ip, port)
                else:
                    await _probe_tcp(handle.ns, ip, port)
            except (OSError, TimeoutError, ValueError) as exc:
                last_error = f"{kind} {url_host(ip)}:{port}: {exc or type(exc).__name__}"
                still.append((kind, ip, port))
        pending = still
        if pending:
            await handle.process.await_exited(POLL_S)  # the poll interval, or its exit


async def _probe_udp(ns: str, ip: IPAddress, port: int) -> None:
    sock = netns.socket_in(ns, socket_family(ip), socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.connect((str(ip), port))
        await stun_binding(sock, PROBE_TIMEOUT_S)
    finally:
        sock.close()


async def _probe_tcp(ns: str, ip: IPAddress, port: int) -> None:
    sock = netns.socket_in(ns, socket_family(ip), socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        connect = asyncio.get_running_loop().sock_connect(sock, (str(ip), port))
        await within(connect, PROBE_TIMEOUT_S)
    finally:
        sock.close()


def _startup_error(handle: CoturnHandle, what: str) -> SimnetError:
    tail = handle.log_tail()
    log = "\n    ".join(tail) if tail else "(nothing logged)"
    return SimnetError(
        f"coturn in {handle.node} ({handle.ns}) failed to start: {what}\n"
        f"  last log lines ({handle.files.workdir}):\n    {log}",
        fix="check the turnserver arguments and the log above",
    )
