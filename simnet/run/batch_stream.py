"""What a batch child (`python -m simnet.run.batch`) and the Dask worker that feeds it say to
each other: each row as one line of text, `END` after a job's last row, and the environment
variable naming the child's lifeline pipe.
"""

from __future__ import annotations

import base64
import pickle
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for types only: a batch child imports this before it watches its lifeline
    from simnet.results.schema import ResultRow

END = "END"
LIFELINE_ENV = "SIMNET_BATCH_LIFELINE"


def encode_row(key: str, row: ResultRow) -> str:
    """A call's key and row as one line of text (what a batch child prints, what the queue
    carries)."""
    return base64.b64encode(pickle.dumps((key, row))).decode()


def decode_row(line: str | bytes) -> tuple[str, ResultRow]:
    key, row = pickle.loads(base64.b64decode(line))  # rows of simnet's own children only
    return str(key), row
