package main

import (
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v3"
	"github.com/pion/webrtc/v3/pkg/media"
)

// Audio: the tone's Opus packets (encoded once by aiortc's encoder at build time, the packets
// aiortc's `coding: replay` sends) replayed every 20 ms; received packets are counted, not
// decoded (an Opus packet is one frame). pion has no Opus encoder, so every call replays.
const ptime = 20 * time.Millisecond

type senderReport struct {
	ntp    float64 // the sender's NTP time, seconds
	octets uint32
}

type mediaSession struct {
	c     *Call
	mu    sync.Mutex
	track *webrtc.TrackLocalStaticSample
	stopC chan struct{}
	stopO sync.Once

	sentPackets, sentBytes int64
	started                bool

	recvPackets  int64
	recvFirst    *once[bool]
	baseSeq      uint32
	maxSeq       uint32 // extended
	haveSeq      bool
	jitter       float64 // RTP units
	lastTransit  float64
	haveTransit  bool
	reports      []senderReport
	rttMs        *float64
	resumeWaitN  int // a restart waiting for its first media packet
	remoteActive bool
}

func newMediaSession(c *Call) *mediaSession {
	return &mediaSession{c: c, stopC: make(chan struct{}), recvFirst: newOnce[bool]()}
}

func (m *mediaSession) audio() bool { return m.c.cmd.Media.Audio }

func (m *mediaSession) addTrack(pc *webrtc.PeerConnection) error {
	if !m.audio() {
		return nil
	}
	track, err := webrtc.NewTrackLocalStaticSample(
		webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
		"audio", "simnet")
	if err != nil {
		return callFailed{"agent", "audio track: " + err.Error()}
	}
	sender, err := pc.AddTrack(track)
	if err != nil {
		return callFailed{"agent", "audio track: " + err.Error()}
	}
	m.track = track
	go m.readSenderRTCP(sender)
	go m.send()
	return nil
}

// send replays the tone at 20 ms pacing on the monotonic clock; packets written before the
// transport is up go nowhere (pion drops them), so the count starts at the first that leaves.
func (m *mediaSession) send() {
	start := mono()
	for i := 0; ; i++ {
		wait := start + float64(i)*ptime.Seconds() - mono()
		if wait > 0 {
			select {
			case <-time.After(seconds(wait)):
			case <-m.stopC:
				return
			}
		}
		select {
		case <-m.stopC:
			return
		default:
		}
		if !m.c.dtlsDone.isSet() || !m.c.dtlsDone.get() {
			// not connected yet: the schedule starts when it is
			select {
			case <-m.c.dtlsDone.ch:
			case <-m.stopC:
				return
			}
			start, i = mono(), -1
			continue
		}
		payload := m.c.tone[i%len(m.c.tone)]
		if err := m.track.WriteSample(media.Sample{Data: payload, Duration: ptime}); err != nil {
			log.Printf("audio: %v", err)
			continue
		}
		m.mu.Lock()
		first := !m.started
		m.started = true
		m.sentPackets++
		m.sentBytes += int64(len(payload))
		m.mu.Unlock()
		if first {
			m.c.event("first_frame", "first_frame:audio:send", mono(), map[string]any{"kind": "audio", "direction": "send"})
		}
	}
}

// compactNTP is the middle 32 bits of the NTP time now (RTCP's LSR / DLSR units).
func compactNTP(t time.Time) uint32 {
	secs := uint64(t.Unix()) + 2208988800
	frac := uint64(t.Nanosecond()) * (1 << 32) / 1e9
	return uint32((secs<<32 | frac) >> 16)
}

func (m *mediaSession) readSenderRTCP(sender *webrtc.RTPSender) {
	for {
		packets, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		now := compactNTP(time.Now())
		for _, p := range packets {
			rr, ok := p.(*rtcp.ReceiverReport)
			if !ok {
				continue
			}
			for _, r := range rr.Reports {
				if r.LastSenderReport == 0 {
					continue
				}
				rtt := float64(now-r.LastSenderReport-r.Delay) / 65536 * 1000
				if rtt >= 0 && rtt < 60_000 {
					m.mu.Lock()
					m.rttMs = &rtt
					m.mu.Unlock()
				}
			}
		}
	}
}

