// Package logtest collects what code under test writes (log lines, a
// program's output) from any goroutine, for the test to read meanwhile.
// Test only.
//
//	var logs logtest.Buffer
//	s := start(t, server.Config{Logger: logs.Logger()})
//	require.Eventually(t, func() bool { return logs.Contains("stream ended") }, ...)
package logtest

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
)

// Buffer is an io.Writer safe for concurrent use. The zero value is an
// empty buffer ready to use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Contains reports whether what was written so far contains s.
func (b *Buffer) Contains(s string) bool {
	return strings.Contains(b.String(), s)
}

// Logger returns a logger that writes text lines to b, debug lines
// included.
func (b *Buffer) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
