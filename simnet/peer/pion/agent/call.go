package main

import (
	"context"
	"fmt"
	"log"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v2"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v3"
)

// callFailed is a classified failure: kind is one of simnet.callspec.ERROR_KINDS.
type callFailed struct{ kind, detail string }

func (e callFailed) Error() string { return e.kind + ": " + e.detail }

func asFailure(err error) callFailed {
	if f, ok := err.(callFailed); ok {
		return f
	}
	return callFailed{"agent", err.Error()}
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// once is a one-shot signal carrying a value.
type once[T any] struct {
	ch   chan struct{}
	o    sync.Once
	mu   sync.Mutex
	val  T
	done bool
}

func newOnce[T any]() *once[T] { return &once[T]{ch: make(chan struct{})} }

func (o *once[T]) set(v T) {
	o.o.Do(func() {
		o.mu.Lock()
		o.val, o.done = v, true
		o.mu.Unlock()
		close(o.ch)
	})
}

func (o *once[T]) isSet() bool { o.mu.Lock(); defer o.mu.Unlock(); return o.done }

func (o *once[T]) get() T { o.mu.Lock(); defer o.mu.Unlock(); return o.val }

// await waits for o, at most timeoutS (then timeout:<phase>), or the call's end.
func await[T any](c *Call, phase string, o *once[T], timeoutS float64, extra ...<-chan error) (T, error) {
	var zero T
	timer := time.NewTimer(seconds(timeoutS))
	defer timer.Stop()
	var broken <-chan error
	if len(extra) > 0 {
		broken = extra[0]
	}
	select {
	case <-o.ch:
		return o.get(), nil
	case err := <-broken:
		return zero, err
	case <-timer.C:
		return zero, callFailed{"timeout:" + phase, fmt.Sprintf("%s not done within %g s", phase, timeoutS)}
	case <-c.ctx.Done():
		return zero, callFailed{"agent", "the call was ended (exit)"}
	}
}

type description struct {
	sdp     string
	arrived float64
}

type localCandidate struct {
	candidate string
	typ       string
	family    string
	address   string
	port      int
	t         float64
}

// Call is one call, from one side.
type Call struct {
	cmd      *CallCommand
	tone     [][]byte
	ctx      context.Context
	cancel   context.CancelFunc
	finished chan struct{}
	// called once the call is over, before its result is sent: the agent takes calls again
	release func()

	mu          sync.Mutex
	phaseT      map[string]float64
	pc          *webrtc.PeerConnection
	sig         *signaling
	sigBroken   chan error
	remoteSet   bool
	pending     []pendingCandidate
	localCands  []localCandidate
	remoteCands []string
	remoteEnded bool
	descSent    bool
	unsent      []message
	firstMid    string
	gatherStart float64

	desc           *once[description]
	gathered       *once[bool]
	iceDone        *once[bool]
	dtlsDone       *once[bool]
	noPath         *once[callFailed]
	connected      bool
	turnLog        *turnLog
	iceState       string
	disconnectedAt float64
	disconnects    int
	disconnectedS  float64

	dc *datachannel
	md *mediaSession

	restarts    int
	restarting  bool
	checkingGen int // times ICE went to checking (a restart goes there again)

	mediaWindow             *[2]float64
	mediaBefore, mediaAfter counters
	pair                    map[string]any // the selected pair, as last seen
	pairRelay               map[string]any
	localStats              []webrtc.ICECandidateStats
	directSucceeded         *bool
}

type pendingCandidate struct {
	init    webrtc.ICECandidateInit
	arrived float64
}

func newCall(cmd *CallCommand, tone [][]byte) *Call {
	ctx, cancel := context.WithCancel(context.Background())
	return &Call{
		cmd: cmd, tone: tone, ctx: ctx, cancel: cancel, finished: make(chan struct{}),
		phaseT: map[string]float64{}, sigBroken: make(chan error, 1),
		desc: newOnce[description](), gathered: newOnce[bool](), iceDone: newOnce[bool](),
		dtlsDone: newOnce[bool](), noPath: newOnce[callFailed](), turnLog: &turnLog{},
	}
}

// event sends event `name` at `t`; the first time of `key` goes in the result's phase_t.
func (c *Call) event(name, key string, t float64, fields map[string]any) {
	c.mu.Lock()
	if _, seen := c.phaseT[key]; !seen {
		c.phaseT[key] = t
	}
	c.mu.Unlock()
	out.emit(name, t, fields)
}

// milestone records `name` at `t` (once, in phase_t) and sends its event (once).
func (c *Call) milestone(name string, t float64, fields map[string]any) {
	c.mu.Lock()
	_, seen := c.phaseT[name]
	if !seen {
		c.phaseT[name] = t
	}
	c.mu.Unlock()
	if !seen {
		out.emit(name, t, fields)
	}
}

func (c *Call) run() {
	defer close(c.finished)
	var failure *callFailed
	if err := c.steps(); err != nil {
		f := asFailure(err)
		failure = &f
		c.hold()
	}
	c.countDisconnected(mono())
	result := c.result(failure)
	closing := mono()
	out.emit("closing", closing, nil)
	c.close()
	result["close_s"] = mono() - closing
	if c.release != nil {
		// before the result: the harness starts the next call as soon as it reads it
		c.release()
	}
	out.emit("result", mono(), result)
}

func (c *Call) steps() error {
	cmd := c.cmd
	c.milestone("call_started", mono(), map[string]any{"role": cmd.Role, "room": cmd.Room})
	if err := c.newPeerConnection(); err != nil {
		return err
	}
	if cmd.Role == "offer" {
		if err := c.md.addTrack(c.pc); err != nil {
			return err
		}
		dc, err := c.pc.CreateDataChannel(channelLabel, &webrtc.DataChannelInit{Ordered: boolPtr(true)})
		if err != nil {
			return callFailed{"agent", "data channel: " + err.Error()}
		}
		c.dc.attach(dc)
	} else {
		c.pc.OnDataChannel(func(dc *webrtc.DataChannel) { c.dc.attach(dc) })
	}
	if err := c.openSignaling(); err != nil {
		return err
	}
	var err error
	if cmd.Role == "offer" {
		err = c.offer()
	} else {
		err = c.answer()
	}
	if err != nil {
		return err
	}
	if err := c.connect(); err != nil {
		return err
	}
	if err := c.dc.exchange(); err != nil {
		return err
	}
	if err := c.md.measure(); err != nil {
		return err
	}
	c.hold()
	c.dc.finish()
	return nil
}

func boolPtr(b bool) *bool { return &b }

// hold stays in the call until hold_s after the data channel opened.
func (c *Call) hold() {
	c.mu.Lock()
	opened, ok := c.phaseT["dc_open"]
	c.mu.Unlock()
	if c.cmd.HoldS <= 0 || !ok {
		return
	}
	if remaining := opened + c.cmd.HoldS - mono(); remaining > 0 {
		select {
		case <-time.After(seconds(remaining)):
		case <-c.ctx.Done():
		}
	}
}

func (c *Call) newPeerConnection() error {
	cmd := c.cmd
	var engine webrtc.MediaEngine
	if err := engine.RegisterDefaultCodecs(); err != nil {
		return callFailed{"agent", err.Error()}
	}
	registry := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(&engine, registry); err != nil {
		return callFailed{"agent", err.Error()}
	}
	settings := webrtc.SettingEngine{LoggerFactory: c.turnLog}
	settings.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	settings.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled) // no multicast on the LAN
	if l := cmd.Liveness; l != nil {
		// pion's own liveness: disconnected after this much silence, keepalives at this pace
		settings.SetICETimeouts(seconds(l.DisconnectedAfterS), seconds(30), seconds(l.CheckIntervalS))
	}
	if viaProxy != nil {
		settings.SetICEProxyDialer(viaProxy) // TURN over TCP through CONNECT
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(&engine), webrtc.WithSettingEngine(settings),
		webrtc.WithInterceptorRegistry(registry))
	config := webrtc.Configuration{SDPSemantics: webrtc.SDPSemanticsUnifiedPlan,
		BundlePolicy: webrtc.BundlePolicyMaxBundle}
	if cmd.ICETransportPolicy == "relay" {
		config.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	for _, s := range cmd.ICEServers {
		server := webrtc.ICEServer{URLs: s.URLs}
		if viaProxy != nil {
			server.URLs = withoutTURNS(s.URLs)
			if len(server.URLs) == 0 {
				continue
			}
		}
		if s.Username != nil {
			server.Username = *s.Username
		}
		if s.Credential != nil {
			server.Credential = *s.Credential
			server.CredentialType = webrtc.ICECredentialTypePassword
		}
		config.ICEServers = append(config.ICEServers, server)
	}
	pc, err := api.NewPeerConnection(config)
	if err != nil {
		return callFailed{"agent", "peer connection: " + err.Error()}
	}
	c.pc = pc
	c.dc = newDatachannel(c)
	c.md = newMediaSession(c)
	c.watch(pc)
	return nil
}

// --- signaling -----------------------------------------------------------------------------

func (c *Call) openSignaling() error {
	cmd := c.cmd
	s, err := openSignaling(c.ctx, cmd.SignalingKind, cmd.SignalingURLBase, cmd.Room, cmd.Peer,
		cmd.Timeouts.SignalingS, c.onSignal)
	if err != nil {
		return err
	}
	c.mu.Lock()
	old := c.sig
	c.sig = s
	c.mu.Unlock()
	if old != nil {
		old.close()
	}
	go func() {
		err := <-s.broken
		c.mu.Lock()
		current := c.sig == s
		c.mu.Unlock()
		if current {
			select {
			case c.sigBroken <- err:
			default:
			}
		}
	}()
	return nil
}

func (c *Call) send(m message) error {
	m["from"] = c.cmd.Peer
	m["to"] = c.cmd.RemotePeer
	c.mu.Lock()
	s := c.sig
	c.mu.Unlock()
	return s.send(m)
}

func (c *Call) onSignal(m message, arrived float64) {
	cmd := c.cmd
	if from, _ := m["from"].(string); from != cmd.RemotePeer {
		return
	}
	if to, ok := m["to"]; ok {
		if s, _ := to.(string); s != cmd.Peer {
			return
		}
	}
	kind, _ := m["type"].(string)
	expected := "offer"
	if cmd.Role == "offer" {
		expected = "answer"
	}
	sdp, hasSDP := m["sdp"].(string)
	c.mu.Lock()
	desc := c.desc
	c.mu.Unlock()
	switch {
	case kind == "offer" && expected == "offer" && desc.isSet() && hasSDP:
		go c.answerRestart(sdp, arrived)
	case kind == expected && hasSDP:
		desc.set(description{sdp, arrived})
	case kind == "candidate":
		text, ok := m["candidate"].(string)
		if !ok || text == "" {
			return
		}
		init := webrtc.ICECandidateInit{Candidate: text}
		if mid, ok := m["sdpMid"].(string); ok {
			init.SDPMid = &mid
		}
		if idx, ok := m["sdpMLineIndex"].(float64); ok {
			i := uint16(idx)
			init.SDPMLineIndex = &i
		}
		if init.SDPMid == nil && init.SDPMLineIndex == nil {
			zero := uint16(0)
			init.SDPMLineIndex = &zero
		}
		c.mu.Lock()
		c.remoteCands = append(c.remoteCands, text)
		ready := c.remoteSet
		if !ready {
			c.pending = append(c.pending, pendingCandidate{init, arrived})
		}
		c.mu.Unlock()
		if ready {
			c.addRemote(init, arrived)
		}
	case kind == "end-of-candidates":
		c.mu.Lock()
		c.remoteEnded = true
		c.mu.Unlock()
		out.emit("remote_candidates_end", arrived, nil)
		c.checkPath()
	}
}

func (c *Call) addRemote(init webrtc.ICECandidateInit, arrived float64) {
	err := c.pc.AddICECandidate(init)
	if err != nil {
		log.Printf("remote candidate rejected: %v: %s", err, init.Candidate)
	}
	out.emit("remote_candidate", arrived, map[string]any{"candidate": init.Candidate, "applied": err == nil})
}

func (c *Call) receive() (description, error) {
	c.mu.Lock()
	desc := c.desc
	c.mu.Unlock()
	d, err := await(c, "signaling", desc, c.cmd.Timeouts.SignalingS, c.sigBroken)
	if f, ok := err.(callFailed); ok && f.kind == "timeout:signaling" {
		kind := "offer"
		if c.cmd.Role == "offer" {
			kind = "answer"
		}
		return d, callFailed{"timeout:signaling", fmt.Sprintf("no %s from %s", kind, c.cmd.RemotePeer)}
	}
	return d, err
}

var candidateLine = regexp.MustCompile(`(?m)^a=(candidate:[^\r\n]*)`)

func (c *Call) setRemote(kind webrtc.SDPType, sdp string) error {
	c.mu.Lock()
	for _, m := range candidateLine.FindAllStringSubmatch(sdp, -1) {
		c.remoteCands = append(c.remoteCands, m[1])
	}
	if strings.Contains(sdp, "a=end-of-candidates") {
		c.remoteEnded = true
	}
	c.mu.Unlock()
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: kind, SDP: sdp}); err != nil {
		return callFailed{"agent", "remote description: " + err.Error()}
	}
	c.mu.Lock()
	c.remoteSet = true
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, p := range pending {
		c.addRemote(p.init, p.arrived)
	}
	c.checkPath()
	return nil
}

