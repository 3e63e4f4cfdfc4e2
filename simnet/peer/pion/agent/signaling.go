package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/websocket"
)

// message is one signaling message: a JSON object relayed between the peers of a room.
type message map[string]any

// signaling is simnet's signaling channel for one peer of a room (docs/peer-protocol.md,
// "Signaling"): a WebSocket, or HTTP POST + long-poll on the same server.
type signaling struct {
	kind     string
	base     string
	room     string
	peer     string
	onMsg    func(message, float64)
	broken   chan error // one value when the channel breaks
	once     sync.Once
	mu       sync.Mutex
	ws       *websocket.Conn
	closed   bool
	stopPoll context.CancelFunc
	client   *http.Client
}

func openSignaling(ctx context.Context, kind, base, room, peer string, timeoutS float64,
	onMsg func(message, float64)) (*signaling, error) {
	s := &signaling{kind: kind, base: strings.TrimRight(base, "/"), room: room, peer: peer,
		onMsg: onMsg, broken: make(chan error, 1)}
	timeout := time.Duration(timeoutS * float64(time.Second))
	if kind == "http" {
		s.client = &http.Client{}
		if viaProxy != nil {
			s.client.Transport = viaProxy.transport()
		}
		pollCtx, stop := context.WithCancel(context.Background())
		s.stopPoll = stop
		go s.poll(pollCtx)
		return s, nil
	}
	u, err := url.Parse(s.base)
	if err != nil {
		return nil, callFailed{"signaling", "bad signaling url " + base}
	}
	scheme := "ws"
	if u.Scheme == "https" || u.Scheme == "wss" {
		scheme = "wss"
	}
	target := fmt.Sprintf("%s://%s%s/ws/%s/%s", scheme, u.Host, strings.TrimRight(u.Path, "/"),
		url.PathEscape(room), url.PathEscape(peer))
	config, err := websocket.NewConfig(target, "http://"+u.Host+"/")
	if err != nil {
		return nil, callFailed{"signaling", "bad signaling url " + target}
	}
	config.Dialer = &net.Dialer{Timeout: timeout}
	ws, err := dialWebSocket(config)
	if err != nil {
		if ctx.Err() == nil && isTimeout(err) {
			return nil, callFailed{"timeout:signaling", "timeout: no connection to " + target}
		}
		return nil, callFailed{"signaling", fmt.Sprintf("connect: cannot open %s: %v", target, err)}
	}
	ws.MaxPayloadBytes = 1 << 20
	s.ws = ws
	go s.read()
	return s, nil
}

// dialWebSocket opens the WebSocket directly, or through the proxy's CONNECT (--proxy).
func dialWebSocket(config *websocket.Config) (*websocket.Conn, error) {
	if viaProxy == nil {
		return websocket.DialConfig(config)
	}
	address := config.Location.Host
	if config.Location.Port() == "" {
		address += map[string]string{"wss": ":443", "ws": ":80"}[config.Location.Scheme]
	}
	var conn net.Conn
	var err error
	if config.Location.Scheme == "wss" {
		tlsConfig := config.TlsConfig
		if tlsConfig == nil {
			tlsConfig = &tls.Config{ServerName: config.Location.Hostname()}
		}
		conn, err = viaProxy.dialTLS(address, tlsConfig)
	} else {
		conn, err = viaProxy.Dial("tcp", address)
	}
	if err != nil {
		return nil, err
	}
	ws, err := websocket.NewClient(config, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return ws, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	for e := err; e != nil; {
		if n, ok := e.(net.Error); ok {
			ne = n
			break
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			break
		}
		e = u.Unwrap()
	}
	return ne != nil && ne.Timeout()
}

func (s *signaling) fail(err error) {
	s.once.Do(func() { s.broken <- err })
}

func (s *signaling) read() {
	for {
		var text string
		if err := websocket.Message.Receive(s.ws, &text); err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if !closed {
				s.fail(callFailed{"signaling", "closed: signaling WebSocket closed: " + err.Error()})
			}
			return
		}
		arrived := mono()
		var m message
		if json.Unmarshal([]byte(text), &m) == nil && m != nil {
			s.onMsg(m, arrived)
		}
	}
}

func (s *signaling) httpURL() string {
	return fmt.Sprintf("%s/http/%s/%s", s.base, url.PathEscape(s.room), url.PathEscape(s.peer))
}

func (s *signaling) poll(ctx context.Context) {
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "GET", s.httpURL()+"?timeout=20", nil)
		resp, err := s.client.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				s.fail(callFailed{"signaling", "long-poll: " + err.Error()})
			}
			return
		}
		var batch []message
		err = json.NewDecoder(resp.Body).Decode(&batch)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			s.fail(callFailed{"signaling", fmt.Sprintf("long-poll: status %d: %v", resp.StatusCode, err)})
			return
		}
		arrived := mono()
		for _, m := range batch {
			if m != nil {
				s.onMsg(m, arrived)
			}
		}
	}
}

func (s *signaling) send(m message) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if s.kind == "http" {
		resp, err := s.client.Post(s.httpURL(), "application/json", bytes.NewReader(data))
		if err != nil {
			return callFailed{"signaling", "post: " + err.Error()}
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return callFailed{"signaling", fmt.Sprintf("post: status %d", resp.StatusCode)}
		}
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return callFailed{"signaling", "closed: the signaling WebSocket is not open"}
	}
	if err := websocket.Message.Send(s.ws, string(data)); err != nil {
		return callFailed{"signaling", "send: " + err.Error()}
	}
	return nil
}

func (s *signaling) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if s.ws != nil {
		s.ws.Close()
	}
	if s.stopPoll != nil {
		s.stopPoll()
	}
}
