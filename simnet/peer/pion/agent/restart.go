package main

import (
	"fmt"
	"time"

	"github.com/pion/webrtc/v3"
)

// ICE restart (docs/peer-protocol.md, "ICE restart"): the offerer sends an offer with new ICE
// credentials over a fresh signaling connection; the answerer answers any later offer. Both
// report ice_restart_started, then ice_restart_connected (or ice_restart_failed), then
// media_resumed at the first media packet.

func (c *Call) iceRestartCommand() {
	reason := ""
	c.mu.Lock()
	_, opened := c.phaseT["dc_open"]
	switch {
	case c.cmd.Role != "offer":
		reason = "only the offerer restarts ICE"
	case !opened:
		reason = "the call is not connected yet"
	case c.ctx.Err() != nil:
		reason = "the call has ended"
	case c.restarting:
		reason = "an ICE restart is already running"
	}
	if reason == "" {
		c.restarting = true
	}
	c.mu.Unlock()
	if reason != "" {
		out.emit("ice_restart", mono(), map[string]any{"supported": false, "reason": reason})
		return
	}
	out.emit("ice_restart", mono(), map[string]any{"supported": true})
	go func() {
		c.restart()
		c.mu.Lock()
		c.restarting = false
		c.mu.Unlock()
	}()
}

func (c *Call) restartFailed(n int, err error) {
	c.event("ice_restart_failed", fmt.Sprintf("ice_restart_failed:%d", n), mono(),
		map[string]any{"reason": err.Error()})
}

func (c *Call) restart() {
	c.mu.Lock()
	c.restarts++
	n := c.restarts
	c.remoteSet = false // the answer's candidates wait for it
	c.descSent = false  // our new candidates go after the new offer
	c.desc = newOnce[description]()
	gen := c.checkingGen
	c.mu.Unlock()
	// a new signaling connection first, as an app does after a network change: the old one's
	// TCP connection may be dead without this side knowing
	if err := c.openSignaling(); err != nil {
		c.restartFailed(n, err)
		return
	}
	offer, err := c.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		c.restartFailed(n, err)
		return
	}
	c.event("ice_restart_started", fmt.Sprintf("ice_restart_started:%d", n), mono(), nil)
	if err := c.setLocal(offer); err != nil {
		c.restartFailed(n, err)
		return
	}
	if err := c.sendDescription(offer, false); err != nil {
		c.restartFailed(n, err)
		return
	}
	d, err := c.receive()
	if err != nil {
		c.restartFailed(n, err)
		return
	}
	if err := c.setRemote(webrtc.SDPTypeAnswer, d.sdp); err != nil {
		c.restartFailed(n, err)
		return
	}
	if err := c.restarted(n, gen); err != nil {
		c.restartFailed(n, err)
	}
}

// answerRestart: an offer after the first one renegotiates (new ICE credentials: a restart).
func (c *Call) answerRestart(sdp string, arrived float64) {
	c.mu.Lock()
	c.restarts++
	n := c.restarts
	c.remoteSet = false
	c.descSent = false
	gen := c.checkingGen
	c.mu.Unlock()
	c.event("ice_restart_started", fmt.Sprintf("ice_restart_started:%d", n), arrived, nil)
	if err := c.setRemote(webrtc.SDPTypeOffer, sdp); err != nil {
		c.restartFailed(n, err)
		return
	}
	answer, err := c.pc.CreateAnswer(nil)
	if err != nil {
		c.restartFailed(n, err)
		return
	}
	if err := c.setLocal(answer); err != nil {
		c.restartFailed(n, err)
		return
	}
	if err := c.sendDescription(answer, false); err != nil {
		c.restartFailed(n, err)
		return
	}
	if err := c.restarted(n, gen); err != nil {
		c.restartFailed(n, err)
	}
}

// restarted waits for ICE to check again (pion's restart goes back to checking) and then to
// connect, within ice_s: ice_restart_connected, and media_resumed at the next packet.
func (c *Call) restarted(n, gen int) error {
	deadline := time.Now().Add(seconds(c.cmd.Timeouts.ICES))
	for {
		c.mu.Lock()
		again := c.checkingGen > gen
		state := c.iceState
		c.mu.Unlock()
		if again && (state == "connected" || state == "completed") {
			break
		}
		if c.ctx.Err() != nil {
			return callFailed{"agent", "the call has ended"}
		}
		if time.Now().After(deadline) {
			return callFailed{"timeout:ice", fmt.Sprintf("ICE not connected within %g s of the restart", c.cmd.Timeouts.ICES)}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.event("ice_restart_connected", fmt.Sprintf("ice_restart_connected:%d", n), mono(), nil)
	c.md.awaitResume(n)
	return nil
}
