package workloadapi

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/workloadpb"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const eventually = 10 * time.Second

func clientOpts(e *endpoint) SourceOption {
	return WithClientOptions(WithAddr(e.addr), WithBackoffStrategy(fastBackoff{}))
}

func waitUpdated(t *testing.T, updated <-chan struct{}) {
	t.Helper()
	select {
	case <-updated:
	case <-time.After(eventually):
		t.Fatal("no update")
	}
}

func TestX509Source(t *testing.T) {
	f := newFixture(t)
	srv := newFakeServer()
	srv.x509 = f.x509Response("/a", "/b")
	e := startEndpoint(t, srv)
	s, err := NewX509Source(t.Context(), clientOpts(e))
	require.NoError(t, err)
	defer s.Close()

	svid, err := s.GetX509SVID()
	require.NoError(t, err)
	assert.Equal(t, f.id("/a"), svid.ID)
	b, err := s.GetX509BundleForTrustDomain(f.td)
	require.NoError(t, err)
	assert.True(t, b.HasX509Authority(f.ca.Root()))
	_, err = s.GetX509BundleForTrustDomain(spiffeid.RequireTrustDomainFromString("other.test"))
	assert.ErrorContains(t, err, "workloadapi: ")
	select {
	case <-s.Updated():
		t.Fatal("the first update is not reported")
	default:
	}

	// Rotation.
	srv.set(func(s *fakeServer) { s.x509 = f.x509Response("/c") })
	waitUpdated(t, s.Updated())
	svid, err = s.GetX509SVID()
	require.NoError(t, err)
	assert.Equal(t, f.id("/c"), svid.ID)

	// WAPI rule 6: a malformed update does not replace the state.
	srv.set(func(s *fakeServer) {
		s.x509 = &workloadpb.X509SVIDResponse{Svids: []*workloadpb.X509SVID{{SpiffeId: "x"}}}
	})
	require.Eventually(t, func() bool { return s.base.lastErr.Load() != nil }, eventually, 5*time.Millisecond)
	svid, err = s.GetX509SVID()
	require.NoError(t, err)
	assert.Equal(t, f.id("/c"), svid.ID)

	// The server restarts: the source serves the last good SVID meanwhile,
	// then picks up the new one.
	e.stop()
	srv.set(func(s *fakeServer) { s.x509 = f.x509Response("/d") })
	svid, err = s.GetX509SVID()
	require.NoError(t, err)
	assert.Equal(t, f.id("/c"), svid.ID)
	e.start()
	require.Eventually(t, func() bool {
		svid, err := s.GetX509SVID()
		return err == nil && svid.ID == f.id("/d")
	}, eventually, 5*time.Millisecond)

	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	_, err = s.GetX509SVID()
	assert.ErrorIs(t, err, ErrSourceClosed)
	_, err = s.GetX509BundleForTrustDomain(f.td)
	assert.ErrorIs(t, err, ErrSourceClosed)
}

func TestX509SourcePermissionDenied(t *testing.T) {
	f := newFixture(t)
	srv := newFakeServer()
	srv.x509 = f.x509Response("/a")
	e := startEndpoint(t, srv)
	s, err := NewX509Source(t.Context(), clientOpts(e))
	require.NoError(t, err)
	defer s.Close()

	// WAPI rule 10: the identity is withdrawn; stop using the SVID.
	srv.set(func(s *fakeServer) { s.x509Err = status.Error(codes.PermissionDenied, "no identity issued") })
	waitUpdated(t, s.Updated())
	_, err = s.GetX509SVID()
	assert.Equal(t, codes.PermissionDenied, status.Code(err))
	assert.ErrorContains(t, err, "workloadapi: X509-SVID withdrawn")
	_, err = s.GetX509BundleForTrustDomain(f.td)
	assert.NoError(t, err, "bundles are kept")

	// The identity comes back.
	srv.set(func(s *fakeServer) { s.x509Err, s.x509 = nil, f.x509Response("/b") })
	require.Eventually(t, func() bool {
		svid, err := s.GetX509SVID()
		return err == nil && svid.ID == f.id("/b")
	}, eventually, 5*time.Millisecond)
}

