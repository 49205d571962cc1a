package nodeapi_test

import (
	"context"
	"crypto/x509"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

var renewingID = spiffeid.RequireFromPath(td, "/spiffekit/agent/echo/node1")

// renewingAgent is an agent's SVID source whose SVID the test renews.
type renewingAgent struct{ cur atomic.Pointer[x509svid.SVID] }

func (a *renewingAgent) GetX509SVID() (*x509svid.SVID, error) { return a.cur.Load(), nil }

// renew gives the agent a new SVID of f's CA, and returns its leaf.
func (a *renewingAgent) renew(t *testing.T, f *fakeServer) *x509.Certificate {
	t.Helper()
	key := newKey(t)
	leaf := leafFor(t, f.root, renewingID, key.Public())
	a.cur.Store(&x509svid.SVID{ID: renewingID, Certificates: []*x509.Certificate{leaf}, PrivateKey: key})
	return leaf
}

// holdSigning has f hold every SignX509SVIDs call until the test ends or
// the returned function is called, telling entered of each, and then
// answer each request with an error result.
func holdSigning(t *testing.T, f *fakeServer) (entered <-chan struct{}, release func()) {
	in := make(chan struct{}, 16)
	held := make(chan struct{})
	release = sync.OnceFunc(func() { close(held) })
	t.Cleanup(release) // before the fake stops: registered after it started
	f.signed = func(req *nodepb.SignX509SVIDsRequest) *nodepb.SignX509SVIDsResponse {
		in <- struct{}{}
		<-held
		resp := &nodepb.SignX509SVIDsResponse{}
		for range req.Requests {
			resp.Results = append(resp.Results, &nodepb.X509SVIDResult{Error: "held"})
		}
		return resp
	}
	return in, release
}

func oneRequest(t *testing.T) []nodeapi.X509SVIDRequest {
	t.Helper()
	csr, err := nodeapi.NewCSR(newKey(t), spiffeid.ID{})
	require.NoError(t, err)
	return []nodeapi.X509SVIDRequest{{EntryID: "a", CSR: csr}}
}

// signAsync makes a SignX509SVIDs call of one request and returns where
// its error arrives.
func signAsync(ctx context.Context, t *testing.T, c *nodeapi.Client) <-chan error {
	reqs := oneRequest(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.SignX509SVIDs(ctx, reqs)
		done <- err
	}()
	return done
}

func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("waited in vain for %s", what)
		var zero T
		return zero
	}
}

// Property: Reconnect moves new calls and the entry stream to a new
// connection, which presents the SVID the source returns now; a call in
// flight on the old connection is answered there, and the old connection
// is closed once it is.
func TestReconnectLetsCallsInFlightFinish(t *testing.T) {
	f := &fakeServer{open: true, updates: []*nodepb.SyncResponse{{}}, peers: make(chan *x509.Certificate, 16)}
	startFake(t, f, nodeapi.ServerPath)
	entered, release := holdSigning(t, f)
	src := &renewingAgent{}
	first := src.renew(t, f)
	c, err := nodeapi.Dial(f.clientConfig(), src)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	// The entry stream is open, and a signing call in flight.
	updates := make(chan struct{}, 16)
	openStream := func() <-chan error {
		done := make(chan error, 1)
		go func() {
			done <- c.Sync(ctx, nil, func(nodeapi.Update) error { updates <- struct{}{}; return nil })
		}()
		return done
	}
	synced := openStream()
	wait(t, updates, "the first update")
	assert.Equal(t, first.SerialNumber, wait(t, f.peers, "the stream's peer").SerialNumber)
	signed := signAsync(ctx, t, c)
	wait(t, entered, "the signing call")
	assert.Equal(t, first.SerialNumber, wait(t, f.peers, "the call's peer").SerialNumber)
	require.Equal(t, int64(1), f.conns.Load())

	// The agent renews, and moves to a new connection.
	second := src.renew(t, f)
	require.NoError(t, c.Reconnect(nil, time.Minute))

	// The entry stream ends at once, saying why; opened again, it goes
	// over the new connection, with the new SVID.
	err = wait(t, synced, "the entry stream's end")
	require.ErrorIs(t, err, nodeapi.ErrReconnected)
	assert.False(t, nodeapi.IsRefused(err))
	synced = openStream()
	wait(t, updates, "the first update over the new connection")
	assert.Equal(t, second.SerialNumber, wait(t, f.peers, "the new stream's peer").SerialNumber)
	assert.Equal(t, int64(2), f.conns.Load(), "the old connection stays open while a call is in flight")

	// The call in flight is answered over the old connection, which then
	// closes.
	release()
	require.NoError(t, wait(t, signed, "the signing call's answer"))
	require.Eventually(t, func() bool { return f.conns.Load() == 1 }, 20*time.Second, 10*time.Millisecond,
		"the old connection was not closed once its call was answered")

	// New calls go over the new connection.
	_, err = c.SignX509SVIDs(ctx, oneRequest(t))
	require.NoError(t, err)
	assert.Equal(t, second.SerialNumber, wait(t, f.peers, "the new call's peer").SerialNumber)

	// Close ends the stream, not as a move.
	require.NoError(t, c.Close())
	err = wait(t, synced, "the entry stream's end")
	assert.NotErrorIs(t, err, nodeapi.ErrReconnected)
	assert.Equal(t, codes.Canceled, status.Code(err))
}

