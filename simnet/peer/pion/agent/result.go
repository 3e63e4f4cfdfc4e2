package main

import (
	"net"
	"net/url"
	"strings"

	"github.com/pion/webrtc/v3"
)

// turnURL is one turn:/turns: URL of the call, as simnet reports it.
type turnURL struct {
	raw       string
	server    string // "ip:port"
	host      string
	transport string // udp / tcp / tls
}

func parseTurnURL(raw string) (turnURL, bool) {
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok || (scheme != "turn" && scheme != "turns") {
		return turnURL{}, false
	}
	hostport, query, _ := strings.Cut(rest, "?")
	params, _ := url.ParseQuery(query)
	transport := params.Get("transport")
	if transport == "" {
		transport = "udp"
		if scheme == "turns" {
			transport = "tcp"
		}
	}
	if scheme == "turns" {
		transport = "tls"
	}
	port := "3478"
	if scheme == "turns" {
		port = "5349"
	}
	host := hostport
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		host, port = h, p
	}
	host = strings.Trim(host, "[]")
	return turnURL{raw: raw, server: net.JoinHostPort(host, port), host: host, transport: transport}, true
}

func (c *Call) turnURLs() []turnURL {
	var urls []turnURL
	for _, s := range c.cmd.ICEServers {
		for _, raw := range s.URLs {
			if u, ok := parseTurnURL(raw); ok {
				urls = append(urls, u)
			}
		}
	}
	return urls
}

// relayTransport is how pion names a relayed candidate's way to its server, as simnet does.
func relayTransport(protocol string) string {
	if protocol == "dtls" {
		return "udp"
	}
	return protocol
}

// urlFor is the TURN URL a relayed candidate came from: pion does not say, so the one of the
// candidate's transport (and of its address, when several share a transport).
func (c *Call) urlFor(protocol, address string) *turnURL {
	var match *turnURL
	for _, u := range c.turnURLs() {
		u := u
		if u.transport != protocol {
			continue
		}
		if match == nil || u.host == address {
			match = &u
		}
	}
	return match
}

func candidateInfo(typ, protocol, address string, port int) map[string]any {
	return map[string]any{"type": typ, "protocol": protocol, "address": address, "port": port}
}