func (m *mediaSession) receive(track *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	if track.Kind() != webrtc.RTPCodecTypeAudio {
		return
	}
	go func() {
		for {
			packets, _, err := receiver.ReadRTCP()
			if err != nil {
				return
			}
			for _, p := range packets {
				if sr, ok := p.(*rtcp.SenderReport); ok {
					ntp := float64(sr.NTPTime>>32) + float64(sr.NTPTime&0xffffffff)/(1<<32)
					m.mu.Lock()
					m.reports = append(m.reports, senderReport{ntp, sr.OctetCount})
					m.mu.Unlock()
				}
			}
		}
	}()
	go func() {
		rate := float64(track.Codec().ClockRate)
		for {
			p, _, err := track.ReadRTP()
			if err != nil {
				return
			}
			arrived := mono()
			m.mu.Lock()
			m.recvPackets++
			seq := uint32(p.SequenceNumber)
			if !m.haveSeq {
				m.baseSeq, m.maxSeq, m.haveSeq = seq, seq, true
			} else {
				ext := m.maxSeq&^0xffff | seq
				if int32(ext-m.maxSeq) < -0x8000 {
					ext += 0x10000
				} else if int32(ext-m.maxSeq) > 0x8000 {
					ext -= 0x10000
				}
				if ext > m.maxSeq {
					m.maxSeq = ext
				}
			}
			transit := arrived*rate - float64(p.Timestamp)
			if m.haveTransit {
				d := transit - m.lastTransit
				if d < 0 {
					d = -d
				}
				m.jitter += (d - m.jitter) / 16
			}
			m.lastTransit, m.haveTransit = transit, true
			resume := m.resumeWaitN
			m.resumeWaitN = 0
			m.mu.Unlock()
			if !m.recvFirst.isSet() {
				m.c.event("first_frame", "first_frame:audio:recv", arrived, map[string]any{"kind": "audio", "direction": "recv"})
				m.recvFirst.set(true)
			}
			if resume > 0 {
				m.c.event("media_resumed", fmt.Sprintf("media_resumed:audio:%d", resume), arrived, map[string]any{"kind": "audio"})
			}
		}
	}()
}

type counters struct {
	sentPackets, sentBytes, recvPackets int64
}

func (m *mediaSession) counters() counters {
	m.mu.Lock()
	defer m.mu.Unlock()
	return counters{m.sentPackets, m.sentBytes, m.recvPackets}
}

// measure waits for the first frame each way, then measures duration_s of media.
func (m *mediaSession) measure() error {
	if !m.audio() {
		return nil
	}
	c := m.c
	if _, err := await(c, "media", m.recvFirst, c.cmd.Timeouts.MediaS); err != nil {
		return err
	}
	start := mono()
	before := m.counters()
	if c.cmd.DurationS > 0 {
		select {
		case <-time.After(seconds(c.cmd.DurationS)):
		case <-c.ctx.Done():
		}
	}
	end := mono()
	after := m.counters()
	c.mu.Lock()
	c.mediaWindow = &[2]float64{start, end}
	c.mediaBefore, c.mediaAfter = before, after
	c.mu.Unlock()
	if c.cmd.DurationS > 0 && after.recvPackets-before.recvPackets <= 0 {
		return callFailed{"media", "no audio frames during the media window"}
	}
	return nil
}

// kindStats is the result's audio figures over the window.
func (m *mediaSession) kindStats(window [2]float64, before, after counters) map[string]any {
	span := window[1] - window[0]
	rate := func(n int64) float64 {
		if span > 1e-3 {
			return float64(n) * 8 / span / 1000
		}
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	frames := after.recvPackets - before.recvPackets
	fps := 0.0
	if span > 1e-3 {
		fps = float64(frames) / span
	}
	expected := int64(0)
	if m.haveSeq {
		expected = int64(m.maxSeq-m.baseSeq) + 1
	}
	var bitrate any
	if n := len(m.reports); n >= 2 && m.reports[n-1].ntp > m.reports[0].ntp {
		first, last := m.reports[0], m.reports[n-1]
		bitrate = float64(last.octets-first.octets) * 8 / (last.ntp - first.ntp) / 1000
	}
	var rtt any
	if m.rttMs != nil {
		rtt = *m.rttMs
	}
	return map[string]any{
		"kind": "audio",
		"sent": map[string]any{"packets": after.sentPackets, "bytes": after.sentBytes,
			"bitrate_kbps": rate(after.sentBytes - before.sentBytes)},
		"received": map[string]any{"packets": after.recvPackets, "packets_lost": expected - m.recvPackets,
			"jitter_ms": m.jitter / 48000 * 1000, "frames": frames, "fps": fps, "bitrate_kbps": bitrate},
		"rtt_ms": rtt,
	}
}

// awaitResume asks for media_resumed at the next packet received (restart n).
func (m *mediaSession) awaitResume(n int) {
	if !m.audio() {
		return
	}
	m.mu.Lock()
	m.resumeWaitN = n
	m.mu.Unlock()
}

func (m *mediaSession) stop() {
	m.stopO.Do(func() { close(m.stopC) })
}
