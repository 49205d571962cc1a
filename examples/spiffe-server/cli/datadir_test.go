package cli

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/logtest"
)

// TestRunDataDirInUse: two servers on one data directory would journal
// over each other and lose CAs, so a second server on a data directory in
// use is refused, told which process holds it; once the first has
// stopped, a server starts there again.
func TestRunDataDirInUse(t *testing.T) {
	dir, err := os.MkdirTemp("", "run")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	start := func(ctx context.Context, admin string) (*logtest.Buffer, chan int) {
		var logs logtest.Buffer
		done := make(chan int, 1)
		go func() {
			done <- Main(ctx, []string{"run", "-trust-domain", "example.org", "-data-dir", data,
				"-bind", "127.0.0.1:0", "-admin-socket", filepath.Join(dir, admin)}, io.Discard, &logs)
		}()
		return &logs, done
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	logs, done := start(ctx, "a.sock")
	waitReady(t, logs, done)

	second, secondDone := start(ctx, "b.sock")
	select {
	case code := <-secondDone:
		assert.Equal(t, ExitFailure, code)
		lines := strings.Split(strings.TrimSpace(second.String()), "\n")
		assert.Equal(t, "spiffe-server run: server: data directory "+data+" is in use by pid "+strconv.Itoa(os.Getpid()),
			lines[len(lines)-1])
	case <-time.After(20 * time.Second):
		t.Fatalf("a second server runs on the data directory in use; logs:\n%s", second)
	}
	stopRuns(t, cancel, logs, done)

	// Stopped, the first server has released the directory.
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	logs2, done2 := start(ctx2, "c.sock")
	waitReady(t, logs2, done2)
	stopRuns(t, cancel2, logs2, done2)
}
