package nodeserver_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// recorder is a nodeserver.Observer that sends what it is told on lines, one
// line per call: "rpc Attest OK", "attested echo ok", "signed agent ok".
type recorder struct{ lines chan string }

func newRecorder() *recorder { return &recorder{lines: make(chan string, 100)} }

func (r *recorder) RPC(method string, code codes.Code, d time.Duration) {
	if d < 0 {
		panic("negative duration")
	}
	r.lines <- fmt.Sprintf("rpc %s %s", method, code)
}

func (r *recorder) NodeAttested(attestor, outcome string) {
	r.lines <- fmt.Sprintf("attested %s %s", attestor, outcome)
}

func (r *recorder) Signed(svidType string, d time.Duration, err error) {
	if d < 0 {
		panic("negative duration")
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	r.lines <- fmt.Sprintf("signed %s %s", svidType, outcome)
}

// await returns the next n lines.
func (r *recorder) await(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	for range n {
		select {
		case l := <-r.lines:
			got = append(got, l)
		case <-time.After(10 * time.Second):
			t.Fatalf("got %q, want %d lines", got, n)
		}
	}
	return got
}

// none checks that nothing more was observed.
func (r *recorder) none(t *testing.T) {
	t.Helper()
	select {
	case l := <-r.lines:
		t.Fatalf("observed %q", l)
	default:
	}
}

// brokenAttestor is a node attestor that cannot decide: its store is
// down.
type brokenAttestor struct{}

func (brokenAttestor) Type() string { return "broken" }
func (brokenAttestor) Attest(context.Context, spiffeid.TrustDomain, []byte, attest.Challenger) (attest.NodeResult, error) {
	return attest.NodeResult{}, errors.New("token store unreachable")
}

type brokenClient struct{ echoClient }

func (brokenClient) Type() string { return "broken" }

// TestObserverAttestation: each node attestation is observed with its
// attestor and outcome, the agent SVID's signing and the call's code;
// an attestor type the agent made up is not a label.
func TestObserverAttestation(t *testing.T) {
	rec := newRecorder()
	e := newEnv(t, func(c *nodeserver.Config) {
		c.Observer = rec
		c.Attestors = append(c.Attestors, brokenAttestor{})
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	_, err := nodeapi.Attest(ctx, e.clientConfig(), echoClient{"node1"}, newKey(t))
	require.NoError(t, err)
	assert.Equal(t, []string{"signed agent ok", "attested echo ok", "rpc Attest OK"}, rec.await(t, 3))

	_, err = nodeapi.Attest(ctx, e.clientConfig(), echoClient{"bad"}, newKey(t))
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	assert.Equal(t, []string{"attested echo refused", "rpc Attest PermissionDenied"}, rec.await(t, 2))

	_, err = nodeapi.Attest(ctx, e.clientConfig(), brokenClient{}, newKey(t))
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	assert.Equal(t, []string{"attested broken error", "rpc Attest Unavailable"}, rec.await(t, 2))

	_, err = nodeapi.Attest(ctx, e.clientConfig(), otherType{}, newKey(t))
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	assert.Equal(t, []string{"rpc Attest InvalidArgument"}, rec.await(t, 1))

	// Attesting again where the agent's record does not allow it is a
	// refusal, not an error.
	id := spiffeid.RequireFromPath(td, "/spiffekit/agent/echo/node1")
	a, err := e.store.GetAgent(t.Context(), id)
	require.NoError(t, err)
	a.CanReattest = false
	_, err = e.store.PutAgent(t.Context(), a)
	require.NoError(t, err)
	_, err = nodeapi.Attest(ctx, e.clientConfig(), echoClient{"node1"}, newKey(t))
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	assert.Equal(t, []string{"attested echo refused", "rpc Attest PermissionDenied"}, rec.await(t, 2))
	rec.none(t)
}

// TestObserverSigningAndRPCs: the SVIDs signed for an agent's entries are
// observed by type; requests refused before the CA are not signings, but
// their calls are observed with their codes.
func TestObserverSigningAndRPCs(t *testing.T) {
	rec := newRecorder()
	e := newEnv(t, func(c *nodeserver.Config) { c.Observer = rec })
	a := e.attest(t, "node1")
	rec.await(t, 3) // the attestation
	mine := e.entry(t, a.svid.ID, "/web")

	csr, err := nodeapi.NewCSR(newKey(t), mine.SPIFFEID)
	require.NoError(t, err)
	res, err := a.client.SignX509SVIDs(t.Context(), []nodeapi.X509SVIDRequest{{EntryID: mine.ID, CSR: csr}})
	require.NoError(t, err)
	require.NoError(t, res[0].Err)
	assert.Equal(t, []string{"signed x509 ok", "rpc SignX509SVIDs OK"}, rec.await(t, 2))

	res, err = a.client.SignX509SVIDs(t.Context(), []nodeapi.X509SVIDRequest{{EntryID: "not-mine", CSR: csr}})
	require.NoError(t, err)
	require.EqualError(t, res[0].Err, "nodeapi: entry not-mine: the entry is not authorized for this agent")
	assert.Equal(t, []string{"rpc SignX509SVIDs OK"}, rec.await(t, 1), "one refused request in a batch that succeeded")

	_, err = a.client.SignJWTSVID(t.Context(), mine.ID, []string{"db"})
	require.NoError(t, err)
	assert.Equal(t, []string{"signed jwt ok", "rpc SignJWTSVID OK"}, rec.await(t, 2))

	_, err = a.client.SignJWTSVID(t.Context(), "not-mine", []string{"db"})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	assert.Equal(t, []string{"rpc SignJWTSVID PermissionDenied"}, rec.await(t, 1))

	_, err = a.client.RenewAgent(t.Context(), newKey(t))
	require.NoError(t, err)
	assert.Equal(t, []string{"signed agent ok", "rpc RenewAgent OK"}, rec.await(t, 2))
	rec.none(t)
}

// TestObserverSyncAndStats: an open entry stream counts in Stats, and is
// observed when it ends.
func TestObserverSyncAndStats(t *testing.T) {
	rec := newRecorder()
	e := newEnv(t, func(c *nodeserver.Config) { c.Observer = rec })
	assert.Equal(t, nodeserver.Stats{}, e.srv.Stats())
	a := e.attest(t, "node1")
	rec.await(t, 3)
	e.entry(t, a.svid.ID, "/web")
	e.entry(t, a.svid.ID, "/db")

	updates := make(chan nodeapi.Update, 16)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- a.client.Sync(ctx, nil, func(u nodeapi.Update) error { updates <- u; return nil })
	}()
	next(t, updates)
	assert.Equal(t, nodeserver.Stats{Entries: 2, Agents: 1, Streams: 1}, e.srv.Stats())
	cancel()
	<-done
	assert.Equal(t, []string{"rpc Sync Canceled"}, rec.await(t, 1))
	assert.Equal(t, nodeserver.Stats{Entries: 2, Agents: 1, Streams: 0}, e.srv.Stats())
}
