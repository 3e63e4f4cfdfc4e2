package main

import (
	"encoding/json"
	"sort"
	"sync"
	"time"

	"github.com/pion/webrtc/v3"
)

// The data channel "simnet" and its exchange (docs/peer-protocol.md, "The data channel"), the
// same as simnet/peer/aiortc/call/datachannel.py's.
const (
	channelLabel    = "simnet"
	bufferHighBytes = 1 << 20
	bufferLowBytes  = 256 << 10
)

type datachannel struct {
	c        *Call
	mu       sync.Mutex
	dc       *webrtc.DataChannel
	open     *once[bool]
	peerDone *once[bool]
	bulkDone *once[map[string]any]
	summary  *once[map[string]any]
	pongs    map[int]*once[float64]
	low      chan struct{}

	rxExpected int64
	rxT0       float64
	rxBytes    int64

	rttMs   *float64
	bytes   *int64
	goodput *float64
}

func newDatachannel(c *Call) *datachannel {
	return &datachannel{c: c, open: newOnce[bool](), peerDone: newOnce[bool](),
		bulkDone: newOnce[map[string]any](), summary: newOnce[map[string]any](),
		pongs: map[int]*once[float64]{}, low: make(chan struct{}, 1), rxExpected: -1}
}

func (d *datachannel) attach(dc *webrtc.DataChannel) {
	d.mu.Lock()
	if d.dc != nil {
		d.mu.Unlock()
		return
	}
	d.dc = dc
	d.mu.Unlock()
	dc.OnOpen(func() {
		if !d.open.isSet() {
			d.c.milestone("dc_open", mono(), nil)
			d.open.set(true)
		}
	})
	dc.OnMessage(func(m webrtc.DataChannelMessage) { d.onMessage(m) })
	dc.OnClose(func() { d.peerDone.set(true) })
	dc.SetBufferedAmountLowThreshold(bufferLowBytes)
	dc.OnBufferedAmountLow(func() {
		select {
		case d.low <- struct{}{}:
		default:
		}
	})
}

func (d *datachannel) sendControl(m map[string]any) error {
	data, _ := json.Marshal(m)
	return d.dc.SendText(string(data))
}

func number(v any) (float64, bool) {
	f, ok := v.(float64)
	return f, ok
}

func (d *datachannel) onMessage(m webrtc.DataChannelMessage) {
	if !m.IsString {
		d.onBulk(int64(len(m.Data)))
		return
	}
	var msg map[string]any
	if json.Unmarshal(m.Data, &msg) != nil || msg == nil {
		return
	}
	switch msg["type"] {
	case "ping":
		_ = d.sendControl(map[string]any{"type": "pong", "seq": msg["seq"]})
	case "pong":
		if seq, ok := number(msg["seq"]); ok {
			d.mu.Lock()
			waiter := d.pongs[int(seq)]
			d.mu.Unlock()
			if waiter != nil {
				waiter.set(mono())
			}
		}
	case "bulk":
		total, _ := number(msg["bytes"])
		t0, _ := number(msg["t0"])
		d.mu.Lock()
		d.rxExpected, d.rxT0, d.rxBytes = int64(total), t0, 0
		d.mu.Unlock()
		d.onBulk(0)
	case "bulk-done":
		d.bulkDone.set(msg)
	case "summary":
		d.mu.Lock()
		if rtt, ok := number(msg["rtt_ms"]); ok {
			d.rttMs = &rtt
		}
		d.mu.Unlock()
		d.summary.set(msg)
	case "done":
		d.peerDone.set(true)
	}
}

func (d *datachannel) onBulk(size int64) {
	d.mu.Lock()
	d.rxBytes += size
	if d.rxExpected < 0 || d.rxBytes < d.rxExpected {
		d.mu.Unlock()
		return
	}
	tLast := mono()
	elapsed := tLast - d.rxT0
	var goodput any
	if elapsed > 0 {
		goodput = float64(d.rxBytes) * 8 / elapsed / 1e6
	}
	report := map[string]any{"type": "bulk-done", "bytes": d.rxBytes, "t_last": tLast, "goodput_mbps": goodput}
	d.rxExpected = -1
	d.mu.Unlock()
	_ = d.sendControl(report)
	d.bulkDone.set(report)
}

