"""Settings taken from the environment, each checked: a bad value is an error, never a default.

Every environment variable a user may set, with its one default:

- `SIMNET_LINK_BACKEND`: how links are emulated, auto (default), netem or nfqueue;
- `SIMNET_LINK_RT_PRIORITY`: the delay-line helpers' SCHED_FIFO priority, 0 for none
  (default 10);
- `SIMNET_SERVER_RT_PRIORITY`: coturn's SCHED_FIFO priority, and the load command's while its
  levels run (it serves signaling and drives every peer), 0 for none (default 5: below the
  delay lines, above every peer; `simnet.net.realtime`);
- `SIMNET_EMULATOR_LIMIT_PPS`: packets/s above which a run is flagged emulator_limited
  (default 40000);
- `SIMNET_AGENT_LOG`: what peer agents log to their log file in the run's work directory, a
  `logging` level name (default WARNING); simnet's own agent messages (a browser's launches,
  console and stderr) are kept from INFO up whatever the level;
- `SIMNET_AIORTC_ICE`: the aiortc peers' ICE, `aioice` (default: the library as installed) or
  `rfc8445` (simnet's agent adds what aioice 0.13 lacks: a triggered check on a pair whose own
  check is in flight, RFC 8445 section 7.3.1.4, and IPv6 host candidates above IPv4 ones, RFC
  8421); rows name it in the peer's version (`aiortc 1.16.0 +rfc8445`);
- `SIMNET_DEBUG`: set (to anything but empty), the CLI shows an internal error's traceback.

A mistyped value would otherwise fall back to its default without a word, and a user who set
one would believe it in force. The CLI checks them all before it starts anything
(`check_environment`), so a bad value costs no run and never surfaces after a call (the
emulator limit is only read once a call has ended, the agent log level inside each agent).
Variables simnet sets for its own processes (`SIMNET_RUN`, `SIMNET_PROCESS`: the run tag,
`simnet.net.process`; `SIMNET_BATCH_LIFELINE`: `simnet.run.batch`) are not settings.
"""

from __future__ import annotations

import os

from simnet.errors import SimnetError

BACKEND_ENV = "SIMNET_LINK_BACKEND"
BACKENDS = ("auto", "netem", "nfqueue")
RT_PRIORITY_ENV = "SIMNET_LINK_RT_PRIORITY"  # 0: the delay-line helpers run unprioritised
DEFAULT_RT_PRIORITY = 10
RT_PRIORITY_RANGE = (0, 99)  # SCHED_FIFO's priorities (sched_get_priority_max is 99)
SERVER_RT_PRIORITY_ENV = "SIMNET_SERVER_RT_PRIORITY"  # 0: coturn and the load loop unprioritised
DEFAULT_SERVER_RT_PRIORITY = 5
LIMIT_ENV = "SIMNET_EMULATOR_LIMIT_PPS"
DEFAULT_LIMIT_PPS = 40_000
LIMIT_PPS_RANGE = (1, 100_000_000)
AGENT_LOG_ENV = "SIMNET_AGENT_LOG"
DEFAULT_AGENT_LOG = "WARNING"
AGENT_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEBUG_ENV = "SIMNET_DEBUG"
AIORTC_ICE_ENV = "SIMNET_AIORTC_ICE"
AIORTC_ICE_MODES = ("aioice", "rfc8445")


class SettingError(SimnetError):
    """An environment variable has a value simnet cannot use; nothing was started."""

    exit_code = 2


def link_backend() -> str:
    """`SIMNET_LINK_BACKEND`: auto (default), netem or nfqueue."""
    raw = os.environ.get(BACKEND_ENV, "")
    wanted = raw.strip().lower() or "auto"
    if wanted not in BACKENDS:
        raise SettingError(
            f"environment variable {BACKEND_ENV}={raw!r} is not a link backend; "
            f"allowed: {', '.join(BACKENDS)}",
            fix=f"set {BACKEND_ENV} to one of them, or unset it (default: auto)",
        )
    return wanted


def rt_priority() -> int:
    """`SIMNET_LINK_RT_PRIORITY`: the delay-line helpers' SCHED_FIFO priority, 0 for none."""
    return _int(RT_PRIORITY_ENV, DEFAULT_RT_PRIORITY, *RT_PRIORITY_RANGE, "0: no real-time")


def server_rt_priority() -> int:
    """`SIMNET_SERVER_RT_PRIORITY`: coturn's and the load loop's SCHED_FIFO priority, 0 for none."""
    return _int(
        SERVER_RT_PRIORITY_ENV, DEFAULT_SERVER_RT_PRIORITY, *RT_PRIORITY_RANGE, "0: no real-time"
    )


def emulator_limit_pps() -> int:
    """`SIMNET_EMULATOR_LIMIT_PPS`: packets/s above which a run is flagged emulator_limited."""
    return _int(LIMIT_ENV, DEFAULT_LIMIT_PPS, *LIMIT_PPS_RANGE, "packets per second")


def agent_log_level() -> str:
    """`SIMNET_AGENT_LOG`: the peer agents' log level, one of `AGENT_LOG_LEVELS`."""
    raw = os.environ.get(AGENT_LOG_ENV, "")
    wanted = raw.strip().upper() or DEFAULT_AGENT_LOG
    if wanted not in AGENT_LOG_LEVELS:
        raise SettingError(
            f"environment variable {AGENT_LOG_ENV}={raw!r} is not a log level; "
            f"allowed: {', '.join(AGENT_LOG_LEVELS)}",
            fix=f"set {AGENT_LOG_ENV} to one of them, or unset it (default: {DEFAULT_AGENT_LOG})",
        )
    return wanted


def aiortc_ice() -> str:
    """`SIMNET_AIORTC_ICE`: aioice (default) or rfc8445, one of `AIORTC_ICE_MODES`."""
    raw = os.environ.get(AIORTC_ICE_ENV, "")
    wanted = raw.strip().lower() or AIORTC_ICE_MODES[0]
    if wanted not in AIORTC_ICE_MODES:
        raise SettingError(
            f"environment variable {AIORTC_ICE_ENV}={raw!r} is not an aiortc ICE mode; "
            f"allowed: {', '.join(AIORTC_ICE_MODES)}",
            fix=f"set {AIORTC_ICE_ENV} to one of them, or unset it (default: aioice)",
        )
    return wanted


def debug() -> bool:
    """`SIMNET_DEBUG`: whether an internal error shows its traceback (set and not empty)."""
    return bool(os.environ.get(DEBUG_ENV))


def check_environment() -> None:
    """Raise `SettingError` for the first bad setting (all are read, none is applied)."""
    link_backend()
    rt_priority()
    server_rt_priority()
    emulator_limit_pps()
    agent_log_level()
    aiortc_ice()


def _int(name: str, default: int, low: int, high: int, meaning: str) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise SettingError(
            f"environment variable {name}={raw!r} is not an integer from {low} to {high} "
            f"({meaning})",
            fix=f"set {name} to one, or unset it (default: {default})",
        )
    return value
