"""Every document that says which `schema_version` rows carry says the one the code writes.

Why: the README once said 2 where the code wrote 3, and a reader of old result files decides
from that number what a row holds.
"""

from __future__ import annotations

import re
from pathlib import Path

from simnet.results.schema import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[2]
CLAIM = re.compile(r"`schema_version`[^.\n]{0,40}?\((\d+) now\)")


def test_the_documents_name_the_schema_version_the_code_writes() -> None:
    documents = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *ROOT.glob("docs/**/*.md")]
    claims = {
        str(path.relative_to(ROOT)): [int(v) for v in CLAIM.findall(path.read_text())]
        for path in documents
    }
    assert sum(map(len, claims.values())) >= 2  # the README and the results guide say it
    wrong = {path: found for path, found in claims.items() if set(found) - {SCHEMA_VERSION}}
    assert not wrong, f"these say another schema_version than {SCHEMA_VERSION}: {wrong}"
