"""The DevTools answers and events the Chromium agent reads, as models.

Why: CDP's JSON indexed by hand (`result["exceptionDetails"]["exception"]`) fails with a
`KeyError` deep inside a call when a browser answers something else. Each model reads what the
agent uses and ignores what CDP adds over versions; `CdpConnection.call` turns a missing field
into a `CdpError` naming the method.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from simnet.peer.chromium.cdp_types import (
    BindingCalled,
    BrowserVersion,
    ConsoleCalled,
    Evaluated,
    Targets,
)


def test_answers_are_read_and_new_fields_ignored() -> None:
    version = BrowserVersion.model_validate({"product": "Chrome/156.0.1", "revision": "@x"})
    assert version.product.rpartition("/")[2] == "156.0.1"
    targets = Targets.model_validate(
        {"targetInfos": [{"targetId": "T1", "type": "page", "url": "file:///p", "attached": 1}]}
    )
    assert [(t.target_id, t.type, t.url) for t in targets.target_infos] == [
        ("T1", "page", "file:///p")
    ]
    assert Targets.model_validate({}).target_infos == []


def test_an_evaluation_gives_its_value_or_the_exception_as_the_console_shows_it() -> None:
    assert Evaluated.model_validate({"result": {"type": "number", "value": 3}}).result.value == 3
    thrown = Evaluated.model_validate(
        {
            "result": {"type": "object"},
            "exceptionDetails": {"text": "Uncaught", "exception": {"description": "Error: x"}},
        }
    )
    assert thrown.exception_details is not None and thrown.exception_details.shown == "Error: x"
    bare = Evaluated.model_validate({"exceptionDetails": {"text": "Uncaught"}})
    assert bare.exception_details is not None and bare.exception_details.shown == "Uncaught"


def test_event_parameters() -> None:
    called = BindingCalled.model_validate({"name": "simnetEvent", "payload": "{}", "id": 1})
    assert (called.name, called.payload) == ("simnetEvent", "{}")
    console = ConsoleCalled.model_validate(
        {"type": "log", "args": [{"type": "string", "value": "hi"}, {"description": "Obj"}]}
    )
    assert [a.value or a.description for a in console.args] == ["hi", "Obj"]
    with pytest.raises(ValidationError, match="name"):
        BindingCalled.model_validate({"payload": "{}"})
