"""An HTTP proxy (squid) in a server's namespace: `servers.NAME: {kind: http-proxy}`.

Squid rather than tinyproxy (both in Debian): its access log names every `CONNECT` with its
target and outcome (`TCP_TUNNEL/200 ... CONNECT 192.0.2.3:443`, `TCP_DENIED/403`), which is what
rows read; its ACLs say which ports `CONNECT` may reach exactly as a corporate proxy's do
(`http_access deny CONNECT !connect_ports`); and basic authentication is its `basic_ncsa_auth`
helper over an htpasswd file, the setup most enterprise guides show.

Each proxy runs `squid -N` (no daemon, no kid processes: one process group the run kills) with a
configuration written into its own directory under the run's work directory: no cache on disk,
its pid file, cache log and access log there, never the system's /etc/squid or its service.
Squid drops to the `proxy` user, so the directory is handed to that user.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from simnet.addresses import IPAddress, socket_family, url_host
from simnet.aio import within
from simnet.errors import EnvironmentProblem, SimnetError
from simnet.net import netns
from simnet.net.builder import Network
from simnet.net.process import ManagedProcess, start_logged
from simnet.peer.http_proxy import HttpProxy
from simnet.scenario.model import PROXY_PORT, ProxyAuth

SQUID = "/usr/sbin/squid"
NCSA_AUTH = "/usr/lib/squid/basic_ncsa_auth"
SQUID_USER = "proxy"  # Debian's squid drops to this user
READY_TIMEOUT_S = 15.0
POLL_S = 0.1
PROBE_TIMEOUT_S = 1.0
INSTALL_FIX = "install squid (apt-get install squid), or run setup.sh"


@dataclass(frozen=True)
class ProxyConfig:
    """What one proxy serves: where it listens, the ports it tunnels to, who may use it."""

    listening_ips: tuple[IPAddress, ...]
    connect_ports: tuple[int, ...] = (443,)
    auth: ProxyAuth | None = None
    port: int = PROXY_PORT


@dataclass(frozen=True)
class SquidFiles:
    workdir: Path

    @property
    def config(self) -> Path:
        return self.workdir / "squid.conf"

    @property
    def access_log(self) -> Path:
        return self.workdir / "access.log"

    @property
    def cache_log(self) -> Path:
        return self.workdir / "cache.log"

    @property
    def passwords(self) -> Path:
        return self.workdir / "htpasswd"

    @property
    def pid(self) -> Path:
        return self.workdir / "squid.pid"


def squid_config(config: ProxyConfig, files: SquidFiles) -> str:
    """squid.conf for one proxy: listen on its addresses, tunnel only to `connect_ports`,
    ask for basic credentials when `auth` is set, log every request, cache nothing."""
    lines = [f"http_port {url_host(ip)}:{config.port}" for ip in config.listening_ips]
    lines += [
        f"pid_filename {files.pid}",
        f"cache_log {files.cache_log}",
        f"access_log stdio:{files.access_log} squid",
        f"coredump_dir {files.workdir}",
        "cache deny all",
        "cache_mem 8 MB",
        "logfile_rotate 0",
        "shutdown_lifetime 0 seconds",
        # its own name, so start-up asks no resolver (a namespace without DNS waited 10 s)
        "visible_hostname simnet-proxy",
        "pinger_enable off",
        "icp_port 0",
        f"cache_effective_user {SQUID_USER}",
        f"acl connect_ports port {' '.join(str(p) for p in config.connect_ports)}",
        "acl CONNECT method CONNECT",
        "http_access deny CONNECT !connect_ports",
    ]
    if config.auth is not None:
        lines += [
            f"auth_param basic program {NCSA_AUTH} {files.passwords}",
            "auth_param basic realm simnet",
            "auth_param basic children 1",
            "acl users proxy_auth REQUIRED",
            "http_access deny !users",
        ]
    lines += ["http_access allow all", ""]
    return "\n".join(lines)


def write_passwords(path: Path, auth: ProxyAuth) -> None:
    """An htpasswd file of one user (MD5-crypt, which basic_ncsa_auth reads)."""
    hashed = (
        subprocess.run(
            ["openssl", "passwd", "-apr1", "-stdin"],
            input=auth.password.encode(),
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    path.write_text(f"{auth.user}:{hashed}\n")


@dataclass
class SquidHandle:
    """A running squid. The run kills it at teardown anyway; `stop()` ends it earlier."""

    node: str
    ns: str
    config: ProxyConfig
    files: SquidFiles
    process: ManagedProcess
    ready_s: float

    @property
    def address(self) -> IPAddress:
        return self.config.listening_ips[0]

    def client(self) -> HttpProxy:
        """The proxy as its clients see it: its address, port and the credentials it asks for."""
        auth = self.config.auth
        return HttpProxy(
            str(self.address),
            self.config.port,
            auth.user if auth is not None else None,
            auth.password if auth is not None else None,
        )

    def url(self) -> str:
        """Where a client finds it: `http://address:port`."""
        return self.client().address

    def client_url(self) -> str:
        """What a peer behind it is told: `url()`, with the basic credentials when the proxy
        asks for them (`http://user:password@address:port`, each part percent-encoded). A
        peer that can answer the proxy's 407 uses them (pion's and aiortc's agents); a browser
        is given the address alone."""
        return self.client().url

    def access_log(self) -> list[ProxyRequest]:
        """The requests the proxy has logged so far."""
        try:
            text = self.files.access_log.read_text(errors="replace")
        except OSError:
            return []
        return [r for r in map(parse_access_line, text.splitlines()) if r is not None]

    def open_tunnels(self) -> list[ProxyRequest]:
        """The `CONNECT` tunnels open right now, from squid's cache manager (`active_requests`),
        each with the time it started. Squid logs a tunnel only when it closes, so a call
        whose TURN connection outlives the moment its row is made is found here instead: squid
        answers between two events of its one loop, so a tunnel is either open or logged. An
        unreachable manager gives none (its log is then all there is)."""
        host = url_host(self.address)
        request = [
            "GET /squid-internal-mgr/active_requests HTTP/1.0",
            f"Host: {host}:{self.config.port}",
        ]
        authorization = self.client().authorization
        if authorization is not None:
            request.append(f"Proxy-Authorization: {authorization}")
        try:
            with netns.socket_in(self.ns, socket_family(self.address), socket.SOCK_STREAM) as sock:
                sock.settimeout(MANAGER_TIMEOUT_S)
                sock.connect((str(self.address), self.config.port))
                sock.sendall(("\r\n".join(request) + "\r\n\r\n").encode())
                answer = b"".join(iter(lambda: sock.recv(65536), b""))
        except OSError:
            return []
        return parse_active_requests(answer.decode(errors="replace"))

    def stop(self) -> None:
        self.process.stop(2.0)


@dataclass(frozen=True)
class ProxyRequest:
    """One line of squid's native access log, or a tunnel still open (`open_tunnels`)."""

    time: float  # Unix time the request ended (an open tunnel: when it started)
    client: str
    status: str  # e.g. TCP_TUNNEL/200, TCP_DENIED/403; TCP_TUNNEL/open for an open tunnel
    method: str
    target: str  # host:port for CONNECT

    @property
    def denied(self) -> bool:
        return self.status.startswith("TCP_DENIED")