func TestX509SourceWithoutWaiting(t *testing.T) {
	f := newFixture(t)
	srv := newFakeServer()
	srv.x509Err = status.Error(codes.PermissionDenied, "no identity issued")
	e := startEndpoint(t, srv)
	s, err := NewX509Source(t.Context(), clientOpts(e), WithoutWaitingForFirstUpdate())
	require.NoError(t, err)
	defer s.Close()

	require.Eventually(t, func() bool { return s.base.lastErr.Load() != nil }, eventually, 5*time.Millisecond)
	_, err = s.GetX509SVID()
	assert.ErrorIs(t, err, ErrNoUpdate)
	assert.Equal(t, codes.PermissionDenied, status.Code(err))
	assert.ErrorContains(t, err, "workloadapi: no X509-SVID received yet: workloadapi: watch X.509 context: ")
	_, err = s.GetX509BundleForTrustDomain(f.td)
	assert.ErrorIs(t, err, ErrNoUpdate)

	srv.set(func(s *fakeServer) { s.x509Err, s.x509 = nil, f.x509Response("/a") })
	ctx, cancel := context.WithTimeout(t.Context(), eventually)
	defer cancel()
	require.NoError(t, s.WaitUntilUpdated(ctx))
	svid, err := s.GetX509SVID()
	require.NoError(t, err)
	assert.Equal(t, f.id("/a"), svid.ID)
}

func TestX509SourceNotReady(t *testing.T) {
	var s X509Source
	s.base.updated = make(chan struct{}, 1)
	_, err := s.GetX509SVID()
	assert.EqualError(t, err, "workloadapi: no X509-SVID received yet")
}

func TestX509SourceStartErrors(t *testing.T) {
	t.Run("InvalidArgument is final", func(t *testing.T) {
		srv := newFakeServer()
		srv.x509Err = status.Error(codes.InvalidArgument, "bad")
		e := startEndpoint(t, srv)
		_, err := NewX509Source(t.Context(), clientOpts(e))
		assert.Equal(t, codes.InvalidArgument, status.Code(err))
	})
	t.Run("context ends before the first update", func(t *testing.T) {
		srv := newFakeServer()
		srv.x509Err = status.Error(codes.PermissionDenied, "no identity issued")
		e := startEndpoint(t, srv)
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		_, err := NewX509Source(ctx, clientOpts(e))
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})
	t.Run("bad address", func(t *testing.T) {
		_, err := NewX509Source(t.Context(), WithClientOptions(WithAddr("nope")))
		assert.ErrorIs(t, err, ErrInvalidEndpointScheme)
	})
}

func TestX509SourcePickerAndClient(t *testing.T) {
	f := newFixture(t)
	srv := newFakeServer()
	srv.x509 = f.x509Response("/a", "/b")
	e := startEndpoint(t, srv)
	c := newClient(t, e)
	s, err := NewX509Source(t.Context(), WithClient(c), WithDefaultX509SVIDPicker(func(svids []*x509svid.SVID) *x509svid.SVID {
		return svids[len(svids)-1]
	}))
	require.NoError(t, err)
	svid, err := s.GetX509SVID()
	require.NoError(t, err)
	assert.Equal(t, f.id("/b"), svid.ID)
	require.NoError(t, s.Close())
	// The source did not close a client it does not own.
	_, err = c.FetchX509SVID(t.Context())
	assert.NoError(t, err)

	s, err = NewX509Source(t.Context(), WithClient(c), WithDefaultX509SVIDPicker(func([]*x509svid.SVID) *x509svid.SVID { return nil }))
	require.NoError(t, err)
	defer s.Close()
	_, err = s.GetX509SVID()
	assert.EqualError(t, err, "workloadapi: missing X509-SVID")
}

func TestX509SourceConcurrent(t *testing.T) {
	f := newFixture(t)
	srv := newFakeServer()
	srv.x509 = f.x509Response("/a")
	e := startEndpoint(t, srv)
	s, err := NewX509Source(t.Context(), clientOpts(e))
	require.NoError(t, err)
	defer s.Close()

	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				svid, err := s.GetX509SVID()
				if assert.NoError(t, err) {
					assert.NotNil(t, svid.PrivateKey)
				}
				_, err = s.GetX509BundleForTrustDomain(f.td)
				assert.NoError(t, err)
			}
		})
	}
	for range 5 {
		srv.set(func(s *fakeServer) { s.x509 = f.x509Response("/a") })
		waitUpdated(t, s.Updated())
	}
	close(stop)
	wg.Wait()
}

