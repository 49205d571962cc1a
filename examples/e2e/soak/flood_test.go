package soak_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/spiffekit/spiffekit/internal/testing/calltest"
	"github.com/spiffekit/spiffekit/internal/testing/component"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// dialCaller gives the calls of a caller process (see calltest), a
// workload of the agent at addr: the flood opens FetchX509SVID streams
// (until their first response) and fetches JWT-SVIDs for a new audience
// each time, in turn, and is ready after 200 calls; a fetch run makes the
// same calls in turn, with audience "db".
func dialCaller(ctx context.Context, addr string) (calltest.Calls, func(), error) {
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(addr))
	if err != nil {
		return calltest.Calls{}, nil, err
	}
	call := func(ctx context.Context, i int, audience string) error {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if i%2 == 0 {
			_, err := client.FetchX509SVID(ctx)
			return err
		}
		_, err := client.FetchJWTSVID(ctx, jwtsvid.Params{Audience: audience})
		return err
	}
	return calltest.Calls{
		Flood: func(ctx context.Context, w, i int) error {
			return call(ctx, i, fmt.Sprintf("flood-%d-%d", w, i))
		},
		ReadyAfter: 200,
		Fetch:      func(ctx context.Context, i int) error { return call(ctx, i, "db") },
	}, func() { client.Close() }, nil
}

var agentStarted = regexp.MustCompile(`msg="agent started" agent=(spiffe://\S+)`)

// TestFlood runs spiffe-agent as it is configured by default (executables
// hashed at every attestation) and two workloads under two uids, as real
// processes: one floods the agent from 8 goroutines with FetchX509SVID
// streams and JWT-SVIDs for ever new audiences, each of which the agent
// must attest (and the JWT-SVIDs, have signed by the server); the other
// makes half of endpoint.DefaultBurst calls one after the other. With the
// agent's default rate limit the flooder is refused and every call of the
// other workload is served: its calls are within its burst whatever their
// timing, even after the polls that waited for its entry took a few tokens
// from its bucket (a full burst did not always fit: 99 of 100 were served
// in one run). The other
// workload's latencies are logged alone, flooded with the default limit,
// and, with SPIFFEKIT_SOAK=long, flooded without a limit; they are not
// asserted on.
func TestFlood(t *testing.T) {
	if os.Geteuid() != 0 {
		component.Unavailable(t, "uids", "runs workloads under other uids, which needs root; workloadapi/endpoint's TestRateLimitKeysTCPCallersByAddress tests the limit without")
	}
	t.Cleanup(leaktest.Check(t))
	const flooderUID, otherUID, calls = 4242, 4343, endpoint.DefaultBurst / 2
	e := progtest.NewEnv(t)
	e.StartServer()
	bin := calltest.Binary(t, e.Dir)

	scenarios := []struct {
		name  string
		args  []string
		flood bool
	}{
		{"alone", nil, false},
		{"flooded with the default limit", nil, true},
	}
	if long(t) {
		scenarios = append(scenarios, struct {
			name  string
			args  []string
			flood bool
		}{"flooded without a limit", []string{"-ratelimit-rate", "0"}, true})
	}
	for i, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			sock := filepath.Join(e.Dir, "api"+strconv.Itoa(i)+".sock")
			agent := progtest.Start(t, e.AgentBin, append([]string{"run", "-trust-domain", "example.org", "-trust-bundle", e.BundleFile,
				"-join-token", e.Token(), "-server", e.Bind, "-socket", sock,
				"-data-dir", filepath.Join(e.Dir, "agent-data"+strconv.Itoa(i))}, sc.args...)...)
			var id string
			progtest.WaitFor(t, "the agent to start", func() bool {
				m := agentStarted.FindStringSubmatch(agent.Output())
				if m != nil {
					id = m[1]
				}
				return m != nil
			}, agent)
			for _, uid := range []int{flooderUID, otherUID} {
				e.Entry(id, "spiffe://example.org/uid"+strconv.Itoa(uid), "unix:uid:"+strconv.Itoa(uid))
			}
			addr := "unix://" + sock
			// The entries reach the agent: the other workload is served.
			progtest.WaitFor(t, "the workload's SVID", func() bool {
				p := calltest.Start(t, bin, otherUID, "fetch", addr, 1)
				return p.Wait(t).Codes["OK"] == 1
			}, agent)

			var flooder *calltest.Proc
			if sc.flood {
				flooder = calltest.Start(t, bin, flooderUID, "flood", addr, 8)
				flooder.WaitReady(t)
			}
			got := calltest.Start(t, bin, otherUID, "fetch", addr, calls).Wait(t)
			assert.Equal(t, map[string]int{"OK": calls}, got.Codes, "every call of the other workload is served")
			t.Logf("uid %d, %d calls: p50 %v, p99 %v, max %v", otherUID, calls,
				calltest.Quantile(got.Latencies, 0.5), calltest.Quantile(got.Latencies, 0.99), calltest.Quantile(got.Latencies, 1))
			if flooder == nil {
				return
			}
			flooder.Stop()
			flood := flooder.Wait(t)
			t.Logf("uid %d flood: %v", flooderUID, flood.Codes)
			assert.Positive(t, flood.Codes["OK"], "the flooder is served within its limit")
			if sc.args == nil {
				assert.Positive(t, flood.Codes["ResourceExhausted"], "the flooder is refused")
			}
		})
	}
}
