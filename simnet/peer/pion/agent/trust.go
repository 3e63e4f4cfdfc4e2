package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"
)

// systemBundle is Debian's CA bundle, which the agent's own bundle starts with.
const systemBundle = "/etc/ssl/certs/ca-certificates.crt"

// trustStore is the CAs TURN over TLS trusts. pion's TURN client verifies a turns: server
// against Go's system roots (it takes no tls.Config), which Go reads once, from SSL_CERT_FILE
// when set: so the agent writes a bundle of the system's CAs and every trusted file into its
// scratch directory and points SSL_CERT_FILE at it, before its first TLS handshake. A CA added
// after that handshake is not seen until the agent restarts (the log says so).
type trustStore struct {
	mu      sync.Mutex
	dir     string
	files   []string
	handshk bool // a call with a turns: URL has run: Go has read its roots
}

func newTrustStore(dir string) *trustStore { return &trustStore{dir: dir} }

func (s *trustStore) add(files ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return err
		}
		known := false
		for _, have := range s.files {
			known = known || have == abs
		}
		if !known {
			s.files = append(s.files, abs)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if s.dir == "" {
		return errors.New("no --scratch directory to write the CA bundle in")
	}
	if s.handshk {
		log.Printf("trust: %v added after a TLS handshake: Go has read its roots already", files)
	}
	var bundle []byte
	if system, err := os.ReadFile(systemBundle); err == nil {
		bundle = append(bundle, system...)
	}
	for _, f := range s.files {
		pem, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		bundle = append(append(bundle, '\n'), pem...)
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(s.dir, "ca-bundle.pem")
	if err := os.WriteFile(path, bundle, 0o600); err != nil {
		return err
	}
	return os.Setenv("SSL_CERT_FILE", path)
}

func (s *trustStore) usedTLS() {
	s.mu.Lock()
	s.handshk = true
	s.mu.Unlock()
}

// readTone reads the Opus packets of the tone: each a 2-byte big-endian length, then its bytes
// (written by simnet/peer/pion/build.py from aiortc's encoder: the packets aiortc's replay sends).
func readTone(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var packets [][]byte
	for len(data) >= 2 {
		n := int(binary.BigEndian.Uint16(data))
		if len(data) < 2+n {
			return nil, fmt.Errorf("%s: truncated packet", path)
		}
		packets = append(packets, data[2:2+n])
		data = data[2+n:]
	}
	if len(packets) == 0 {
		return nil, fmt.Errorf("%s: no packet", path)
	}
	return packets, nil
}
