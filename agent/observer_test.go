package agent_test

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/attest/unix"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// observed is an issuer.Observer and an endpoint.Observer that counts
// what it is told by line: "signed x509 ok", "attested ok", "answered
// FetchX509SVID OK".
type observed struct {
	mu     sync.Mutex
	counts map[string]int
}

func (o *observed) add(l string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.counts == nil {
		o.counts = map[string]int{}
	}
	o.counts[l]++
}

func (o *observed) count(l string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.counts[l]
}

func (o *observed) snapshot() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.counts)
}

func (o *observed) Signed(svidType string, n, failed int, _ time.Duration) {
	o.add(fmt.Sprintf("signed %s %d/%d", svidType, n-failed, n))
}
func (o *observed) WorkloadAttested(outcome string, _ time.Duration) { o.add("attested " + outcome) }
func (o *observed) Answered(method string, code codes.Code, _ time.Duration) {
	o.add(fmt.Sprintf("answered %s %s", method, code))
}
func (o *observed) StreamOpened(method string)               { o.add("opened " + method) }
func (o *observed) StreamClosed(method string, _ codes.Code) { o.add("closed " + method) }

// TestObservers: the agent hands Config.IssuerObserver and
// Config.APIObserver to its issuer and its Workload API server.
func TestObservers(t *testing.T) {
	s := startServer(t, memstore.New(memstore.Config{}), "127.0.0.1:0")
	wa, err := unix.New(unix.Config{SkipHash: true})
	require.NoError(t, err)
	lis, err := endpoint.ListenUnix(socketPath(t), 0o700)
	require.NoError(t, err)
	obs := &observed{}
	a, err := agent.New(t.Context(), agent.Config{
		TrustDomain:       td,
		Servers:           []string{s.addr},
		TrustBundle:       s.ca.Bundle().X509Bundle(),
		NodeAttestor:      jointoken.NewClient(s.token(t)),
		WorkloadAttestors: []attest.WorkloadAttestor{wa},
		Listener:          lis,
		IssuerObserver:    obs,
		APIObserver:       obs,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, a.Close())
	})
	select {
	case <-a.Attested():
	case <-time.After(20 * time.Second):
		t.Fatal("the agent did not attest within 20s")
	}
	web := s.entry(t, a.ID(), "/web")
	require.Eventually(t, func() bool { return a.Stats().Entries == 1 }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, web.SPIFFEID, fetchID(t, "unix://"+lis.Addr().String()))

	assert.GreaterOrEqual(t, obs.count("signed x509 1/1"), 1, "%v", obs.snapshot())
	assert.Equal(t, 1, obs.count("attested ok"), "%v", obs.snapshot())
	assert.Equal(t, 1, obs.count("opened FetchX509SVID"), "%v", obs.snapshot())
	assert.Equal(t, 1, obs.count("answered FetchX509SVID OK"), "%v", obs.snapshot())
}