func TestSourcesNoGoroutineLeak(t *testing.T) {
	f := newFixture(t)
	srv := newFakeServer()
	srv.x509 = f.x509Response("/a")
	srv.x509B = f.x509Bundles()
	srv.jwtB = f.jwtBundles()
	srv.witSVIDs = &workloadpb.WITSVIDResponse{Svids: []*workloadpb.WITSVID{f.witSVID("/a", "")}}
	srv.witB = f.witBundles()
	e := startEndpoint(t, srv)
	noLeaks := leaktest.Check(t)
	baseline := goleak.IgnoreCurrent()

	for range 3 {
		x, err := NewX509Source(t.Context(), clientOpts(e))
		require.NoError(t, err)
		j, err := NewJWTSource(t.Context(), clientOpts(e))
		require.NoError(t, err)
		b, err := NewBundleSource(t.Context(), clientOpts(e))
		require.NoError(t, err)
		w, err := NewWITSource(t.Context(), clientOpts(e))
		require.NoError(t, err)
		require.Error(t, goleak.Find(baseline), "the sources run goroutines")
		var wg sync.WaitGroup
		for _, c := range []interface{ Close() error }{x, j, b, w} {
			wg.Go(func() { assert.NoError(t, c.Close()) }) // concurrent Close
			wg.Go(func() { assert.NoError(t, c.Close()) })
		}
		wg.Wait()
	}
	// Close waited for the watch goroutines; the connections' own
	// goroutines wind down right after.
	noLeaks()
}

func TestJWTSource(t *testing.T) {
	f := newFixture(t)
	srv := newFakeServer()
	srv.jwtB = f.jwtBundles()
	srv.jwtSVID = f.jwtHandler(5*time.Minute, "/a", "/b")
	e := startEndpoint(t, srv)
	s, err := NewJWTSource(t.Context(), clientOpts(e))
	require.NoError(t, err)
	defer s.Close()
	ctx := t.Context()

	b, err := s.GetJWTBundleForTrustDomain(f.td)
	require.NoError(t, err)
	assert.True(t, b.HasJWTAuthority("k1"))
	_, err = s.GetJWTBundleForTrustDomain(spiffeid.RequireTrustDomainFromString("other.test"))
	assert.ErrorContains(t, err, "workloadapi: ")

	// Cache hits: same audience set (in any order), same subject.
	svid, err := s.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "a", ExtraAudiences: []string{"b"}})
	require.NoError(t, err)
	assert.Equal(t, f.id("/a"), svid.ID)
	again, err := s.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "b", ExtraAudiences: []string{"a", "a"}})
	require.NoError(t, err)
	assert.Same(t, svid, again)
	svids, err := s.FetchJWTSVIDs(ctx, jwtsvid.Params{Audience: "a", ExtraAudiences: []string{"b"}})
	require.NoError(t, err)
	assert.Len(t, svids, 2)
	assert.Equal(t, 1, srv.count("FetchJWTSVID"))

	// Another subject or audience is another entry.
	svid, err = s.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "a", Subject: f.id("/b")})
	require.NoError(t, err)
	assert.Equal(t, f.id("/b"), svid.ID)
	_, err = s.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "c"})
	require.NoError(t, err)
	assert.Equal(t, 3, srv.count("FetchJWTSVID"))

	// Past the refresh point the token is fetched again.
	s.now = func() time.Time { return time.Now().Add(4*time.Minute + 30*time.Second) }
	_, err = s.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "c"})
	require.NoError(t, err)
	assert.Equal(t, 4, srv.count("FetchJWTSVID"))

	// Errors are not cached.
	_, err = s.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "a", Subject: f.id("/none")})
	assert.Equal(t, codes.PermissionDenied, status.Code(err))

	require.NoError(t, s.Close())
	_, err = s.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "a"})
	assert.ErrorIs(t, err, ErrSourceClosed)
	_, err = s.GetJWTBundleForTrustDomain(f.td)
	assert.ErrorIs(t, err, ErrSourceClosed)
}

