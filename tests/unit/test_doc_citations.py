"""The project stands on its own files: every note it cites is in the repository.

Why: code, tests and the README once cited a `NOTES.md` that lived outside the repository, so a
reader of a fresh clone could not check the facts behind a design decision. The facts now live
in docs/kernel-notes.md; this test fails if a citation points outside it or at a section that
does not exist (a renamed heading silently breaks every anchor that names it).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTES = ROOT / "docs" / "kernel-notes.md"
SOURCES = ("simnet", "tests", "benchmarks", "docs")
CITATION = re.compile(r"kernel-notes\.md#([a-z0-9-]+)")


def anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def repo_texts() -> dict[Path, str]:
    """Every Python and Markdown file the project ships, by path."""
    files = [ROOT / "README.md"]
    for top in SOURCES:
        files += [p for p in (ROOT / top).rglob("*") if p.suffix in {".py", ".md"}]
    return {p: p.read_text() for p in files if p.is_file()}


def test_anchor_follows_github_rules() -> None:
    heading = "Kernel timestamps vs user-space stamps"
    assert anchor(heading) == "kernel-timestamps-vs-user-space-stamps"
    assert anchor("aiortc and aioice") == "aiortc-and-aioice"


def test_no_citation_of_a_file_outside_the_repository() -> None:
    bare = re.compile(r"(?<![\w-])NOTES\.md")
    offenders = [
        str(p.relative_to(ROOT))
        for p, text in repo_texts().items()
        if bare.search(text) and p != Path(__file__).resolve()  # this file names it to forbid it
    ]
    assert offenders == []


def test_every_cited_section_exists() -> None:
    headings = {
        anchor(line.lstrip("#")) for line in NOTES.read_text().splitlines() if line.startswith("#")
    }
    cited = {
        (str(p.relative_to(ROOT)), section)
        for p, text in repo_texts().items()
        for section in CITATION.findall(text)
    }
    assert len(cited) >= 5  # the notes are cited from code, tests and the docs
    assert [c for c in cited if c[1] not in headings] == []


# The user documentation: README, docs/, the benchmarks' README and the changelog.
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "benchmarks" / "README.md"]
DOCS += sorted((ROOT / "docs").rglob("*.md"))
LINK = re.compile(r"\]\(([^)\s]+)\)")
REPO_PATH = re.compile(
    r"`((?:simnet|tests|benchmarks|scenarios|examples|docs)/[\w./-]+?)(?:::[\w\[\]-]+|:\w+)?`"
)


def headings(path: Path) -> set[str]:
    lines = path.read_text().splitlines()
    return {anchor(line.lstrip("#")) for line in lines if line.startswith("#")}


def test_every_link_between_documents_resolves() -> None:
    """A renamed file or heading breaks every link that names it; this finds them."""
    broken = []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text()):
            if "://" in target:
                continue
            file_part, _, section = target.partition("#")
            linked = (doc.parent / file_part).resolve() if file_part else doc
            if not linked.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
            elif section and linked.suffix == ".md" and section not in headings(linked):
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such section)")
    assert broken == []


def test_every_file_the_documents_name_exists() -> None:
    """Paths written as `simnet/...`, `tests/...` (with an optional `::test` or `:name`) are
    files of the repository, so a moved module shows up here, not in a reader's shell."""
    missing = [
        f"{doc.relative_to(ROOT)}: {path}"
        for doc in DOCS
        for path in REPO_PATH.findall(doc.read_text())
        if "…" not in path and not (ROOT / path).exists()
    ]
    assert missing == []


def test_the_documented_schema_version_is_the_one_written() -> None:
    from simnet.results.schema import SCHEMA_VERSION

    said = {
        (str(doc.relative_to(ROOT)), int(version))
        for doc in DOCS
        for version in re.findall(r"`schema_version` \((\d+) now\)", doc.read_text())
    }
    assert said, "the README says which schema version rows carry"
    assert {version for _, version in said} == {SCHEMA_VERSION}, said