_ACCESS = re.compile(r"^(\d+\.\d+)\s+\d+\s+(\S+)\s+(\S+)\s+\d+\s+(\S+)\s+(\S+)")
# "\tremote: 198.51.100.10:48720", "uri 192.0.2.11:443", "start 1796564500.547851 (11.06 ...)"
_MANAGER_FIELD = re.compile(r"^\s*(remote|uri|logType|start):?\s+(\S+)", re.M)
MANAGER_TIMEOUT_S = 2.0  # squid answers its manager at once; a dead squid must not hold a row


def parse_access_line(line: str) -> ProxyRequest | None:
    """A line of squid's `squid` log format: time, elapsed ms, client, code/status, bytes,
    method, URL, ...; None for anything else."""
    m = _ACCESS.match(line)
    if m is None:
        return None
    return ProxyRequest(float(m[1]), m[2], m[3], m[4], m[5])


def parse_active_requests(text: str) -> list[ProxyRequest]:
    """The open tunnels in squid's `active_requests` report: one block per client connection
    (`remote: client:port`, `uri target`, `logType TCP_TUNNEL`, `start <unix time> ...`)."""
    found = []
    for block in text.split("\nConnection: ")[1:]:
        fields = dict(_MANAGER_FIELD.findall(block))
        remote, target, start = fields.get("remote"), fields.get("uri"), fields.get("start")
        if fields.get("logType") != "TCP_TUNNEL" or None in (remote, target, start):
            continue
        assert remote is not None and target is not None and start is not None
        client = remote.rsplit(":", 1)[0].strip("[]")
        found.append(ProxyRequest(float(start), client, "TCP_TUNNEL/open", "CONNECT", target))
    return found


