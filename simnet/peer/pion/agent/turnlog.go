package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/pion/logging"
)

// turnLog is the call's pion logger: it logs as pion's default does (to stderr, warnings and
// up) and keeps the ICE agent's TURN failures, which pion reports nowhere else: the result's
// turn_attempts and the turn-auth / turn-quota classification come from them.
type turnLog struct {
	mu       sync.Mutex
	failures []turnFailure
	base     *logging.DefaultLoggerFactory
}

type turnFailure struct {
	text string
	code int
}

func (f *turnLog) NewLogger(scope string) logging.LeveledLogger {
	f.mu.Lock()
	if f.base == nil {
		f.base = logging.NewDefaultLoggerFactory()
	}
	base := f.base.NewLogger(scope)
	f.mu.Unlock()
	return &recordingLogger{LeveledLogger: base, log: f, scope: scope}
}

var errorCode = regexp.MustCompile(`error (\d{3})`)

func (f *turnLog) record(text string) {
	lower := strings.ToLower(text)
	if strings.Contains(lower, "server reflexive") { // the STUN gatherer's, even for a turn: URL
		return
	}
	if !strings.Contains(lower, "turn") && !strings.Contains(lower, "relay") && !strings.Contains(lower, "allocat") {
		return
	}
	failure := turnFailure{text: text}
	if m := errorCode.FindStringSubmatch(text); m != nil {
		failure.code, _ = strconv.Atoi(m[1])
	}
	f.mu.Lock()
	f.failures = append(f.failures, failure)
	f.mu.Unlock()
}

func (f *turnLog) all() []turnFailure {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]turnFailure(nil), f.failures...)
}

// refusal is a TURN server's refusal, as the other peers classify it: its limits first (486,
// 508), then 401.
func (f *turnLog) refusal() *callFailed {
	var quota, auth bool
	for _, x := range f.all() {
		quota = quota || x.code == 486 || x.code == 508
		auth = auth || x.code == 401
	}
	switch {
	case quota:
		return &callFailed{"turn-quota", "the TURN server refused the allocation (quota)"}
	case auth:
		return &callFailed{"turn-auth", "the TURN server answered 401"}
	}
	return nil
}

func (f *turnLog) summary() string {
	all := f.all()
	if len(all) == 0 {
		return ""
	}
	parts := []string{}
	for _, x := range all {
		parts = append(parts, x.text)
	}
	return ": " + strings.Join(parts, "; ")
}

type recordingLogger struct {
	logging.LeveledLogger
	log   *turnLog
	scope string
}

func (l *recordingLogger) Warn(msg string) { l.log.record(msg); l.LeveledLogger.Warn(msg) }
func (l *recordingLogger) Warnf(format string, args ...interface{}) {
	l.log.record(fmt.Sprintf(format, args...))
	l.LeveledLogger.Warnf(format, args...)
}
func (l *recordingLogger) Error(msg string) { l.log.record(msg); l.LeveledLogger.Error(msg) }
func (l *recordingLogger) Errorf(format string, args ...interface{}) {
	l.log.record(fmt.Sprintf(format, args...))
	l.LeveledLogger.Errorf(format, args...)
}
