package endpoint_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// TestRateLimitKeepsOtherUIDsServed runs two real caller processes under
// two uids: one floods FetchJWTSVID from 8 goroutines, the other makes
// DefaultBurst calls (FetchJWTSVID, and FetchX509SVID streams opened until
// their first response) one after the other. With the default limit the
// flooder is refused and the other caller is served every time: its calls
// are within its own burst, whatever the timing. The other caller's latencies are
// reported (p50, p99, max) alone, under the flood without a limit, and
// under the flood with the limit; they are not asserted on.
func TestRateLimitKeepsOtherUIDsServed(t *testing.T) {
	if os.Geteuid() != 0 {
		why := "starts callers under other uids, which needs root; TestRateLimitKeysTCPCallersByAddress tests the same over TCP"
		if slices.Contains(strings.Split(os.Getenv("SPIFFEKIT_TEST_REQUIRE"), ","), "uids") {
			t.Fatalf("required ($SPIFFEKIT_TEST_REQUIRE names uids), but cannot run here: %s", why)
		}
		t.Skip(why)
	}
	t.Cleanup(leaktest.Check(t))
	const flooderUID, otherUID, calls = 4242, 4343, endpoint.DefaultBurst

	// The callers are this test binary, copied where the other uids can
	// run it, next to a socket they can reach.
	dir, err := os.MkdirTemp("", "ratelimit")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	self, err := os.Executable()
	require.NoError(t, err)
	bin := filepath.Join(dir, "caller")
	copyFile(t, self, bin)

	f := newFixture(t)
	for _, uid := range []int{flooderUID, otherUID} {
		require.NoError(t, f.handler.Set(strconv.Itoa(uid), f.snapshot(f.svid(t, webID, ""))))
	}
	for i, sc := range []struct {
		name  string
		limit *endpoint.RateLimit
		flood bool
	}{
		{"alone", &endpoint.RateLimit{}, false},
		{"flooded without a limit", nil, true},
		{"flooded with the default limit", &endpoint.RateLimit{}, true},
	} {
		t.Run(sc.name, func(t *testing.T) {
			srv, err := endpoint.New(endpoint.Config{Handler: f.handler, RateLimit: sc.limit})
			require.NoError(t, err)
			sock := filepath.Join(dir, "api"+strconv.Itoa(i)+".sock")
			lis, err := endpoint.ListenUnix(sock, 0o777)
			require.NoError(t, err)
			ctx, stop := context.WithCancel(t.Context())
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ctx, lis) }()
			defer func() {
				stop()
				require.NoError(t, <-served)
			}()

			var flooder *callerProc
			if sc.flood {
				flooder = startCaller(t, bin, flooderUID, "flood", "unix://"+sock, 8)
				flooder.waitReady(t)
			}
			other := startCaller(t, bin, otherUID, "fetch", "unix://"+sock, calls)
			got := other.wait(t)
			assert.Equal(t, map[string]int{"OK": calls}, got.Codes, "every call of the other uid is served")
			t.Logf("uid %d, %d calls: p50 %v, p99 %v, max %v", otherUID, calls,
				quantile(got.Latencies, 0.5), quantile(got.Latencies, 0.99), quantile(got.Latencies, 1))
			if flooder == nil {
				return
			}
			flooder.stdin.Close()
			flood := flooder.wait(t)
			t.Logf("uid %d flood: %v", flooderUID, flood.Codes)
			assert.Positive(t, flood.Codes["OK"], "the flooder is served within its limit")
			if sc.limit == nil {
				assert.Zero(t, flood.Codes["ResourceExhausted"])
			} else {
				assert.Positive(t, flood.Codes["ResourceExhausted"], "the flooder is refused")
			}
			delete(flood.Codes, "OK")
			delete(flood.Codes, "ResourceExhausted")
			assert.Empty(t, flood.Codes, "no other answer")
		})
	}
}

// callerProc is a running caller process (see runCaller).
type callerProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr strings.Builder
}

func startCaller(t *testing.T, bin string, uid int, role, addr string, n int) *callerProc {
	t.Helper()
	p := &callerProc{cmd: exec.Command(bin, addr, strconv.Itoa(n))}
	p.cmd.Env = append(os.Environ(), childEnv+"="+role)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	p.cmd.Stderr = &p.stderr
	var err error
	p.stdin, err = p.cmd.StdinPipe()
	require.NoError(t, err)
	out, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	p.stdout = bufio.NewReader(out)
	require.NoError(t, p.cmd.Start())
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	return p
}

// waitReady waits for the caller's "ready" line.
func (p *callerProc) waitReady(t *testing.T) {
	t.Helper()
	line, err := p.stdout.ReadString('\n')
	require.NoError(t, err, "caller: %s", p.stderr.String())
	require.Equal(t, "ready\n", line)
}

// wait waits for the caller to exit and returns its report.
func (p *callerProc) wait(t *testing.T) callerReport {
	t.Helper()
	var rep callerReport
	require.NoError(t, json.NewDecoder(p.stdout).Decode(&rep), "caller: %s", p.stderr.String())
	require.NoError(t, p.cmd.Wait(), "caller: %s", p.stderr.String())
	return rep
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	require.NoError(t, err)
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
}
