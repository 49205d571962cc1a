package kit_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/spiffekit/spiffekit/conformance/kit"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
)

// check runs the kit against addr and returns its report.
func check(t *testing.T, cfg kit.WorkloadConfig) *kit.Report {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 20 * time.Second // a loaded machine; nothing waits for it unless the endpoint is broken
	}
	r, err := kit.CheckWorkloadAPI(t.Context(), cfg)
	require.NoError(t, err)
	return r
}

// TestMutations serves the Workload API broken one rule family at a time:
// the kit must fail exactly the rule broken, and nothing when nothing is.
func TestMutations(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	for _, row := range []struct {
		name       string
		mutate     func(*mutant)
		failed     []string
		deviations []string
	}{
		{name: "none", mutate: func(*mutant) {}},
		{name: "header not required", mutate: func(m *mutant) { m.noHeaderCheck = true }, failed: []string{"WE rule 6"}},
		{name: "a CA leaf", mutate: func(m *mutant) { m.caLeaf = true }, failed: []string{"X509 rule 4"}},
		{name: "alg none", mutate: func(m *mutant) { m.algNone = true }, failed: []string{"JWT rule 3"}},
		{name: "a missing kid", mutate: func(m *mutant) { m.noKid = true }, failed: []string{"Bundle rule 16"}, deviations: []string{"JWT rule 4"}},
		{name: "a hint twice", mutate: func(m *mutant) { m.dupHint = true }, failed: []string{"WAPI rule 8"}},
	} {
		t.Run(row.name, func(t *testing.T) {
			m := newMutant(t)
			row.mutate(m)
			r := check(t, kit.WorkloadConfig{Addr: m.serve(t)})
			assert.Equal(t, row.failed, r.FailedRules(), "%s", text(t, r))
			assert.Equal(t, row.deviations, deviations(r), "%s", text(t, r))
			assert.Equal(t, kit.NotApplicable, r.Verdicts()["WAPI rule 10b"], "not told how to call unregistered")
		})
	}
}

// TestUnregisteredAddr checks WAPI rule 10b through a second socket whose
// caller is entitled to nothing, and its failure when that caller is
// served.
func TestUnregisteredAddr(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	m := newMutant(t)
	denied := newMutant(t)
	denied.deny = true
	r := check(t, kit.WorkloadConfig{Addr: m.serve(t), UnregisteredAddr: denied.serve(t)})
	assert.Empty(t, r.FailedRules(), "%s", text(t, r))
	require.Len(t, r.ByRule("WAPI rule 10b"), 3)
	assert.Equal(t, kit.Pass, r.Verdicts()["WAPI rule 10b"])
	assert.Equal(t, kit.NotApplicable, r.ByRule("WAPI rule 10b")[2].Verdict, "FetchWITSVID: no WIT profile")

	r = check(t, kit.WorkloadConfig{Addr: m.serve(t), UnregisteredAddr: newMutant(t).serve(t)})
	assert.Equal(t, kit.DeviationAllowed, r.Verdicts()["WAPI rule 10b"], "PermissionDenied is a SHOULD")

	_, err := kit.CheckWorkloadAPI(t.Context(), kit.WorkloadConfig{Addr: m.serve(t), UnregisteredAddr: "tcp://localhost:1"})
	assert.ErrorContains(t, err, "must be an IP address")
}

// TestRefusals: the kit refuses addresses it cannot read and endpoints it
// cannot identify as a Workload API, instead of reporting on them.
func TestRefusals(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	for _, addr := range []string{
		"unix://run/sock", "unix:relative.sock", "unix://", "unix:///run/wl.sock?x=1", "unix:///run/wl.sock#f",
		"unix://user@/run/wl.sock", "tcp://localhost:8000", "tcp://127.0.0.1", "tcp://127.0.0.1:8000/foo",
		"tcp://user@127.0.0.1:8000", "tcp://127.0.0.1:99999", "tcp://127.0.0.1:0", "/run/spire/agent.sock",
		"http://127.0.0.1:8000", "blah", "%zz",
	} {
		_, err := kit.CheckWorkloadAPI(t.Context(), kit.WorkloadConfig{Addr: addr})
		assert.ErrorContains(t, err, "WE rule 8", addr)
		_, err = kit.CheckUnregistered(t.Context(), kit.WorkloadConfig{Addr: addr})
		assert.Error(t, err, addr)
	}

	dir, err := os.MkdirTemp("", "kit")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })

	// Nothing listening.
	_, err = kit.CheckWorkloadAPI(t.Context(), kit.WorkloadConfig{Addr: "unix://" + filepath.Join(dir, "none.sock"), Timeout: time.Second})
	assert.ErrorContains(t, err, "cannot identify a Workload API endpoint")

	// A gRPC server of another service.
	lis, err := net.Listen("unix", filepath.Join(dir, "health.sock"))
	require.NoError(t, err)
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	_, err = kit.CheckWorkloadAPI(t.Context(), kit.WorkloadConfig{Addr: "unix://" + lis.Addr().String()})
	assert.ErrorContains(t, err, "Unimplemented")
	assert.ErrorContains(t, err, "refusing")

	// An HTTP/1 server on TCP.
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hs := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: time.Second}
	go func() { _ = hs.Serve(tcp) }()
	defer hs.Close()
	_, err = kit.CheckWorkloadAPI(t.Context(), kit.WorkloadConfig{Addr: "tcp://" + tcp.Addr().String(), Timeout: 2 * time.Second})
	assert.ErrorContains(t, err, "refusing")

	// A server that accepts and never answers: the timeout ends it.
	quietLis, err := net.Listen("unix", filepath.Join(dir, "quiet.sock"))
	require.NoError(t, err)
	defer quietLis.Close()
	go func() {
		for {
			c, err := quietLis.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err = kit.CheckWorkloadAPI(ctx, kit.WorkloadConfig{Addr: "unix://" + quietLis.Addr().String(), Timeout: 500 * time.Millisecond})
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "DeadlineExceeded") || strings.Contains(err.Error(), "Unavailable"), err.Error())
}