func TestJWTSourceOptions(t *testing.T) {
	f := newFixture(t)
	srv := newFakeServer()
	srv.jwtB = f.jwtBundles()
	srv.jwtSVID = f.jwtHandler(5*time.Minute, "/a", "/b")
	e := startEndpoint(t, srv)
	s, err := NewJWTSource(t.Context(), clientOpts(e), WithoutJWTSVIDCache(),
		WithDefaultJWTSVIDPicker(func(svids []*jwtsvid.SVID) *jwtsvid.SVID { return svids[1] }))
	require.NoError(t, err)
	defer s.Close()
	for range 2 {
		svid, err := s.FetchJWTSVID(t.Context(), jwtsvid.Params{Audience: "a"})
		require.NoError(t, err)
		assert.Equal(t, f.id("/b"), svid.ID)
	}
	assert.Equal(t, 2, srv.count("FetchJWTSVID"))

	s2, err := NewJWTSource(t.Context(), clientOpts(e), WithDefaultJWTSVIDPicker(func([]*jwtsvid.SVID) *jwtsvid.SVID { return nil }))
	require.NoError(t, err)
	defer s2.Close()
	_, err = s2.FetchJWTSVID(t.Context(), jwtsvid.Params{Audience: "a"})
	assert.EqualError(t, err, "workloadapi: missing JWT-SVID")

	// Short-lived tokens are not worth caching.
	srv.set(func(s *fakeServer) { s.jwtSVID = f.jwtHandler(20*time.Second, "/a") })
	n := srv.count("FetchJWTSVID")
	for range 2 {
		_, err := s2.FetchJWTSVIDs(t.Context(), jwtsvid.Params{Audience: "short"})
		require.NoError(t, err)
	}
	assert.Equal(t, n+2, srv.count("FetchJWTSVID"))

	s3, err := NewJWTSource(t.Context(), clientOpts(e), WithoutWaitingForFirstUpdate())
	require.NoError(t, err)
	require.NoError(t, s3.Close())
}

func TestJWTCacheBound(t *testing.T) {
	s := &JWTSource{now: time.Now, cache: map[jwtCacheKey]jwtCacheEntry{}}
	exp := time.Now().Add(time.Hour)
	svids := []*jwtsvid.SVID{{Expiry: exp}}
	for i := range maxJWTCacheEntries + 1 {
		s.store(jwtCacheKey{audience: string(rune('a' + i))}, svids)
	}
	assert.LessOrEqual(t, len(s.cache), maxJWTCacheEntries)
	// refreshTime: 80% of the lifetime, or 30 s before exp if earlier.
	now := time.Unix(1000, 0)
	assert.Equal(t, now.Add(800*time.Second), refreshTime(&jwtsvid.SVID{Expiry: now.Add(1000 * time.Second)}, now))
	assert.Equal(t, now.Add(70*time.Second), refreshTime(&jwtsvid.SVID{Expiry: now.Add(100 * time.Second)}, now))
	// Lifetime counted from iat: 80% of 1000 s after iat is already past.
	assert.Equal(t, now.Add(-100*time.Second), refreshTime(&jwtsvid.SVID{Expiry: now.Add(100 * time.Second), Claims: map[string]any{"iat": float64(now.Unix() - 900)}}, now))
}

func TestBundleSource(t *testing.T) {
	f := newFixture(t)
	srv := newFakeServer()
	srv.x509B = f.x509Bundles()
	srv.jwtB = f.jwtBundles()
	e := startEndpoint(t, srv)
	s, err := NewBundleSource(t.Context(), clientOpts(e))
	require.NoError(t, err)
	defer s.Close()

	b, err := s.GetBundleForTrustDomain(f.td)
	require.NoError(t, err)
	assert.True(t, b.HasX509Authority(f.ca.Root()))
	assert.True(t, b.HasJWTAuthority("k1"))
	xb, err := s.GetX509BundleForTrustDomain(f.td)
	require.NoError(t, err)
	assert.Len(t, xb.X509Authorities(), 1)
	jb, err := s.GetJWTBundleForTrustDomain(f.td)
	require.NoError(t, err)
	assert.True(t, jb.HasJWTAuthority("k1"))

	other := spiffeid.RequireTrustDomainFromString("other.test")
	_, err = s.GetBundleForTrustDomain(other)
	assert.EqualError(t, err, `workloadapi: no SPIFFE bundle for trust domain "other.test"`)
	_, err = s.GetX509BundleForTrustDomain(other)
	assert.EqualError(t, err, `workloadapi: no X.509 bundle for trust domain "other.test"`)
	_, err = s.GetJWTBundleForTrustDomain(other)
	assert.EqualError(t, err, `workloadapi: no JWT bundle for trust domain "other.test"`)

	// A JWT bundle update of a new trust domain.
	foreign := newFixture(t)
	srv.set(func(s *fakeServer) {
		s.jwtB = &workloadpb.JWTBundlesResponse{Bundles: map[string][]byte{
			f.td.IDString():   f.jwtBundleJSON(),
			"spiffe://b.test": foreign.jwtBundleJSON(),
		}}
	})
	ctx, cancel := context.WithTimeout(t.Context(), eventually)
	defer cancel()
	require.Eventually(t, func() bool {
		_, err := s.GetBundleForTrustDomain(spiffeid.RequireTrustDomainFromString("b.test"))
		return err == nil
	}, eventually, 5*time.Millisecond)
	require.NoError(t, s.WaitUntilUpdated(ctx))

	require.NoError(t, s.Close())
	_, err = s.GetBundleForTrustDomain(f.td)
	assert.ErrorIs(t, err, ErrSourceClosed)
	_, err = s.GetX509BundleForTrustDomain(f.td)
	assert.ErrorIs(t, err, ErrSourceClosed)
	_, err = s.GetJWTBundleForTrustDomain(f.td)
	assert.ErrorIs(t, err, ErrSourceClosed)
}