def squid_installed() -> bool:
    return os.access(SQUID, os.X_OK)


async def start_squid(
    network: Network, server_node: str, config: ProxyConfig, *, timeout_s: float = READY_TIMEOUT_S
) -> SquidHandle:
    """Start squid in `server_node`'s namespace; return once it accepts connections on every
    listening address (a process that exits or never listens raises `SimnetError` with the end
    of its cache log). Its directory lives in the run's work directory and goes with the run."""
    if not squid_installed():
        raise EnvironmentProblem(f"cannot run {SQUID} (squid)", fix=INSTALL_FIX)
    workdir = network.run.workdir / f"squid-{server_node}"  # removed with the run
    workdir.mkdir(parents=True, exist_ok=True)
    files = SquidFiles(workdir)
    files.config.write_text(squid_config(config, files))
    if config.auth is not None:
        write_passwords(files.passwords, config.auth)
    user = pwd.getpwnam(SQUID_USER)
    for path in (workdir, *workdir.iterdir()):
        os.chown(path, user.pw_uid, user.pw_gid)
    started = time.monotonic()
    process = start_logged(
        network.run,
        f"squid-{server_node}",
        [SQUID, "-N", "-f", str(files.config)],
        ns=network.ns(server_node),
        log=workdir / "squid.console",
        missing=f"cannot run {SQUID} (squid)",
        fix=INSTALL_FIX,
    )
    handle = SquidHandle(server_node, network.ns(server_node), config, files, process, 0.0)
    try:
        await _wait_listening(handle, started + timeout_s)
    except BaseException:
        handle.stop()
        raise
    handle.ready_s = time.monotonic() - started
    network.run.info.setdefault("services", []).append(
        {"kind": "squid", "node": server_node, "pid": process.pid, "workdir": str(workdir)}
    )
    network.run.save()
    return handle


async def _wait_listening(handle: SquidHandle, deadline: float) -> None:
    pending = list(handle.config.listening_ips)
    last = ""
    while pending:
        if not handle.process.alive():
            raise _startup_error(handle, f"squid exited (code {handle.process.exit_status()})")
        if time.monotonic() > deadline:
            raise _startup_error(handle, f"squid did not listen within the deadline ({last})")
        still = []
        for ip in pending:
            sock = netns.socket_in(handle.ns, socket_family(ip), socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                loop = asyncio.get_running_loop()
                await within(
                    loop.sock_connect(sock, (str(ip), handle.config.port)), PROBE_TIMEOUT_S
                )
            except (OSError, TimeoutError) as exc:
                last = f"{url_host(ip)}:{handle.config.port}: {exc or type(exc).__name__}"
                still.append(ip)
            finally:
                sock.close()
        pending = still
        if pending:
            await handle.process.await_exited(POLL_S)


def _startup_error(handle: SquidHandle, what: str) -> SimnetError:
    lines: list[str] = []
    for path in (handle.files.cache_log, handle.files.workdir / "squid.console"):
        with contextlib.suppress(OSError):
            lines += path.read_text(errors="replace").splitlines()[-10:]
    log = "\n    ".join(lines) if lines else "(nothing logged)"
    return SimnetError(
        f"squid in {handle.node} ({handle.ns}) failed to start: {what}\n"
        f"  last log lines ({handle.files.workdir}):\n    {log}",
        fix="check the squid configuration and the log above",
    )