var midLine = regexp.MustCompile(`(?m)^a=mid:(\S+)`)

// setLocal sets our description; pion gathers in the background and trickles (watch).
func (c *Call) setLocal(d webrtc.SessionDescription) error {
	if m := midLine.FindStringSubmatch(d.SDP); m != nil {
		c.mu.Lock()
		c.firstMid = m[1]
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.gatherStart = mono()
	c.mu.Unlock()
	if err := c.pc.SetLocalDescription(d); err != nil {
		return callFailed{"agent", "local description: " + err.Error()}
	}
	return nil
}

// sendDescription sends our description as created (its candidates trickle after it).
func (c *Call) sendDescription(d webrtc.SessionDescription, milestone bool) error {
	handed := mono()
	kind := d.Type.String()
	if err := c.send(message{"type": kind, "sdp": d.SDP}); err != nil {
		return err
	}
	if milestone {
		c.milestone(kind+"_sent", handed, nil)
	}
	c.mu.Lock()
	c.descSent = true
	unsent := c.unsent
	c.unsent = nil
	c.mu.Unlock()
	for _, m := range unsent {
		_ = c.send(m)
	}
	return nil
}

func (c *Call) offer() error {
	offer, err := c.pc.CreateOffer(nil)
	if err != nil {
		return callFailed{"agent", "offer: " + err.Error()}
	}
	c.milestone("offer_created", mono(), nil)
	if err := c.setLocal(offer); err != nil {
		return err
	}
	if err := c.sendDescription(offer, true); err != nil {
		return err
	}
	d, err := c.receive()
	if err != nil {
		return err
	}
	c.milestone("answer_received", d.arrived, nil)
	return c.setRemote(webrtc.SDPTypeAnswer, d.sdp)
}

func (c *Call) answer() error {
	d, err := c.receive()
	if err != nil {
		return err
	}
	c.milestone("offer_received", d.arrived, nil)
	if err := c.setRemote(webrtc.SDPTypeOffer, d.sdp); err != nil {
		return err
	}
	if err := c.md.addTrack(c.pc); err != nil { // after the offer: it takes its transceiver
		return err
	}
	answer, err := c.pc.CreateAnswer(nil)
	if err != nil {
		return callFailed{"agent", "answer: " + err.Error()}
	}
	if err := c.setLocal(answer); err != nil {
		return err
	}
	return c.sendDescription(answer, true)
}

// --- connection ----------------------------------------------------------------------------

var typRe = regexp.MustCompile(` typ (\S+)`)

func familyOf(address string) string {
	if strings.Contains(address, ":") {
		return "ipv6"
	}
	return "ipv4"
}

func (c *Call) watch(pc *webrtc.PeerConnection) {
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		var m message
		if cand != nil {
			init := cand.ToJSON()
			c.mu.Lock()
			c.localCands = append(c.localCands, localCandidate{
				candidate: init.Candidate, typ: cand.Typ.String(), family: familyOf(cand.Address),
				address: cand.Address, port: int(cand.Port), t: mono(),
			})
			mid := c.firstMid
			c.mu.Unlock()
			m = message{"type": "candidate", "candidate": init.Candidate, "sdpMid": mid, "sdpMLineIndex": 0}
		} else {
			m = message{"type": "end-of-candidates"}
			if !c.gathered.isSet() {
				counts := map[string]int{}
				c.mu.Lock()
				for _, l := range c.localCands {
					counts[l.typ]++
				}
				c.mu.Unlock()
				c.milestone("gathering_done", mono(), map[string]any{"candidates": counts})
				c.gathered.set(true)
				c.checkPath()
			}
		}
		c.mu.Lock()
		sent := c.descSent
		if !sent {
			c.unsent = append(c.unsent, m)
		}
		c.mu.Unlock()
		if sent {
			_ = c.send(m) // a broken channel: the wait for the description reports it
		}
	})
	pc.OnICEConnectionStateChange(func(state webrtc.ICEConnectionState) {
		t := mono()
		name := state.String()
		out.emit("ice_state", t, map[string]any{"kind": "ice", "state": name})
		c.mu.Lock()
		c.iceState = name
		c.mu.Unlock()
		switch state {
		case webrtc.ICEConnectionStateChecking:
			c.mu.Lock()
			c.checkingGen++
			c.mu.Unlock()
			c.milestone("ice_checking", t, nil)
		case webrtc.ICEConnectionStateConnected, webrtc.ICEConnectionStateCompleted:
			c.milestone("ice_connected", t, nil)
			c.iceDone.set(true)
			c.countDisconnected(t)
		case webrtc.ICEConnectionStateDisconnected:
			c.mu.Lock()
			if c.iceDone.isSet() && c.disconnectedAt == 0 {
				c.disconnects++
				c.disconnectedAt = t
			}
			c.mu.Unlock()
		case webrtc.ICEConnectionStateFailed:
			c.milestone("ice_failed", t, nil)
			c.iceDone.set(false)
			c.countDisconnected(t)
		}
	})
	pc.OnConnectionStateChange(func(state webrtc.PeerConnectionState) {
		t := mono()
		out.emit("ice_state", t, map[string]any{"kind": "connection", "state": state.String()})
		switch state {
		case webrtc.PeerConnectionStateConnected:
			if !c.dtlsDone.isSet() {
				c.milestone("dtls_connected", t, nil)
				c.dtlsDone.set(true)
			}
		case webrtc.PeerConnectionStateFailed:
			c.iceDone.set(false)
			c.dtlsDone.set(false)
		}
	})
	pc.OnTrack(func(track *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
		c.md.receive(track, receiver)
	})
}

