package sds_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint/sds"
)

// recorder is an endpoint.Observer that records what it is told.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) Answered(method string, code codes.Code, _ time.Duration) {
	r.add(fmt.Sprintf("answered %s %s", method, code))
}
func (r *recorder) StreamOpened(method string) { r.add("opened " + method) }
func (r *recorder) StreamClosed(method string, code codes.Code) {
	r.add(fmt.Sprintf("closed %s %s", method, code))
}

func (r *recorder) has(events ...string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Equal(r.events, events)
}

// TestObserver: every SDS call is told to the Observer as Workload API
// calls are; a stream is answered at its first response only.
func TestObserver(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	f := newFixture(t)
	f.set(t, f.svid(t, webID))
	var rec recorder
	client := f.serve(t, sds.Config{Observer: &rec}, endpoint.Config{})
	wait := func(events ...string) {
		t.Helper()
		require.Eventually(t, func() bool { return rec.has(events...) }, time.Minute, 2*time.Millisecond, "never told %q", events)
		rec.mu.Lock()
		rec.events = nil
		rec.mu.Unlock()
	}

	_, err := fetch(t, client, nil, "default")
	require.NoError(t, err)
	_, err = fetch(t, client, nil, "nothing")
	requireCode(t, codes.InvalidArgument, err)
	wait("answered FetchSecrets OK", "answered FetchSecrets InvalidArgument")

	ctx, cancel := context.WithCancel(testCtx(t))
	s, err := client.StreamSecrets(ctx)
	require.NoError(t, err)
	send(t, s, &discoveryv3.DiscoveryRequest{ResourceNames: []string{"default"}})
	recv(t, s)
	f.set(t, f.svid(t, webID))
	recv(t, s)
	cancel()
	wait("opened StreamSecrets", "answered StreamSecrets OK", "closed StreamSecrets OK")

	d := openDelta(t, client)
	sendDelta(t, d, &discoveryv3.DeltaDiscoveryRequest{ResourceNamesSubscribe: []string{"ALL"}}) // no validator
	_, err = d.Recv()
	requireCode(t, codes.InvalidArgument, err)
	wait("opened DeltaSecrets", "answered DeltaSecrets InvalidArgument", "closed DeltaSecrets InvalidArgument")
}
