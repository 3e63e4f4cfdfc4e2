"""The mark of a test module whose tests must run alone (see tests/conftest.py for why and how):
`pytestmark = [pytest.mark.integration, *SOLO]`."""

import pytest

SOLO_MARK = "solo"
SOLO = [pytest.mark.solo]
