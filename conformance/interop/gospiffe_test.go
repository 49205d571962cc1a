package interop

import (
	"context"
	"fmt"
	"testing"
	"time"

	gsjwtbundle "github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	gsid "github.com/spiffe/go-spiffe/v2/spiffeid"
	gsworkloadapi "github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/conformance/internal/workloadtest"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// fastBackoff retries after 10 ms, so tests of retries take milliseconds
// rather than go-spiffe's default of one second and more.
type fastBackoff struct{}

func (fastBackoff) NewBackoff() gsworkloadapi.Backoff { return fastBackoff{} }
func (fastBackoff) Next() time.Duration               { return 10 * time.Millisecond }
func (fastBackoff) Reset()                            {}

// gsClient returns a go-spiffe client of addr that retries quickly.
func gsClient(t *testing.T, addr string) *gsworkloadapi.Client {
	t.Helper()
	c, err := gsworkloadapi.New(t.Context(), gsworkloadapi.WithAddr(addr), gsworkloadapi.WithBackoffStrategy(fastBackoff{}))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// x509Watcher forwards go-spiffe's X.509 context updates and errors.
type x509Watcher struct {
	updates chan *gsworkloadapi.X509Context
	errs    chan error
}

func newX509Watcher() *x509Watcher {
	return &x509Watcher{updates: make(chan *gsworkloadapi.X509Context, 16), errs: make(chan error, 16)}
}

func (w *x509Watcher) OnX509ContextUpdate(c *gsworkloadapi.X509Context) { w.updates <- c }

func (w *x509Watcher) OnX509ContextWatchError(err error) {
	select {
	case w.errs <- err:
	default: // retries may report more errors than the test reads
	}
}

// jwtWatcher forwards go-spiffe's JWT bundle updates.
type jwtWatcher struct{ updates chan *gsjwtbundle.Set }

func (w jwtWatcher) OnJWTBundlesUpdate(s *gsjwtbundle.Set) { w.updates <- s }
func (w jwtWatcher) OnJWTBundlesWatchError(error)          {}

// watch runs fn in a goroutine until the test ends.
func watch(t *testing.T, fn func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// TestGoSPIFFEWatchX509ContextRotation: a rotation pushed through the
// server reaches go-spiffe's watcher as a complete new context (WAPI rule 4).
func TestGoSPIFFEWatchX509ContextRotation(t *testing.T) {
	f := workloadtest.New(t)
	first := f.SVID(t, workloadtest.WebID, "")
	require.NoError(t, f.Handler.Set(f.UID, f.Snapshot(first)))
	srv := workloadtest.Serve(t, endpoint.Config{Handler: f.Handler})
	client := gsClient(t, srv.Addr)
	w := newX509Watcher()
	watch(t, func(ctx context.Context) error { return client.WatchX509Context(ctx, w) })

	got, err := workloadtest.Recv(w.updates, timeout)
	require.NoError(t, err)
	require.Len(t, got.SVIDs, 1)
	assert.True(t, got.SVIDs[0].Certificates[0].Equal(first.Certificates[0]))

	second, third := f.SVID(t, workloadtest.WebID, "a"), f.SVID(t, workloadtest.DBID, "b")
	require.NoError(t, f.Handler.Set(f.UID, f.Snapshot(second, third)))
	got, err = workloadtest.Recv(w.updates, timeout)
	require.NoError(t, err)
	require.Len(t, got.SVIDs, 2)
	assert.True(t, got.SVIDs[0].Certificates[0].Equal(second.Certificates[0]))
	assert.Equal(t, gsid.RequireFromString("spiffe://example.org/db"), got.SVIDs[1].ID)
	assert.Equal(t, 2, got.Bundles.Len())

	// A view identical to the last one sent is not sent again (E5).
	require.NoError(t, f.Handler.Set(f.UID, f.Snapshot(second, third)))
	fourth := f.SVID(t, workloadtest.WebID, "")
	require.NoError(t, f.Handler.Set(f.UID, f.Snapshot(fourth)))
	got, err = workloadtest.Recv(w.updates, timeout)
	require.NoError(t, err)
	assert.True(t, got.SVIDs[0].Certificates[0].Equal(fourth.Certificates[0]), "the unchanged view was suppressed")
}

// TestGoSPIFFEWatchJWTBundles: a JWT key added to the bundle reaches
// go-spiffe's watcher.
func TestGoSPIFFEWatchJWTBundles(t *testing.T) {
	f := workloadtest.New(t)
	require.NoError(t, f.Handler.Set(f.UID, f.Snapshot(f.SVID(t, workloadtest.WebID, ""))))
	srv := workloadtest.Serve(t, endpoint.Config{Handler: f.Handler})
	client := gsClient(t, srv.Addr)
	w := jwtWatcher{updates: make(chan *gsjwtbundle.Set, 16)}
	watch(t, func(ctx context.Context) error { return client.WatchJWTBundles(ctx, w) })

	got, err := workloadtest.Recv(w.updates, timeout)
	require.NoError(t, err)
	own, err := got.GetJWTBundleForTrustDomain(gsid.RequireTrustDomainFromString("example.org"))
	require.NoError(t, err)
	assert.Len(t, own.JWTAuthorities(), 1)

	next, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: workloadtest.NewKey(t), TrustDomain: workloadtest.TD})
	require.NoError(t, err)
	rotated := f.Own.Clone()
	require.NoError(t, rotated.AddJWTAuthority(next.KeyID(), next.PublicKey()))
	snap := f.Snapshot(f.SVID(t, workloadtest.WebID, ""))
	snap.Bundles = []*spiffebundle.Bundle{rotated, f.Federated}
	require.NoError(t, f.Handler.Set(f.UID, snap))

	got, err = workloadtest.Recv(w.updates, timeout)
	require.NoError(t, err)
	own, err = got.GetJWTBundleForTrustDomain(gsid.RequireTrustDomainFromString("example.org"))
	require.NoError(t, err)
	assert.Len(t, own.JWTAuthorities(), 2)
	assert.True(t, own.HasJWTAuthority(next.KeyID()))
}

// TestGoSPIFFEWIT: with the WIT profile on, go-spiffe's client fetches
// WIT-SVIDs (with their keys) and WIT bundles from our server; with it off,
// both calls answer Unimplemented (WAPI rule 1, WIT rule 17).
func TestGoSPIFFEWIT(t *testing.T) {
	f := workloadtest.New(t)
	snap := f.Snapshot(f.SVID(t, workloadtest.WebID, ""))
	wa, wb := f.WITSVID(t, workloadtest.WebID, "a"), f.WITSVID(t, workloadtest.DBID, "b")
	snap.WITSVIDs = []endpoint.WITSVID{wa, wb}
	require.NoError(t, f.Handler.Set(f.UID, snap))

	t.Run("enabled", func(t *testing.T) {
		client := gsClient(t, workloadtest.Serve(t, endpoint.Config{Handler: f.Handler, WIT: true}).Addr)
		ctx := testContext(t)
		svid, err := client.FetchWITSVID(ctx, "")
		require.NoError(t, err)
		assert.Equal(t, wa.ID.String(), svid.ID.String(), "the default is the first")
		assert.Equal(t, wa.Token, svid.Marshal())
		assert.NotNil(t, svid.PrivateKey)
		svids, err := client.FetchWITSVIDs(ctx, wb.ID.String())
		require.NoError(t, err)
		require.Len(t, svids, 1)
		assert.Equal(t, wb.Token, svids[0].Marshal())
		assert.Equal(t, "b", svids[0].Hint)
		bundles, err := client.FetchWITBundles(ctx)
		require.NoError(t, err)
		own, err := bundles.GetWITBundleForTrustDomain(gsid.RequireTrustDomainFromString("example.org"))
		require.NoError(t, err)
		assert.True(t, own.HasWITAuthority(f.WIT.KeyID()))
	})
	t.Run("disabled", func(t *testing.T) {
		client := gsClient(t, workloadtest.Serve(t, endpoint.Config{Handler: f.Handler}).Addr)
		ctx := testContext(t)
		_, err := client.FetchWITSVID(ctx, "")
		assert.Equal(t, codes.Unimplemented, status.Code(err), "%v", err)
		_, err = client.FetchWITSVIDs(ctx, "")
		assert.Equal(t, codes.Unimplemented, status.Code(err), "%v", err)
		_, err = client.FetchWITBundles(ctx)
		assert.Equal(t, codes.Unimplemented, status.Code(err), "%v", err)
	})
}

// TestGoSPIFFEStubsWithoutHeader: go-spiffe's generated stubs, with no
// metadata at all, get InvalidArgument from every method (WE rule 6, E1),
// before the caller is even looked up: the handler here has no identity
// for anyone.
func TestGoSPIFFEStubsWithoutHeader(t *testing.T) {
	f := workloadtest.New(t)
	for _, wit := range []bool{false, true} {
		t.Run(fmt.Sprintf("WIT=%t", wit), func(t *testing.T) {
			srv := workloadtest.Serve(t, endpoint.Config{Handler: f.Handler, WIT: wit})
			conn, err := grpc.NewClient(srv.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			require.NoError(t, err)
			defer conn.Close()
			stub := workload.NewSpiffeWorkloadAPIClient(conn)
			ctx := testContext(t)

			streams := map[string]func() error{
				"FetchX509SVID": func() error { return recvErr(stub.FetchX509SVID(ctx, &workload.X509SVIDRequest{})) },
				"FetchX509Bundles": func() error {
					return recvErr(stub.FetchX509Bundles(ctx, &workload.X509BundlesRequest{}))
				},
				"FetchJWTBundles": func() error { return recvErr(stub.FetchJWTBundles(ctx, &workload.JWTBundlesRequest{})) },
				"FetchWITSVID":    func() error { return recvErr(stub.FetchWITSVID(ctx, &workload.WITSVIDRequest{})) },
				"FetchWITBundles": func() error { return recvErr(stub.FetchWITBundles(ctx, &workload.WITBundlesRequest{})) },
				"FetchJWTSVID": func() error {
					_, err := stub.FetchJWTSVID(ctx, &workload.JWTSVIDRequest{Audience: []string{"db"}})
					return err
				},
				"ValidateJWTSVID": func() error {
					_, err := stub.ValidateJWTSVID(ctx, &workload.ValidateJWTSVIDRequest{Audience: "db", Svid: "a.b.c"})
					return err
				},
			}
			for name, call := range streams {
				err := call()
				assert.Equal(t, codes.InvalidArgument, status.Code(err), "%s: %v", name, err)
				assert.Contains(t, status.Convert(err).Message(), "security header", name)
			}
		})
	}
}

func recvErr[T any](stream grpc.ServerStreamingClient[T], err error) error {
	if err != nil {
		return err
	}
	_, err = stream.Recv()
	return err
}

// TestGoSPIFFENoIdentity: a caller with no identity gets PermissionDenied
// from every method that serves identity material (WAPI rules 10-13, E4).
func TestGoSPIFFENoIdentity(t *testing.T) {
	f := workloadtest.New(t)
	srv := workloadtest.Serve(t, endpoint.Config{Handler: f.Handler})
	client := gsClient(t, srv.Addr)
	ctx := testContext(t)

	calls := map[string]func() error{
		"FetchX509SVID":    func() error { _, err := client.FetchX509SVID(ctx); return err },
		"FetchX509SVIDs":   func() error { _, err := client.FetchX509SVIDs(ctx); return err },
		"FetchX509Bundles": func() error { _, err := client.FetchX509Bundles(ctx); return err },
		"FetchX509Context": func() error { _, err := client.FetchX509Context(ctx); return err },
		"FetchJWTBundles":  func() error { _, err := client.FetchJWTBundles(ctx); return err },
	}
	for name, call := range calls {
		err := call()
		assert.Equal(t, codes.PermissionDenied, status.Code(err), "%s: %v", name, err)
	}
}

// TestGoSPIFFEPicksUpLateRegistration: an identity registered after the
// client started is picked up by go-spiffe's watcher and X509Source,
// which retry PermissionDenied (eventual consistency, status code table).
func TestGoSPIFFEPicksUpLateRegistration(t *testing.T) {
	f := workloadtest.New(t)
	srv := workloadtest.Serve(t, endpoint.Config{Handler: f.Handler})
	client := gsClient(t, srv.Addr)

	w := newX509Watcher()
	watch(t, func(ctx context.Context) error { return client.WatchX509Context(ctx, w) })
	err, recvErr := workloadtest.Recv(w.errs, timeout)
	require.NoError(t, recvErr)
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)

	type result struct {
		source *gsworkloadapi.X509Source
		err    error
	}
	started := make(chan result, 1)
	go func() {
		s, err := gsworkloadapi.NewX509Source(testContext(t), gsworkloadapi.WithClient(client))
		started <- result{s, err}
	}()
	// The source blocks for its first update; nothing is issued yet.
	select {
	case r := <-started:
		t.Fatalf("X509Source started without an identity: %v", r.err)
	default:
	}

	svid := f.SVID(t, workloadtest.WebID, "")
	require.NoError(t, f.Handler.Set(f.UID, f.Snapshot(svid)))

	got, err := workloadtest.Recv(w.updates, timeout)
	require.NoError(t, err)
	assert.True(t, got.SVIDs[0].Certificates[0].Equal(svid.Certificates[0]))

	r, err := workloadtest.Recv(started, timeout)
	require.NoError(t, err)
	require.NoError(t, r.err)
	defer r.source.Close()
	current, err := r.source.GetX509SVID()
	require.NoError(t, err)
	assert.True(t, current.Certificates[0].Equal(svid.Certificates[0]))
}
