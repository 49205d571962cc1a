package endpoint_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/calltest"
	"github.com/spiffekit/spiffekit/internal/testing/component"
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
		component.Unavailable(t, "uids", "starts callers under other uids, which needs root; TestRateLimitKeysTCPCallersByAddress tests the same over TCP")
	}
	t.Cleanup(leaktest.Check(t))
	const flooderUID, otherUID, calls = 4242, 4343, endpoint.DefaultBurst

	// The callers are this test binary, copied where the other uids can
	// run it, next to a socket they can reach.
	dir, err := os.MkdirTemp("", "ratelimit")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	bin := calltest.Binary(t, dir)

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

			var flooder *calltest.Proc
			if sc.flood {
				flooder = calltest.Start(t, bin, flooderUID, "flood", "unix://"+sock, 8)
				flooder.WaitReady(t)
			}
			other := calltest.Start(t, bin, otherUID, "fetch", "unix://"+sock, calls)
			got := other.Wait(t)
			assert.Equal(t, map[string]int{"OK": calls}, got.Codes, "every call of the other uid is served")
			t.Logf("uid %d, %d calls: p50 %v, p99 %v, max %v", otherUID, calls,
				calltest.Quantile(got.Latencies, 0.5), calltest.Quantile(got.Latencies, 0.99), calltest.Quantile(got.Latencies, 1))
			if flooder == nil {
				return
			}
			flooder.Stop()
			flood := flooder.Wait(t)
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
