package server_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/server"
)

// The node API's effective handshake admission is in the "server ready"
// line: the defaults when the Config leaves it zero, else the Config's.
func TestReadyLogsHandshakeAdmission(t *testing.T) {
	for _, tt := range []struct {
		name     string
		max      int
		wait     time.Duration
		wantMax  int
		wantWait string
	}{
		{"defaults", 0, 0, 2 * runtime.GOMAXPROCS(0), "10s"},
		{"configured", 3, 15 * time.Second, 3, "15s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logtest.Buffer{}
			start(t, server.Config{Logger: logs.Logger(), MaxHandshakes: tt.max, HandshakeWait: tt.wait})
			line := readyLine(t, logs.String())
			assert.Contains(t, line, fmt.Sprintf(" max_handshakes=%d ", tt.wantMax))
			assert.Contains(t, line, " handshake_wait="+tt.wantWait+" ")
		})
	}
}

// readyLine returns the "server ready" line of logs.
func readyLine(t *testing.T, logs string) string {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `msg="server ready"`) {
			return line
		}
	}
	t.Fatalf("no server ready line in:\n%s", logs)
	return ""
}
