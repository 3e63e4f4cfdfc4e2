"""What the browser peers (Chromium, Firefox) share: the call page and what is made of it.

- `page.html` + `page.js`: the call itself, a small web app that runs one WebRTC call per
  `simnetCall(spec)` and reports through `window.simnetEvent(payload)`, which each browser's
  agent provides over its own protocol (a CDP binding, a WebDriver BiDi channel);
- `driver`: one call from the agent's side (clock, events, watchdog, result), given a page
  that implements `driver.CallPage`;
- `clock`, `results`: the page clock's mapping and the `CallResult` built from the page's
  report, pure functions.

Where the browsers differ (how `getStats()` names the selected pair, whether a candidate says
which TURN URL it came from), the page and `results` take either form, so no code here asks
which browser it runs in.
"""

from pathlib import Path

#: the call page, loaded from file:// by every browser peer
PAGE = Path(__file__).with_name("page.html")
