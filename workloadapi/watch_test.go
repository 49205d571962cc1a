package workloadapi

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/internal/workloadpb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// runWatch runs watch in a goroutine and returns a function that cancels it
// and returns its result.
func runWatch(t *testing.T, watch func(ctx context.Context) error) (stop func() error, done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	ch := make(chan error, 1)
	go func() { ch <- watch(ctx) }()
	var result error
	var got bool
	stop = func() error {
		cancel()
		if !got {
			result, got = <-ch, true
		}
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return stop, ch
}

func TestWatchX509ContextRotation(t *testing.T) {
	f := newFixture(t)
	srv := newFakeServer()
	srv.x509 = f.x509Response("/a")
	c := newClient(t, startEndpoint(t, srv))
	w := newRecorder()
	stop, _ := runWatch(t, func(ctx context.Context) error { return c.WatchX509Context(ctx, w) })

	w.waitX509(t, 1)
	first := w.lastX509().DefaultSVID()
	// WAPI rule 4: every message is the complete new state.
	srv.set(func(s *fakeServer) { s.x509 = f.x509Response("/a", "/b") })
	w.waitX509(t, 2)
	second := w.lastX509()
	require.Len(t, second.SVIDs, 2)
	assert.NotEqual(t, first.Certificates[0].SerialNumber, second.DefaultSVID().Certificates[0].SerialNumber)

	// WAPI rule 6: a malformed message is reported, and the watch goes on.
	srv.set(func(s *fakeServer) { s.x509 = &workloadpb.X509SVIDResponse{} })
	w.waitErrs(t, 1)
	assert.True(t, w.hasErr(func(err error) bool { return err.Error() == "workloadapi: no SVIDs in response" }))
	srv.set(func(s *fakeServer) { s.x509 = f.x509Response("/c") })
	w.waitX509(t, 3)
	assert.Equal(t, f.id("/c"), w.lastX509().DefaultSVID().ID)
	assert.Equal(t, 1, srv.count("FetchX509SVID"), "one stream throughout")

	require.ErrorIs(t, stop(), context.Canceled)
}

func TestWatchNotRetried(t *testing.T) {
	// WE rule 9, WAPI rule 1: InvalidArgument and Unimplemented are final.
	// go-spiffe retries Unimplemented on X.509 and JWT watches.
	for _, code := range []codes.Code{codes.InvalidArgument, codes.Unimplemented} {
		t.Run(code.String(), func(t *testing.T) {
			srv := newFakeServer()
			srv.x509Err = status.Error(code, "no")
			srv.x509BErr = srv.x509Err
			srv.jwtBErr = srv.x509Err
			srv.witErr = srv.x509Err
			srv.witBErr = srv.x509Err
			c := newClient(t, startEndpoint(t, srv))
			w := newRecorder()
			ctx := t.Context()
			watches := map[string]func() error{
				"FetchX509SVID":    func() error { return c.WatchX509Context(ctx, w) },
				"FetchX509Bundles": func() error { return c.WatchX509Bundles(ctx, w) },
				"FetchJWTBundles":  func() error { return c.WatchJWTBundles(ctx, w) },
				"FetchWITSVID":     func() error { return c.WatchWITSVIDs(ctx, w, "") },
				"FetchWITBundles":  func() error { return c.WatchWITBundles(ctx, w) },
			}
			for method, watch := range watches {
				err := watch()
				assert.Equal(t, code, status.Code(err), method)
				assert.ErrorContains(t, err, "workloadapi: watch ")
				assert.Equal(t, 1, srv.count(method), method)
			}
			assert.Len(t, w.errs, len(watches), "each final error is reported once")
		})
	}
}

func TestWatchReconnects(t *testing.T) {
	f := newFixture(t)
	srv := newFakeServer()
	srv.x509 = f.x509Response("/a")
	e := startEndpoint(t, srv)
	c := newClient(t, e)
	w := newRecorder()
	runWatch(t, func(ctx context.Context) error { return c.WatchX509Context(ctx, w) })
	w.waitX509(t, 1)

	// The server goes away: the error is reported and the watch retries.
	e.stop()
	w.waitErrs(t, 2)
	srv.set(func(s *fakeServer) { s.x509 = f.x509Response("/b") })
	e.start()
	w.waitX509(t, 2)
	assert.Equal(t, f.id("/b"), w.lastX509().DefaultSVID().ID)
}

func TestWatchRetriesStreamEndAndPermissionDenied(t *testing.T) {
	f := newFixture(t)
	srv := newFakeServer()
	// WAPI rule 10: no identity yet.
	srv.x509Err = status.Error(codes.PermissionDenied, "no identity issued")
	c := newClient(t, startEndpoint(t, srv))
	w := newRecorder()
	runWatch(t, func(ctx context.Context) error { return c.WatchX509Context(ctx, w) })
	w.waitErrs(t, 2)
	assert.True(t, w.hasErr(func(err error) bool { return status.Code(err) == codes.PermissionDenied }))

	// Registration catches up: the client picks the identity up.
	srv.set(func(s *fakeServer) { s.x509Err, s.x509 = nil, f.x509Response("/late") })
	w.waitX509(t, 1)
	assert.Equal(t, f.id("/late"), w.lastX509().DefaultSVID().ID)

	// A stream the server ends cleanly is reopened (WAPI rule 3).
	calls := srv.count("FetchX509SVID")
	srv.set(func(s *fakeServer) { s.x509Err = errStreamEndTest })
	require.Eventually(t, func() bool {
		return w.hasErr(func(err error) bool { return errors.Is(err, errStreamClosed) })
	}, 10*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return srv.count("FetchX509SVID") > calls+1 }, 10*time.Second, 5*time.Millisecond)
	w.mu.Lock()
	n := len(w.x509)
	w.mu.Unlock()
	srv.set(func(s *fakeServer) { s.x509Err = nil })
	w.waitX509(t, n+1)
}