// exchange runs the echoes, the transfer and the summary, each bounded by datachannel_s.
func (d *datachannel) exchange() error {
	cmd := d.c.cmd
	limit := cmd.Timeouts.DatachannelS
	if _, err := await(d.c, "datachannel", d.open, limit); err != nil {
		return err
	}
	if cmd.Role == "offer" {
		if cmd.RTTProbes > 0 {
			if err := d.probeRTT(limit); err != nil {
				return err
			}
		}
		if cmd.DataBytes > 0 {
			if err := d.sendBulk(limit); err != nil {
				return err
			}
		}
		d.mu.Lock()
		var rtt any
		if d.rttMs != nil {
			rtt = *d.rttMs
		}
		d.mu.Unlock()
		if err := d.sendControl(map[string]any{"type": "summary", "rtt_ms": rtt}); err != nil {
			return callFailed{"datachannel", "summary: " + err.Error()}
		}
	} else {
		if cmd.DataBytes > 0 {
			if _, err := await(d.c, "datachannel", d.bulkDone, limit); err != nil {
				return err
			}
		}
		if _, err := await(d.c, "datachannel", d.summary, limit); err != nil {
			return err
		}
	}
	if d.bulkDone.isSet() {
		report := d.bulkDone.get()
		d.mu.Lock()
		if b, ok := report["bytes"]; ok {
			var n int64
			switch v := b.(type) {
			case float64:
				n = int64(v)
			case int64:
				n = v
			}
			d.bytes = &n
		}
		switch g := report["goodput_mbps"].(type) {
		case float64:
			d.goodput = &g
		}
		d.mu.Unlock()
	}
	return nil
}

func (d *datachannel) probeRTT(limit float64) error {
	deadline := time.Now().Add(seconds(limit))
	samples := []float64{}
	for seq := 0; seq < d.c.cmd.RTTProbes; seq++ {
		waiter := newOnce[float64]()
		d.mu.Lock()
		d.pongs[seq] = waiter
		d.mu.Unlock()
		sent := mono()
		if err := d.sendControl(map[string]any{"type": "ping", "seq": seq}); err != nil {
			return callFailed{"datachannel", "ping: " + err.Error()}
		}
		got, err := await(d.c, "datachannel", waiter, time.Until(deadline).Seconds())
		if err != nil {
			return err
		}
		samples = append(samples, (got-sent)*1000)
	}
	sort.Float64s(samples)
	mid := len(samples) / 2
	rtt := samples[mid]
	if len(samples)%2 == 0 {
		rtt = (samples[mid-1] + samples[mid]) / 2
	}
	d.mu.Lock()
	d.rttMs = &rtt
	d.mu.Unlock()
	return nil
}

func (d *datachannel) sendBulk(limit float64) error {
	cmd := d.c.cmd
	deadline := time.Now().Add(seconds(limit))
	total, chunk := cmd.DataBytes, cmd.DataChunkBytes
	payload := make([]byte, chunk)
	if err := d.sendControl(map[string]any{"type": "bulk", "bytes": total, "t0": mono()}); err != nil {
		return callFailed{"datachannel", "bulk: " + err.Error()}
	}
	for sent := 0; sent < total; {
		for d.dc.BufferedAmount() > bufferHighBytes {
			select {
			case <-d.low:
			case <-time.After(50 * time.Millisecond): // the event may have come before we waited
			case <-d.c.ctx.Done():
				return callFailed{"agent", "the call was ended (exit)"}
			}
			if time.Now().After(deadline) {
				return callFailed{"timeout:datachannel", "the transfer did not end in time"}
			}
		}
		size := chunk
		if total-sent < size {
			size = total - sent
		}
		if err := d.dc.Send(payload[:size]); err != nil {
			return callFailed{"datachannel", "transfer: " + err.Error()}
		}
		sent += size
	}
	_, err := await(d.c, "datachannel", d.bulkDone, time.Until(deadline).Seconds())
	return err
}

// finish sends "done" and waits for the peer's (or the channel's close), bounded.
func (d *datachannel) finish() {
	d.c.snapshotPair()
	if d.dc == nil || d.dc.ReadyState() != webrtc.DataChannelStateOpen {
		return
	}
	_ = d.sendControl(map[string]any{"type": "done"})
	wait := doneWaitS
	if d.c.cmd.Timeouts.DatachannelS < wait {
		wait = d.c.cmd.Timeouts.DatachannelS
	}
	_, _ = await(d.c, "done", d.peerDone, wait)
}
