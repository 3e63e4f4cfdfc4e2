"""`python -m simnet.peer.chromium`: the Chromium peer agent (see `simnet.peer.chromium.agent`)."""

import sys

from simnet.peer.chromium.agent import main

sys.exit(main())
