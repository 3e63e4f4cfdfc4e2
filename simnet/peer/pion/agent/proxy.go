package main

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// httpProxy opens TCP connections through an HTTP proxy's CONNECT tunnel, as a program behind
// a corporate proxy must: the network lets nothing else out. It is a golang.org/x/net/proxy
// Dialer (Dial(network, address)), which pion's ICE agent takes for TURN over TCP
// (SettingEngine.SetICEProxyDialer), and it carries the signaling WebSocket too.
type httpProxy struct {
	address string        // host:port of the proxy
	user    *url.Userinfo // its basic credentials, nil when it asks for none
	timeout time.Duration
}

// proxyFrom parses the agent's --proxy (http://[user:password@]address:port); nil for "" (no
// proxy). The error never repeats the URL: it may carry a password.
func proxyFrom(raw string) (*httpProxy, error) {
	if raw == "" {
		return nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Port() == "" {
		return nil, fmt.Errorf("--proxy is not http://[user:password@]address:port")
	}
	return &httpProxy{address: u.Host, user: u.User, timeout: 10 * time.Second}, nil
}

// authorization is the Proxy-Authorization header line (basic), "" without credentials.
func (p *httpProxy) authorization() string {
	if p.user == nil {
		return ""
	}
	password, _ := p.user.Password()
	secret := base64.StdEncoding.EncodeToString([]byte(p.user.Username() + ":" + password))
	return "Proxy-Authorization: Basic " + secret + "\r\n"
}

// Dial returns a connection to address (host:port) tunnelled through the proxy: CONNECT,
// then the proxy's "200" status line and headers, read a byte at a time so that nothing the
// far end sends after them is swallowed.
func (p *httpProxy) Dial(network, address string) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", p.address, p.timeout)
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %w", p.address, err)
	}
	_ = conn.SetDeadline(time.Now().Add(p.timeout))
	request := fmt.Sprintf("CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", address, address, p.authorization())
	if _, err = conn.Write([]byte(request)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("proxy %s: %w", p.address, err)
	}
	var head []byte
	one := make([]byte, 1)
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if len(head) > 8192 {
			conn.Close()
			return nil, fmt.Errorf("proxy %s: answer to CONNECT %s too long", p.address, address)
		}
		if _, err = conn.Read(one); err != nil {
			conn.Close()
			return nil, fmt.Errorf("proxy %s: CONNECT %s: %w", p.address, address, err)
		}
		head = append(head, one[0])
	}
	status := strings.SplitN(string(head), "\r\n", 2)[0]
	if fields := strings.Fields(status); len(fields) < 2 || fields[1] != "200" {
		conn.Close()
		return nil, fmt.Errorf("proxy %s refused CONNECT %s: %s", p.address, address, status)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

// dialTLS is Dial, then TLS to serverName over the tunnel (wss: signaling).
func (p *httpProxy) dialTLS(address string, config *tls.Config) (net.Conn, error) {
	conn, err := p.Dial("tcp", address)
	if err != nil {
		return nil, err
	}
	client := tls.Client(conn, config)
	if err := client.Handshake(); err != nil {
		conn.Close()
		return nil, err
	}
	return client, nil
}

// transport is an HTTP transport through the proxy (HTTP signaling: POST and long-poll).
func (p *httpProxy) transport() *http.Transport {
	return &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: p.address, User: p.user})}
}

// withoutTURNS drops the turns: URLs: pion's ICE agent, given a proxy dialer, speaks plain
// TURN over the tunnel even to a turns: URL (no TLS handshake, yet the candidate says "tls"),
// so those would be misreported or fail; TURN over TCP is what it can do through a proxy.
func withoutTURNS(urls []string) []string {
	kept := make([]string, 0, len(urls))
	for _, u := range urls {
		if !strings.HasPrefix(strings.ToLower(u), "turns:") {
			kept = append(kept, u)
		}
	}
	return kept
}
