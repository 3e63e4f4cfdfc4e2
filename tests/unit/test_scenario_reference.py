"""docs/scenarios.md is the scenario models, not a description of them written apart: a field
added, renamed, re-described or given another default in the code and not in the document
fails here, as does a field without a description (the reference would show it blank)."""

from __future__ import annotations

from pathlib import Path

from simnet.scenario.model import CallSpec, Scenario
from simnet.scenario.reference import COMMAND, documented_models, markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "scenarios.md"


def test_the_document_is_the_models() -> None:
    assert DOC.read_text() == markdown(), f"docs/scenarios.md is stale: run `{COMMAND}`"


def test_every_field_is_described() -> None:
    blank = [
        f"{model.__name__}.{name}"
        for model in documented_models()
        for name, field in model.model_fields.items()
        if not (field.description or "").strip()
    ]
    assert blank == [], "give these fields Field(description=...)"


def test_every_model_of_the_file_has_its_section() -> None:
    text = markdown()
    models = documented_models()
    assert next(iter(models)) is Scenario
    assert CallSpec in models
    for model in models:
        section = text.split(f"\n## {model.__name__}\n")[1].split("\n## ")[0]
        named = [line.split("`")[1] for line in section.splitlines() if line.startswith("| `")]
        assert named == list(model.model_fields), model.__name__


def test_paths_name_where_a_model_is_written() -> None:
    text = markdown()
    assert "Written at: `call.timeline[]`." in text
    links = ("nats.NAME.link", "hosts.NAME.link", "servers.NAME.link", "call.timeline[].link")
    assert "Written at: " + ", ".join(f"`{p}`" for p in links) + "." in text
    assert "| `wrong_credentials` | boolean | `false` |" in text
    assert '| `turn_transports` | list of "udp" \\| "tcp" \\| "tls", at least 1 |' in text