func (c *Call) countDisconnected(until float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.disconnectedAt != 0 {
		c.disconnectedS += until - c.disconnectedAt
		c.disconnectedAt = 0
	}
}

// checkPath fails the call at once when no candidate pair can ever form.
func (c *Call) checkPath() {
	if c.iceDone.isSet() {
		return
	}
	c.mu.Lock()
	local := len(c.localCands)
	remote := len(c.remoteCands)
	remoteSet, remoteEnded := c.remoteSet, c.remoteEnded
	c.mu.Unlock()
	if c.gathered.isSet() && local == 0 {
		if refusal := c.turnLog.refusal(); refusal != nil {
			c.noPath.set(callFailed{refusal.kind, "no local candidate: " + refusal.detail})
		} else {
			c.noPath.set(callFailed{"ice-failed", "no local candidate gathered" + c.turnLog.summary()})
		}
	} else if c.gathered.isSet() && remoteSet && remoteEnded && remote == 0 {
		c.noPath.set(callFailed{"ice-failed", "the peer sent no candidate (it gathered none)"})
	}
}

func (c *Call) connect() error {
	t := c.cmd.Timeouts
	timer := time.NewTimer(seconds(t.ICES))
	defer timer.Stop()
	select {
	case <-c.iceDone.ch:
	case <-c.noPath.ch:
		return c.noPath.get()
	case <-timer.C:
		return callFailed{"timeout:ice", fmt.Sprintf("ice not done within %g s", t.ICES)}
	case <-c.ctx.Done():
		return callFailed{"agent", "the call was ended (exit)"}
	}
	if !c.iceDone.get() {
		if refusal := c.turnLog.refusal(); refusal != nil && !c.hasRelay() {
			return callFailed{refusal.kind, "ICE failed and " + refusal.detail}
		}
		return callFailed{"ice-failed", "no candidate pair succeeded"}
	}
	ok, err := await(c, "dtls", c.dtlsDone, t.DTLSS)
	if err != nil {
		return err
	}
	if !ok {
		return callFailed{"dtls", "DTLS handshake failed"}
	}
	c.mu.Lock()
	c.connected = true
	c.mu.Unlock()
	c.snapshotPair()
	return nil
}

func (c *Call) hasRelay() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.localCands {
		if l.typ == "relay" {
			return true
		}
	}
	return false
}

// close ends the call: the peer connection (TURN deallocation included), then signaling,
// each bounded.
func (c *Call) close() {
	c.md.stop()
	done := make(chan struct{})
	go func() {
		if c.pc != nil {
			_ = c.pc.Close()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(seconds(closeTimeoutS)):
		log.Printf("closing the peer connection took over %g s", closeTimeoutS)
	}
	c.mu.Lock()
	s := c.sig
	c.mu.Unlock()
	if s != nil {
		s.close()
	}
	c.cancel()
}