// errStreamEndTest makes the fake server's handler return nil, which ends
// the stream without an error. serveStream returns any error as is, so a
// sentinel that the wrapper below maps to nil is used.
var errStreamEndTest = errors.New("end stream")

func TestWatchOtherKinds(t *testing.T) {
	f := newFixture(t)
	srv := newFakeServer()
	srv.x509B = f.x509Bundles()
	srv.jwtB = f.jwtBundles()
	srv.witSVIDs = &workloadpb.WITSVIDResponse{Svids: []*workloadpb.WITSVID{f.witSVID("/a", "")}}
	srv.witB = f.witBundles()
	c := newClient(t, startEndpoint(t, srv))
	w := newRecorder()
	runWatch(t, func(ctx context.Context) error { return c.WatchX509Bundles(ctx, w) })
	runWatch(t, func(ctx context.Context) error { return c.WatchJWTBundles(ctx, w) })
	runWatch(t, func(ctx context.Context) error { return c.WatchWITSVIDs(ctx, w, "") })
	runWatch(t, func(ctx context.Context) error { return c.WatchWITBundles(ctx, w) })
	w.waitX509Bundles(t, 1)
	w.waitJWTBundles(t, 1)
	waitN(t, &w.mu, 1, func() int { return len(w.witSVIDs) })
	waitN(t, &w.mu, 1, func() int { return len(w.witBundles) })

	// Malformed updates of each kind are reported, not applied.
	srv.set(func(s *fakeServer) {
		s.x509B = &workloadpb.X509BundlesResponse{}
		s.jwtB = &workloadpb.JWTBundlesResponse{}
		s.witSVIDs = &workloadpb.WITSVIDResponse{}
		s.witB = &workloadpb.WITBundlesResponse{}
	})
	w.waitErrs(t, 4)
	w.mu.Lock()
	defer w.mu.Unlock()
	assert.Len(t, w.x509Bundles, 1)
	assert.Len(t, w.jwtBundles, 1)
	assert.Len(t, w.witSVIDs, 1)
	assert.Len(t, w.witBundles, 1)
}