// Property: the old connection is closed, failing the calls still in
// flight on it, once the drain bound passes (with a warning), at once
// without one, and when the client is closed.
func TestReconnectBoundsTheDrain(t *testing.T) {
	for _, tt := range []struct {
		name  string
		drain time.Duration
		close bool // the client is closed while the call is in flight
		warns bool
	}{
		{"bound passed", time.Millisecond, false, true},
		{"no drain", 0, false, false},
		{"closed while draining", time.Hour, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeServer{}
			startFake(t, f, nodeapi.ServerPath)
			entered, _ := holdSigning(t, f)
			src := &renewingAgent{}
			src.renew(t, f)
			logs := &logtest.Buffer{}
			cfg := f.clientConfig()
			cfg.Logger = logs.Logger()
			c, err := nodeapi.Dial(cfg, src)
			require.NoError(t, err)
			t.Cleanup(func() { c.Close() })
			signed := signAsync(t.Context(), t, c)
			wait(t, entered, "the signing call")

			require.NoError(t, c.Reconnect(nil, tt.drain))
			if tt.close {
				require.NoError(t, c.Close())
			}
			err = wait(t, signed, "the signing call's end")
			assert.Equal(t, codes.Canceled, status.Code(err), "%v", err)
			assert.Equal(t, tt.warns, logs.Contains("closing an old connection to the servers with calls still in flight"), logs.String())
		})
	}
}

// Property: Reconnect may name the servers to try, in order; the servers
// named before are not tried again.
func TestReconnectToOtherServers(t *testing.T) {
	f := &fakeServer{signed: func(*nodepb.SignX509SVIDsRequest) *nodepb.SignX509SVIDsResponse {
		return &nodepb.SignX509SVIDsResponse{Results: []*nodepb.X509SVIDResult{{Error: "fine"}}}
	}}
	startFake(t, f, nodeapi.ServerPath)
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, gone.Close())
	src := &renewingAgent{}
	src.renew(t, f)
	cfg := f.clientConfig()
	cfg.Servers = []string{gone.Addr().String()}
	c, err := nodeapi.Dial(cfg, src)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_, err = c.SignX509SVIDs(t.Context(), oneRequest(t))
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)

	require.NoError(t, c.Reconnect([]string{f.addr}, time.Minute))
	_, err = c.SignX509SVIDs(t.Context(), oneRequest(t))
	require.NoError(t, err)
	// The same servers again.
	require.NoError(t, c.Reconnect(nil, time.Minute))
	_, err = c.SignX509SVIDs(t.Context(), oneRequest(t))
	require.NoError(t, err)
}

// Property: a closed client fails every call, and Reconnect, without
// reaching a server; Close may be called again.
func TestClosedClientFailsCalls(t *testing.T) {
	f := &fakeServer{}
	startFake(t, f, nodeapi.ServerPath)
	src := &renewingAgent{}
	src.renew(t, f)
	c, err := nodeapi.Dial(f.clientConfig(), src)
	require.NoError(t, err)
	require.NoError(t, c.Close())
	require.NoError(t, c.Close())

	ctx := t.Context()
	_, err = c.RenewAgent(ctx, newKey(t))
	assert.Equal(t, codes.Canceled, status.Code(err), "%v", err)
	_, err = c.SignX509SVIDs(ctx, oneRequest(t))
	assert.Equal(t, codes.Canceled, status.Code(err), "%v", err)
	_, err = c.SignJWTSVID(ctx, "a", []string{"x"})
	assert.Equal(t, codes.Canceled, status.Code(err), "%v", err)
	_, err = c.SignWITSVID(ctx, "a", newKey(t).Public(), "")
	assert.Equal(t, codes.Canceled, status.Code(err), "%v", err)
	err = c.Sync(ctx, nil, func(nodeapi.Update) error { return nil })
	assert.Equal(t, codes.Canceled, status.Code(err), "%v", err)
	err = c.Reconnect(nil, time.Minute)
	assert.ErrorContains(t, err, "nodeapi: reconnecting: Canceled: the client is closed")
}