func TestBundleSourceNotReady(t *testing.T) {
	srv := newFakeServer()
	srv.x509BErr = status.Error(codes.Unavailable, "starting")
	srv.jwtBErr = srv.x509BErr
	e := startEndpoint(t, srv)
	s, err := NewBundleSource(t.Context(), clientOpts(e), WithoutWaitingForFirstUpdate())
	require.NoError(t, err)
	defer s.Close()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	_, err = s.GetBundleForTrustDomain(td)
	assert.ErrorIs(t, err, ErrNoUpdate)
	_, err = s.GetX509BundleForTrustDomain(td)
	assert.ErrorIs(t, err, ErrNoUpdate)
	_, err = s.GetJWTBundleForTrustDomain(td)
	assert.ErrorIs(t, err, ErrNoUpdate)
	select {
	case <-s.Updated():
		t.Fatal("no update expected")
	default:
	}
}

func TestWITSource(t *testing.T) {
	f := newFixture(t)
	srv := newFakeServer()
	srv.witSVIDs = &workloadpb.WITSVIDResponse{Svids: []*workloadpb.WITSVID{f.witSVID("/a", ""), f.witSVID("/b", "")}}
	srv.witB = f.witBundles()
	e := startEndpoint(t, srv)
	s, err := NewWITSource(t.Context(), clientOpts(e))
	require.NoError(t, err)
	defer s.Close()

	svid, err := s.GetWITSVIDForID(f.id("/b"))
	require.NoError(t, err)
	assert.Equal(t, f.id("/b"), svid.ID)
	_, err = s.GetWITSVIDForID(f.id("/none"))
	assert.EqualError(t, err, `workloadapi: no WIT-SVID found for SPIFFE ID "spiffe://example.org/none"`)
	b, err := s.GetWITBundleForTrustDomain(f.td)
	require.NoError(t, err)
	assert.True(t, b.HasWITAuthority("w1"))
	_, err = s.GetWITBundleForTrustDomain(spiffeid.RequireTrustDomainFromString("other.test"))
	assert.Error(t, err)

	// WAPI rule 10 applies to WIT-SVIDs too (WIT rule 17).
	srv.set(func(s *fakeServer) { s.witErr = status.Error(codes.PermissionDenied, "gone") })
	require.Eventually(t, func() bool {
		_, err := s.GetWITSVIDForID(f.id("/a"))
		return status.Code(err) == codes.PermissionDenied
	}, eventually, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), eventually)
	defer cancel()
	srv.set(func(s *fakeServer) { s.witErr = nil })
	require.NoError(t, s.WaitUntilUpdated(ctx))

	require.NoError(t, s.Close())
	_, err = s.GetWITSVIDForID(f.id("/a"))
	assert.ErrorIs(t, err, ErrSourceClosed)
	_, err = s.GetWITBundleForTrustDomain(f.td)
	assert.ErrorIs(t, err, ErrSourceClosed)
}

func TestWITSourceUnimplemented(t *testing.T) {
	srv := newFakeServer()
	srv.witErr = status.Error(codes.Unimplemented, "no WIT profile")
	srv.witBErr = srv.witErr
	e := startEndpoint(t, srv)
	// WAPI rule 1: not retried, so the constructor fails at once.
	_, err := NewWITSource(t.Context(), clientOpts(e))
	assert.Equal(t, codes.Unimplemented, status.Code(err))

	s, err := NewWITSource(t.Context(), clientOpts(e), WithoutWaitingForFirstUpdate())
	require.NoError(t, err)
	defer s.Close()
	require.Eventually(t, func() bool { return s.base.lastErr.Load() != nil }, eventually, 5*time.Millisecond)
	_, err = s.GetWITSVIDForID(spiffeid.RequireFromString("spiffe://example.org/a"))
	assert.ErrorIs(t, err, ErrNoUpdate)
	_, err = s.GetWITBundleForTrustDomain(spiffeid.RequireTrustDomainFromString("example.org"))
	assert.ErrorIs(t, err, ErrNoUpdate)
}