// snapshotPair keeps the selected pair and the local candidates' stats while the transport is
// up: the peer may close first, and the pair is gone with it.
func (c *Call) snapshotPair() {
	if c.pc == nil || c.pc.SCTP() == nil {
		return
	}
	pair, err := c.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	stats := c.pc.GetStats()
	var locals []webrtc.ICECandidateStats
	succeeded := map[string]bool{}
	for _, s := range stats {
		if cs, ok := s.(webrtc.ICECandidateStats); ok && cs.Type == webrtc.StatsTypeLocalCandidate {
			locals = append(locals, cs)
		}
	}
	types := map[string]string{}
	for _, s := range stats {
		if cs, ok := s.(webrtc.ICECandidateStats); ok {
			types[cs.ID] = cs.CandidateType.String()
		}
	}
	direct := false
	for _, s := range stats {
		if ps, ok := s.(webrtc.ICECandidatePairStats); ok && ps.State == webrtc.StatsICECandidatePairStateSucceeded {
			succeeded[ps.ID] = true
			l, r := types[ps.LocalCandidateID], types[ps.RemoteCandidateID]
			if l != "" && r != "" && l != "relay" && r != "relay" {
				direct = true
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(locals) > 0 {
		c.localStats = locals
	}
	if len(succeeded) > 0 {
		c.directSucceeded = &direct
	}
	if err != nil || pair == nil || pair.Local == nil || pair.Remote == nil {
		return
	}
	l, r := pair.Local, pair.Remote
	c.pair = map[string]any{
		"local":  candidateInfo(l.Typ.String(), l.Protocol.String(), l.Address, int(l.Port)),
		"remote": candidateInfo(r.Typ.String(), r.Protocol.String(), r.Address, int(r.Port)),
	}
	if l.Typ == webrtc.ICECandidateTypeRelay {
		protocol := "udp"
		for _, s := range c.localStats {
			if s.IP == l.Address && int(s.Port) == int(l.Port) && s.RelayProtocol != "" {
				protocol = relayTransport(s.RelayProtocol)
			}
		}
		relay := map[string]any{"server_url": nil, "server": "", "transport": protocol}
		if u := c.urlFor(protocol, l.Address); u != nil {
			relay["server_url"], relay["server"] = u.raw, u.server
		}
		c.pair["relay"] = relay
	}
}

// turnAttempts: one per TURN URL, ok when a relayed candidate of its transport was gathered
// (pion tries every URL; its failures are known from its log only).
func (c *Call) turnAttempts() []map[string]any {
	c.mu.Lock()
	start := c.gatherStart
	relays := map[string][]localCandidate{}
	for _, l := range c.localCands {
		if l.typ != "relay" {
			continue
		}
		protocol := "udp"
		for _, s := range c.localStats {
			if s.IP == l.address && int(s.Port) == l.port && s.RelayProtocol != "" {
				protocol = relayTransport(s.RelayProtocol)
			}
		}
		relays[protocol] = append(relays[protocol], l)
	}
	gathered, ok := c.phaseT["gathering_done"]
	c.mu.Unlock()
	if start == 0 {
		return nil
	}
	var attempts []map[string]any
	for _, u := range c.turnURLs() {
		attempt := map[string]any{"server": u.server, "transport": u.transport, "ok": false,
			"error": nil, "error_code": nil, "elapsed_ms": 0.0}
		if list := relays[u.transport]; len(list) > 0 {
			attempt["ok"] = true
			attempt["elapsed_ms"] = (list[0].t - start) * 1000
			relays[u.transport] = list[1:]
		} else {
			// the last TURN log line naming this server ("host:port"; pion's lines do not
			// say the transport, so a UDP and a TCP URL of one server share it)
			detail, code := "no relayed candidate", 0
			for _, f := range c.turnLog.all() {
				if strings.Contains(f.text, u.server) {
					detail, code = f.text, f.code
				}
			}
			attempt["error"] = detail
			if code != 0 {
				attempt["error_code"] = code
			}
			if ok {
				attempt["elapsed_ms"] = (gathered - start) * 1000
			}
		}
		attempts = append(attempts, attempt)
	}
	return attempts
}

func remoteFields(candidate string) (typ, address string) {
	fields := strings.Fields(strings.TrimPrefix(candidate, "candidate:"))
	if len(fields) >= 8 {
		return fields[7], fields[4]
	}
	return "", ""
}

// result is the call's CallResult (simnet/peer/protocol.py).
func (c *Call) result(failure *callFailed) map[string]any {
	c.snapshotPair() // the pair (if still there) and the candidates' stats, before closing
	attempts := c.turnAttempts()
	var media []map[string]any
	c.mu.Lock()
	window, before, after := c.mediaWindow, c.mediaBefore, c.mediaAfter
	c.mu.Unlock()
	if window != nil {
		media = append(media, c.md.kindStats(*window, before, after))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	local, localFam := map[string]int{}, map[string]int{}
	for _, l := range c.localCands {
		local[l.typ]++
		localFam[l.family]++
	}
	remote, remoteFam := map[string]int{}, map[string]int{}
	for _, r := range c.remoteCands {
		typ, address := remoteFields(r)
		if typ != "" {
			remote[typ]++
			remoteFam[familyOf(address)]++
		}
	}
	phase := map[string]float64{}
	for k, v := range c.phaseT {
		phase[k] = v
	}
	r := map[string]any{
		"role": c.cmd.Role, "connected": c.connected, "error": nil, "error_detail": nil,
		"selected_pair": nil, "direct_pair_succeeded": nil,
		"local_candidates": local, "remote_candidates": remote,
		"local_candidate_families": localFam, "remote_candidate_families": remoteFam,
		"turn_attempts": orEmpty(attempts), "phase_t": phase, "setup_s": nil,
		"dc_rtt_ms": nil, "dc_bytes": nil, "dc_goodput_mbps": nil,
		"media": orEmptyMaps(media), "media_window_s": nil,
		"disconnects": c.disconnects, "disconnected_s": c.disconnectedS, "clock_error_ms": nil,
	}
	if failure != nil {
		r["error"], r["error_detail"] = failure.kind, failure.detail
	}
	if c.pair != nil {
		r["selected_pair"] = c.pair
	}
	if c.directSucceeded != nil {
		r["direct_pair_succeeded"] = *c.directSucceeded
	}
	startKey := "offer_received"
	if c.cmd.Role == "offer" {
		startKey = "offer_created"
	}
	if open, ok := phase["dc_open"]; ok {
		if start, ok := phase[startKey]; ok {
			r["setup_s"] = open - start
		}
	}
	if window != nil {
		r["media_window_s"] = window[1] - window[0]
	}
	if d := c.dc; d != nil {
		d.mu.Lock()
		if d.rttMs != nil {
			r["dc_rtt_ms"] = *d.rttMs
		}
		if d.bytes != nil {
			r["dc_bytes"] = *d.bytes
		}
		if d.goodput != nil {
			r["dc_goodput_mbps"] = *d.goodput
		}
		d.mu.Unlock()
	}
	return r
}

func orEmpty(a []map[string]any) []map[string]any {
	if a == nil {
		return []map[string]any{}
	}
	return a
}

func orEmptyMaps(a []map[string]any) []map[string]any { return orEmpty(a) }
