"""`python -m simnet.peer.aiortc`: the aiortc peer agent (see `simnet.peer.aiortc.agent`)."""

import sys

from simnet.peer.aiortc.agent import main

sys.exit(main())
