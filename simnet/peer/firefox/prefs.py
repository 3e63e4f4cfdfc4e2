"""The preferences of a Firefox peer's profile, written to its `user.js`: pure data.

Three groups, each for a reason a measured peer needs:

- the call: fake camera and microphone with no permission prompt (`media.navigator.*`), media
  that plays without a user gesture, and real host candidates: Firefox hides host addresses
  behind mDNS names (`obfuscate_host_addresses`) and can be told to gather only the default
  route's address or no host candidate at all, each of which would change the paths ICE tries;
- quiet: an idle peer sends no packet. Firefox's Remote Agent already applies its recommended
  test preferences; these are written out so the profile says it whatever the agent's defaults:
  no updates (application, add-ons, system add-ons, search engines, GMP plugins), no telemetry,
  health report or crash report, no safe browsing lists, no captive-portal or connectivity
  check, no remote settings, Normandy or Nimbus experiments, no push service, no Pocket or new
  tab content, no DNS over HTTPS, no speculative connections or prefetching, no geolocation
  lookups, no OCSP, no translations or ML model downloads;
- deterministic: no first-run pages, no session restore, no default-browser check, no proxy
  (not the system's either) unless the host's network has one.

A peer behind a network whose only way out is an HTTP proxy gets `proxy_prefs(url)` on top:
what a corporate deployment sets (its enterprise policy's `Proxy`), see that function.

`user_js(prefs)` renders them; the profile directory is the agent's (`browser.write_profile`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import urlsplit

Pref = bool | int | str

#: What a call needs of the browser.
CALL_PREFS: dict[str, Pref] = {
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.autoplay.default": 0,  # allowed: the remote audio plays without a gesture
    "media.autoplay.blocking_policy": 0,
    "media.peerconnection.enabled": True,
    # real host candidates: no mDNS names, every interface's address, host candidates at all
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "media.peerconnection.ice.default_address_only": False,
    "media.peerconnection.ice.no_host": False,
    "media.peerconnection.ice.proxy_only": False,
    "media.peerconnection.ice.proxy_only_if_behind_proxy": False,
    "media.peerconnection.ice.relay_only": False,  # the call's own policy decides
    "media.peerconnection.ice.loopback": False,
    "media.peerconnection.use_document_iceservers": True,
    # the page is file:// and calls from a hidden, headless tab: no throttling of its timers
    "dom.min_background_timeout_value": 4,
    "dom.timeout.enable_budget_timer_throttling": False,
    "browser.tabs.remote.autostart": True,
    # the page's clock at full resolution: Firefox rounds performance.now() to 1 ms otherwise,
    # and a LAN's data-channel round trip, or the clock mapping's error, is below that
    "privacy.reduceTimerPrecision": False,
    "privacy.reduceTimerPrecision.unconditional": False,
    "privacy.resistFingerprinting": False,
}

#: Everything that would make an idle browser talk to a server of its own.
QUIET_PREFS: dict[str, Pref] = {
    # updates
    "app.update.auto": False,
    "app.update.enabled": False,
    "app.update.checkInstallTime": False,
    "app.update.disabledForTesting": True,
    "app.update.staging.enabled": False,
    "app.update.url": "",
    "extensions.update.enabled": False,
    "extensions.update.autoUpdateDefault": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.blocklist.enabled": False,
    "extensions.systemAddon.update.enabled": False,
    "extensions.systemAddon.update.url": "",
    "extensions.webservice.discoverURL": "",
    "extensions.pocket.enabled": False,
    "extensions.screenshots.disabled": True,
    "browser.search.update": False,
    "browser.search.geoip.url": "",
    "browser.search.suggest.enabled": False,
    "browser.region.network.url": "",
    "browser.region.update.enabled": False,
    "media.gmp-manager.url": "",
    "media.gmp-manager.updateEnabled": False,
    "media.gmp-gmpopenh264.autoupdate": False,
    "media.gmp-gmpopenh264.enabled": False,
    "media.gmp-widevinecdm.enabled": False,
    "media.gmp-widevinecdm.autoupdate": False,
    # telemetry, health report, crash reports
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.archive.enabled": False,
    "toolkit.telemetry.server": "",
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "toolkit.telemetry.shutdownPingSender.enabled": False,
    "toolkit.telemetry.newProfilePing.enabled": False,
    "toolkit.telemetry.firstShutdownPing.enabled": False,
    "toolkit.telemetry.updatePing.enabled": False,
    "toolkit.telemetry.bhrPing.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.policy.dataSubmissionPolicyBypassNotification": True,
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.usage.uploadEnabled": False,
    "browser.ping-centre.telemetry": False,
    "browser.crashReports.unsubmittedCheck.autoSubmit2": False,
    "browser.crashReports.unsubmittedCheck.enabled": False,
    "browser.tabs.crashReporting.sendReport": False,
    "dom.ipc.reportProcessHangs": False,
    # safe browsing and tracking-protection lists
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.downloads.remote.enabled": False,
    "browser.safebrowsing.downloads.remote.url": "",
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.passwords.enabled": False,
    "browser.safebrowsing.provider.google.updateURL": "",
    "browser.safebrowsing.provider.google.gethashURL": "",
    "browser.safebrowsing.provider.google4.updateURL": "",
    "browser.safebrowsing.provider.google4.gethashURL": "",
    "browser.safebrowsing.provider.mozilla.updateURL": "",
    "browser.safebrowsing.provider.mozilla.gethashURL": "",
    "privacy.trackingprotection.enabled": False,
    "privacy.trackingprotection.pbmode.enabled": False,
    "privacy.trackingprotection.cryptomining.enabled": False,
    "privacy.trackingprotection.fingerprinting.enabled": False,
    "privacy.trackingprotection.socialtracking.enabled": False,
    # captive portal and connectivity checks
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "captivedetect.canonicalURL": "",
    # remote settings, experiments (Normandy, Nimbus), studies
    "services.settings.server": "data:,#remote-settings-dummy/v1",
    "app.normandy.enabled": False,
    "app.normandy.api_url": "",
    "app.shield.optoutstudies.enabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "nimbus.rollouts.enabled": False,
    "security.remote_settings.crlite_filters.enabled": False,
    "security.remote_settings.intermediates.enabled": False,
    "security.certerrors.mitm.priming.enabled": False,
    "browser.translations.enable": False,
    "browser.ml.enable": False,
    "signon.management.page.breach-alerts.enabled": False,
    "signon.autofillForms": False,
    "identity.fxaccounts.enabled": False,
    "services.sync.engine.addons": False,
    # push
    "dom.push.enabled": False,
    "dom.push.connection.enabled": False,
    "dom.push.serverURL": "",
    # new tab, Pocket, top sites, snippets
    "browser.newtabpage.enabled": False,
    "browser.newtab.preload": False,
    "browser.newtabpage.activity-stream.feeds.section.topstories": False,
    "browser.newtabpage.activity-stream.feeds.topsites": False,
    "browser.newtabpage.activity-stream.feeds.telemetry": False,
    "browser.newtabpage.activity-stream.telemetry": False,
    "browser.newtabpage.activity-stream.feeds.snippets": False,
    "browser.newtabpage.activity-stream.feeds.system.topstories": False,
    "browser.newtabpage.activity-stream.showSponsored": False,
    "browser.newtabpage.activity-stream.showSponsoredTopSites": False,
    "browser.newtabpage.activity-stream.default.sites": "",
    "browser.topsites.contile.enabled": False,
    "browser.aboutHomeSnippets.updateUrl": "",
    "browser.discovery.enabled": False,
    "browser.uitour.enabled": False,
    # DNS over HTTPS: off by choice (mode 5), and no rollout heuristics
    "network.trr.mode": 5,
    "doh-rollout.disable-heuristics": True,
    # speculative connections, prefetching, geolocation, OCSP
    "network.prefetch-next": False,
    "network.dns.disablePrefetch": True,
    "network.dns.disablePrefetchFromHTTPS": True,
    "network.predictor.enabled": False,
    "network.predictor.enable-prefetch": False,
    "network.http.speculative-parallel-limit": 0,
    "browser.urlbar.speculativeConnect.enabled": False,
    "browser.places.speculativeConnect.enabled": False,
    "geo.enabled": False,
    "geo.provider.network.url": "",
    "security.OCSP.enabled": 0,
    "network.proxy.type": 0,  # no proxy, not the system's
}

#: No first-run pages, no restored session: every run starts alike.
STARTUP_PREFS: dict[str, Pref] = {
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.page": 0,
    "browser.startup.homepage": "about:blank",
    "browser.startup.homepage_override.mstone": "ignore",
    "startup.homepage_welcome_url": "",
    "startup.homepage_welcome_url.additional": "",
    "browser.aboutwelcome.enabled": False,
    "trailhead.firstrun.didSeeAboutWelcome": True,
    "browser.sessionstore.resume_from_crash": False,
    "browser.sessionstore.max_resumed_crashes": 0,
    "toolkit.startup.max_resumed_crashes": -1,
    "browser.tabs.warnOnClose": False,
    "browser.warnOnQuit": False,
    "remote.prefs.recommended": True,
}

#: Every preference a peer's profile gets.
PREFS: dict[str, Pref] = {**CALL_PREFS, **QUIET_PREFS, **STARTUP_PREFS}


def proxy_prefs(proxy: str) -> dict[str, Pref]:
    """The preferences of a browser whose one way out is the HTTP proxy `proxy`
    (`http://[user:password@]address:port`: the address alone is used), as a corporate
    deployment sets them (the `Proxy` enterprise policy): a manual proxy (`network.proxy.type`
    1) for HTTP and SSL alike. The call page's signaling WebSocket and WebRTC's TCP go through
    it: nICEr's TCP sockets (TURN over TCP and TLS) are opened by the browser's network stack,
    which asks the proxy for a `CONNECT` tunnel to the TURN server.

    ICE is not forced onto the proxy (`media.peerconnection.ice.proxy_only` and
    `proxy_only_if_behind_proxy` stay false): forced, nICEr refuses to create any UDP socket,
    and a page without a camera or microphone permission gathers on the default route's
    address only, which nICEr finds by connecting a UDP socket: refused, so "failed to find
    default addresses" and not one candidate (Firefox's MOZ_LOG `nicer`; the call fails
    `ice-failed`, measured with a data-channel call and with a fake-microphone call alike).
    `proxy_only_if_behind_proxy` would not even apply: it asks whether the *document* came
    through a proxy, and the call page is a `file://` page. So Firefox still sends UDP (its
    host candidate's checks, STUN to the TURN server) onto the LAN, where the network's
    firewall drops it, as a proxy-only office's firewall does.
    """
    parts = urlsplit(proxy)
    if parts.hostname is None or parts.port is None:  # never repeat it: it may hold a password
        raise ValueError("the proxy is not http://[user:password@]address:port")
    return {
        "network.proxy.type": 1,
        "network.proxy.http": parts.hostname,
        "network.proxy.http_port": parts.port,
        "network.proxy.ssl": parts.hostname,
        "network.proxy.ssl_port": parts.port,
        "network.proxy.share_proxy_settings": True,
        "network.proxy.no_proxies_on": "",
    }


def user_js(prefs: Mapping[str, Pref] = PREFS) -> str:
    """`prefs` as a `user.js` file: one `user_pref("name", value);` line each, sorted."""
    lines = ["// written by simnet for one peer's run; removed with the profile"]
    for name in sorted(prefs):
        value = prefs[name]
        if not isinstance(value, bool | int | str):
            raise TypeError(f"preference {name}: {value!r} is not a bool, int or str")
        lines.append(f"user_pref({json.dumps(name)}, {json.dumps(value)});")
    return "\n".join(lines) + "\n"
