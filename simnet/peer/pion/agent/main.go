// Command simnet-pion is simnet's pion peer: one side of a WebRTC call made with pion/webrtc v3,
// behind simnet's peer protocol (docs/peer-protocol.md): commands on stdin, events on stdout,
// one JSON object per line, every "t" on CLOCK_MONOTONIC, which all namespaces share.
//
// It is started inside its host's network namespace by simnet (simnet/peer/pion/__init__.py
// builds its command line) and makes one call at a time (call.go).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v3"
	"golang.org/x/sys/unix"
)

// pionVersion is pion/webrtc's version, set by the build (-ldflags -X main.pionVersion=...).
var pionVersion = "unknown"

const protocolVersion = 1

// mono is CLOCK_MONOTONIC in seconds: the clock of every "t" (Python's time.monotonic()).
func mono() float64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

// emitter writes events to stdout, one line each, whole lines only.
type emitter struct {
	mu sync.Mutex
	w  *bufio.Writer
}

var out = &emitter{w: bufio.NewWriter(os.Stdout)}

func (e *emitter) emit(event string, t float64, fields map[string]any) {
	line := map[string]any{}
	for k, v := range fields {
		line[k] = v
	}
	line["event"] = event
	line["t"] = t
	data, err := json.Marshal(line)
	if err != nil {
		log.Printf("event %s not sent: %v", event, err)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.w.Write(data)
	e.w.WriteByte('\n')
	e.w.Flush()
}

type stringList []string

// viaProxy is the HTTP proxy everything TCP goes through (--proxy), nil for none.
var viaProxy *httpProxy

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// agent holds the one call in progress, if any.
type agent struct {
	mu      sync.Mutex
	current *Call
	trust   *trustStore
	tone    [][]byte
}

func main() {
	var trust stringList
	scratch := flag.String("scratch", "", "a directory this peer owns (the CA bundle for TURN over TLS)")
	tonePath := flag.String("tone", "", "the Opus packets of the audio it sends (length-prefixed)")
	flag.Var(&trust, "trust", "a PEM file of CAs to trust for turns: URLs (repeatable)")
	proxyURL := flag.String("proxy", "", "HTTP proxy (http://address:port) for signaling and TURN over TCP")
	flag.Parse()
	log.SetOutput(os.Stderr)
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	var err error
	if viaProxy, err = proxyFrom(*proxyURL); err != nil {
		log.Fatal(err)
	}

	a := &agent{trust: newTrustStore(*scratch)}
	if err := a.trust.add(trust...); err != nil {
		log.Printf("trust: %v", err)
	}
	if *tonePath != "" {
		tone, err := readTone(*tonePath)
		if err != nil {
			log.Printf("no audio: %v", err)
		}
		a.tone = tone
	}
	started := mono()
	warmUp()
	out.emit("ready", mono(), map[string]any{
		"protocol":     protocolVersion,
		"peer_kind":    "pion",
		"peer_version": fmt.Sprintf("pion/webrtc %s (%s)", pionVersion, runtime.Version()),
		"pid":          os.Getpid(),
		"warm_s":       mono() - started,
	})
	a.serve()
}

// warmUp makes an offer once, off the clock: a certificate, the SDP code and the ICE agent
// are paid for before the first call is timed.
func warmUp() {
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		log.Printf("warm-up: %v", err)
		return
	}
	defer pc.Close()
	if _, err = pc.CreateDataChannel("warm-up", nil); err == nil {
		if offer, err := pc.CreateOffer(nil); err == nil {
			_ = pc.SetLocalDescription(offer)
		}
	}
}

func (a *agent) serve() {
	reader := bufio.NewReaderSize(os.Stdin, 1<<16)
	for {
		line, err := reader.ReadString('\n')
		if strings.TrimSpace(line) != "" {
			if a.command(line) {
				break
			}
		}
		if err != nil { // end of stdin: simnet is gone
			break
		}
	}
	a.exit()
}

// command runs one command line; true when it says to exit.
func (a *agent) command(line string) bool {
	var head struct {
		Cmd string `json:"cmd"`
	}
	if err := json.Unmarshal([]byte(line), &head); err != nil {
		out.emit("error", mono(), map[string]any{"error": "not a JSON object: " + err.Error()})
		return false
	}
	switch head.Cmd {
	case "call":
		a.startCall(line)
	case "exit":
		return true
	case "ice-restart":
		a.mu.Lock()
		call := a.current
		a.mu.Unlock()
		if call == nil {
			out.emit("ice_restart", mono(), map[string]any{"supported": false, "reason": "no call in progress"})
		} else {
			call.iceRestartCommand()
		}
	default:
		out.emit("error", mono(), map[string]any{"error": fmt.Sprintf("unknown command %q", head.Cmd)})
	}
	return false
}

func (a *agent) startCall(line string) {
	cmd := defaultCommand()
	if err := json.Unmarshal([]byte(line), cmd); err != nil {
		out.emit("error", mono(), map[string]any{"error": "bad call command: " + err.Error()})
		return
	}
	if reason := a.refusal(cmd); reason != "" {
		out.emit("error", mono(), map[string]any{"error": reason})
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.current != nil {
		out.emit("error", mono(), map[string]any{"error": "busy: a call is in progress"})
		return
	}
	if cmd.CAFile != nil && *cmd.CAFile != "" {
		if err := a.trust.add(*cmd.CAFile); err != nil {
			out.emit("error", mono(), map[string]any{"error": "ca_file: " + err.Error()})
			return
		}
	}
	call := newCall(cmd, a.tone)
	call.release = func() {
		a.mu.Lock()
		if a.current == call {
			a.current = nil
		}
		a.mu.Unlock()
	}
	a.current = call
	go call.run()
}

// refusal says why this peer cannot make the call ("" if it can).
func (a *agent) refusal(cmd *CallCommand) string {
	if cmd.Media.Video != nil {
		return "a pion peer sends audio only (it has no video encoder): set call.media.video to null"
	}
	if cmd.Media.Audio && len(a.tone) == 0 {
		return "a pion peer needs its Opus packets (--tone) to send audio; rebuild it (./setup.sh)"
	}
	return ""
}

// exit ends a call in progress (its peer connection closed) and exits within 5 s.
func (a *agent) exit() {
	a.mu.Lock()
	call := a.current
	a.mu.Unlock()
	if call != nil {
		call.cancel()
		select {
		case <-call.finished:
		case <-time.After(4 * time.Second):
		}
	}
	os.Exit(0)
}
