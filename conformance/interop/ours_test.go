package interop

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/conformance/internal/workloadtest"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// ourFastBackoff is fastBackoff for spiffekit's client.
type ourFastBackoff struct{}

func (ourFastBackoff) NewBackoff() workloadapi.Backoff { return ourFastBackoff{} }
func (ourFastBackoff) Next() time.Duration             { return 10 * time.Millisecond }
func (ourFastBackoff) Reset()                          {}

// ourWatcher forwards spiffekit's X.509 context updates and errors.
type ourWatcher struct {
	updates chan *workloadapi.X509Context
	errs    chan error
}

func (w *ourWatcher) OnX509ContextUpdate(c *workloadapi.X509Context) { w.updates <- c }

func (w *ourWatcher) OnX509ContextWatchError(err error) {
	select {
	case w.errs <- err:
	default:
	}
}

// TestOursNoIdentity: spiffekit's client reports PermissionDenied, still
// readable with status.Code through its "workloadapi: " wrapping.
func TestOursNoIdentity(t *testing.T) {
	f := workloadtest.New(t)
	srv := workloadtest.Serve(t, endpoint.Config{Handler: f.Handler})
	client, err := workloadapi.New(t.Context(), workloadapi.WithAddr(srv.Addr))
	require.NoError(t, err)
	defer client.Close()
	ctx := testContext(t)

	calls := map[string]func() error{
		"FetchX509SVID":    func() error { _, err := client.FetchX509SVID(ctx); return err },
		"FetchX509SVIDs":   func() error { _, err := client.FetchX509SVIDs(ctx); return err },
		"FetchX509Bundles": func() error { _, err := client.FetchX509Bundles(ctx); return err },
		"FetchX509Context": func() error { _, err := client.FetchX509Context(ctx); return err },
		"FetchJWTBundles":  func() error { _, err := client.FetchJWTBundles(ctx); return err },
		"FetchJWTSVID": func() error {
			_, err := client.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "db"})
			return err
		},
	}
	for name, call := range calls {
		err := call()
		assert.Equal(t, codes.PermissionDenied, status.Code(err), "%s: %v", name, err)
		assert.ErrorContains(t, err, "workloadapi: ", name)
	}
}

// TestOursPicksUpLateRegistration is TestGoSPIFFEPicksUpLateRegistration
// with spiffekit's watcher and X509Source.
func TestOursPicksUpLateRegistration(t *testing.T) {
	f := workloadtest.New(t)
	srv := workloadtest.Serve(t, endpoint.Config{Handler: f.Handler})
	client, err := workloadapi.New(t.Context(), workloadapi.WithAddr(srv.Addr), workloadapi.WithBackoffStrategy(ourFastBackoff{}))
	require.NoError(t, err)
	defer client.Close()

	w := &ourWatcher{updates: make(chan *workloadapi.X509Context, 16), errs: make(chan error, 16)}
	watch(t, func(ctx context.Context) error { return client.WatchX509Context(ctx, w) })
	err, recvErr := workloadtest.Recv(w.errs, timeout)
	require.NoError(t, recvErr)
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)

	type result struct {
		source *workloadapi.X509Source
		err    error
	}
	started := make(chan result, 1)
	go func() {
		s, err := workloadapi.NewX509Source(testContext(t), workloadapi.WithClient(client))
		started <- result{s, err}
	}()
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
