"""`python -m simnet.peer.firefox`: the Firefox peer agent (see `simnet.peer.firefox.agent`)."""

import sys

from simnet.peer.firefox.agent import main

sys.exit(main())
