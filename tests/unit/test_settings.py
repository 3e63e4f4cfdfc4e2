"""SIMNET_* environment variables: a bad value is an error naming the variable, never a default.

Why: a mistyped SIMNET_LINK_RT_PRIORITY or SIMNET_EMULATOR_LIMIT_PPS that fell back to the
default without a word would leave a user believing their setting in force.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from simnet import settings
from simnet.settings import SettingError

SIMNET = Path(__file__).resolve().parents[2] / "simnet"


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        (settings.RT_PRIORITY_ENV, "high", "from 0 to 99"),
        (settings.RT_PRIORITY_ENV, "100", "from 0 to 99"),
        (settings.RT_PRIORITY_ENV, "-1", "from 0 to 99"),
        (settings.RT_PRIORITY_ENV, "5.5", "from 0 to 99"),
        (settings.SERVER_RT_PRIORITY_ENV, "fifo", "from 0 to 99"),
        (settings.SERVER_RT_PRIORITY_ENV, "100", "from 0 to 99"),
        (settings.LIMIT_ENV, "fast", "from 1 to 100000000"),
        (settings.LIMIT_ENV, "0", "from 1 to 100000000"),
        (settings.LIMIT_ENV, "1e5", "from 1 to 100000000"),
        (settings.BACKEND_ENV, "tc", "allowed: auto, netem, nfqueue"),
        (settings.AGENT_LOG_ENV, "loud", "allowed: DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        (settings.AIORTC_ICE_ENV, "rfc5245", "allowed: aioice, rfc8445"),
    ],
)
def test_a_bad_value_names_the_variable_and_what_is_allowed(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, allowed: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingError) as info:
        settings.check_environment()
    assert f"{name}={value!r}" in info.value.message and allowed in info.value.message
    assert info.value.exit_code == 2 and info.value.fix and "unset" in info.value.fix


def test_unset_or_empty_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        settings.RT_PRIORITY_ENV,
        settings.SERVER_RT_PRIORITY_ENV,
        settings.LIMIT_ENV,
        settings.BACKEND_ENV,
        settings.AGENT_LOG_ENV,
        settings.AIORTC_ICE_ENV,
        settings.DEBUG_ENV,
    ):
        monkeypatch.delenv(name, raising=False)
    assert settings.rt_priority() == settings.DEFAULT_RT_PRIORITY
    assert settings.server_rt_priority() == settings.DEFAULT_SERVER_RT_PRIORITY
    assert 0 < settings.DEFAULT_SERVER_RT_PRIORITY < settings.DEFAULT_RT_PRIORITY
    assert settings.emulator_limit_pps() == settings.DEFAULT_LIMIT_PPS
    assert settings.link_backend() == "auto"
    assert settings.agent_log_level() == "WARNING" and not settings.debug()
    assert settings.aiortc_ice() == "aioice"
    monkeypatch.setenv(settings.RT_PRIORITY_ENV, " ")
    assert settings.rt_priority() == settings.DEFAULT_RT_PRIORITY


def test_good_values_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.RT_PRIORITY_ENV, "0")
    monkeypatch.setenv(settings.LIMIT_ENV, " 5000 ")
    monkeypatch.setenv(settings.BACKEND_ENV, "NFQueue")
    monkeypatch.setenv(settings.AGENT_LOG_ENV, "info")
    monkeypatch.setenv(settings.DEBUG_ENV, "1")
    monkeypatch.setenv(settings.AIORTC_ICE_ENV, "RFC8445")
    assert settings.aiortc_ice() == "rfc8445"
    assert settings.rt_priority() == 0
    assert settings.emulator_limit_pps() == 5000
    assert settings.link_backend() == "nfqueue"
    assert settings.agent_log_level() == "INFO" and settings.debug()


def test_every_variable_is_read_in_settings_alone() -> None:
    """A `SIMNET_*` name (a string of its own: a variable's key) elsewhere in simnet/ is one of
    the tags simnet sets for its own processes, never a knob read with a default of its own."""
    own_tags = {"SIMNET_RUN", "SIMNET_PROCESS", "SIMNET_BATCH_LIFELINE"}
    found = []
    for path in sorted(SIMNET.rglob("*.py")):
        if path.name == "settings.py" and path.parent == SIMNET:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = node.value if isinstance(node, ast.Constant) else None
            knob = isinstance(name, str) and re.fullmatch("SIMNET_[A-Z_]+", name)
            if knob and name not in own_tags:
                found.append(f"{path.relative_to(SIMNET.parent)}:{node.lineno} {name}")
    assert found == []


def test_the_helper_gets_the_priority_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from simnet.net.impair.nfqueue import helper_argv
    from tests.unit.impaired_link import target

    monkeypatch.setenv(settings.RT_PRIORITY_ENV, "42")
    argv = helper_argv(target({"delay_ms": 5}))
    assert argv[argv.index("--rt-priority") + 1] == "42"
