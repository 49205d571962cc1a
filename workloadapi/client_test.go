package workloadapi

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/internal/workloadpb"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// fastBackoff retries quickly so that reconnect tests finish fast.
type fastBackoff struct{}

func (fastBackoff) NewBackoff() Backoff { return fastBackoff{} }
func (fastBackoff) Next() time.Duration { return 10 * time.Millisecond }
func (fastBackoff) Reset()              {}

func newClient(t *testing.T, e *endpoint, opts ...ClientOption) *Client {
	t.Helper()
	c, err := New(t.Context(), append([]ClientOption{WithAddr(e.addr), WithBackoffStrategy(fastBackoff{})}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestClientX509(t *testing.T) {
	f := newFixture(t)
	srv := newFakeServer()
	resp := f.x509Response("/a", "/b")
	resp.Svids = append(resp.Svids, f.x509SVID("/c", "internal"), f.x509SVID("/d", "internal"))
	foreign := newFixture(t)
	resp.FederatedBundles = map[string][]byte{"spiffe://foreign.test": foreign.ca.Root().Raw}
	srv.x509 = resp
	srv.x509B = f.x509Bundles()
	e := startEndpoint(t, srv)
	c := newClient(t, e)
	ctx := t.Context()

	// WAPI rule 9: the first SVID is the default.
	svid, err := c.FetchX509SVID(ctx)
	require.NoError(t, err)
	assert.Equal(t, f.id("/a"), svid.ID)

	// WAPI rule 8: a later duplicate non-empty hint is skipped.
	svids, err := c.FetchX509SVIDs(ctx)
	require.NoError(t, err)
	require.Len(t, svids, 3)
	assert.Equal(t, f.id("/c"), svids[2].ID)
	assert.Equal(t, "internal", svids[2].Hint)

	x509Ctx, err := c.FetchX509Context(ctx)
	require.NoError(t, err)
	assert.Equal(t, f.id("/a"), x509Ctx.DefaultSVID().ID)
	assert.True(t, x509Ctx.Bundles.Has(f.td))
	assert.Equal(t, 2, x509Ctx.Bundles.Len(), "own and federated bundle")

	bundles, err := c.FetchX509Bundles(ctx)
	require.NoError(t, err)
	b, err := bundles.GetX509BundleForTrustDomain(f.td)
	require.NoError(t, err)
	assert.True(t, b.HasX509Authority(f.ca.Root()))

	// WE rule 6: every call carried the security header.
	assert.Equal(t, 0, srv.badHeaders)
	assert.Equal(t, 3, srv.count("FetchX509SVID"))
}

func TestClientHeaderReplacesCallerValue(t *testing.T) {
	f := newFixture(t)
	srv := newFakeServer()
	srv.x509 = f.x509Response("/a")
	c := newClient(t, startEndpoint(t, srv))
	// WE rule 6: exactly one value "true", whatever the caller set.
	ctx := metadata.AppendToOutgoingContext(t.Context(), workloadpb.HeaderKey, "false", "other", "kept")
	_, err := c.FetchX509SVID(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, srv.badHeaders)
}

func TestClientJWT(t *testing.T) {
	f := newFixture(t)
	srv := newFakeServer()
	srv.jwtSVID = f.jwtHandler(time.Minute, "/a", "/b")
	srv.jwtB = f.jwtBundles()
	c := newClient(t, startEndpoint(t, srv))
	ctx := t.Context()

	svid, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "aud1", ExtraAudiences: []string{"aud2"}})
	require.NoError(t, err)
	assert.Equal(t, f.id("/a"), svid.ID)
	assert.Equal(t, []string{"aud1", "aud2"}, svid.Audience)

	svids, err := c.FetchJWTSVIDs(ctx, jwtsvid.Params{Audience: "aud1"})
	require.NoError(t, err)
	assert.Len(t, svids, 2)

	svid, err = c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "aud1", Subject: f.id("/b")})
	require.NoError(t, err)
	assert.Equal(t, f.id("/b"), svid.ID)

	_, err = c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "aud1", Subject: f.id("/none")})
	assert.Equal(t, codes.PermissionDenied, status.Code(err))
	assert.ErrorContains(t, err, "workloadapi: FetchJWTSVID: ")

	bundles, err := c.FetchJWTBundles(ctx)
	require.NoError(t, err)
	b, err := bundles.GetJWTBundleForTrustDomain(f.td)
	require.NoError(t, err)
	assert.True(t, b.HasJWTAuthority("k1"))

	// Validated tokens are reparsed locally; the response must agree.
	token := f.jwt("/a", []string{"aud1"}, time.Minute)
	srv.set(func(s *fakeServer) {
		s.validate = func(req *workloadpb.ValidateJWTSVIDRequest) (*workloadpb.ValidateJWTSVIDResponse, error) {
			if req.GetSvid() != token || req.GetAudience() != "aud1" {
				return nil, status.Error(codes.InvalidArgument, "bad token")
			}
			return &workloadpb.ValidateJWTSVIDResponse{SpiffeId: f.id("/a").String(), Claims: claims(t, map[string]any{"sub": f.id("/a").String()})}, nil
		}
	})
	svid, err = c.ValidateJWTSVID(ctx, token, "aud1")
	require.NoError(t, err)
	assert.Equal(t, f.id("/a"), svid.ID)
	_, err = c.ValidateJWTSVID(ctx, token, "other")
	assert.Equal(t, codes.InvalidArgument, status.Code(err))

	srv.set(func(s *fakeServer) {
		s.validate = func(*workloadpb.ValidateJWTSVIDRequest) (*workloadpb.ValidateJWTSVIDResponse, error) {
			return &workloadpb.ValidateJWTSVIDResponse{SpiffeId: f.id("/b").String()}, nil
		}
	})
	_, err = c.ValidateJWTSVID(ctx, token, "aud1")
	assert.ErrorContains(t, err, "token subject")
	_, err = c.ValidateJWTSVID(ctx, "not-a-token", "aud1")
	assert.ErrorContains(t, err, "workloadapi: ")
	assert.Equal(t, 0, srv.badHeaders)
}

func TestClientWIT(t *testing.T) {
	f := newFixture(t)
	srv := newFakeServer()
	srv.witSVIDs = &workloadpb.WITSVIDResponse{Svids: []*workloadpb.WITSVID{f.witSVID("/a", "x"), f.witSVID("/b", "x"), f.witSVID("/c", "")}}
	srv.witB = f.witBundles()
	c := newClient(t, startEndpoint(t, srv))
	ctx := t.Context()

	svid, err := c.FetchWITSVID(ctx, "")
	require.NoError(t, err)
	assert.Equal(t, f.id("/a"), svid.ID)
	require.NotNil(t, svid.PrivateKey)

	svids, err := c.FetchWITSVIDs(ctx, "")
	require.NoError(t, err)
	require.Len(t, svids, 2, "duplicate hint skipped (WAPI rule 8)")
	assert.Equal(t, f.id("/c"), svids[1].ID)

	bundles, err := c.FetchWITBundles(ctx)
	require.NoError(t, err)
	b, err := bundles.GetWITBundleForTrustDomain(f.td)
	require.NoError(t, err)
	assert.True(t, b.HasWITAuthority("w1"))

	// The fetched SVID validates against the fetched bundles.
	_, err = witsvid.ParseAndValidate(svid.Marshal(), bundles)
	require.NoError(t, err)
}

func TestClientUnimplemented(t *testing.T) {
	srv := newFakeServer()
	c := newClient(t, startEndpoint(t, srv))
	// A server without the WIT profile answers Unimplemented (WAPI rule 1).
	srv.set(func(s *fakeServer) { s.witErr = status.Error(codes.Unimplemented, "no WIT") })
	_, err := c.FetchWITSVID(t.Context(), "")
	assert.Equal(t, codes.Unimplemented, status.Code(err))
}

func TestNew(t *testing.T) {
	t.Run("address from environment", func(t *testing.T) {
		srv := newFakeServer()
		f := newFixture(t)
		srv.x509 = f.x509Response("/a")
		e := startEndpoint(t, srv)
		t.Setenv(SocketEnv, e.addr) // WE rule 8: fall back to the variable
		svid, err := FetchX509SVID(t.Context())
		require.NoError(t, err)
		assert.Equal(t, f.id("/a"), svid.ID)
	})
	t.Run("not configured", func(t *testing.T) {
		t.Setenv(SocketEnv, "")
		_, err := New(t.Context())
		assert.EqualError(t, err, "workloadapi: workload endpoint socket address is not configured")
	})
	t.Run("invalid address", func(t *testing.T) {
		_, err := New(t.Context(), WithAddr("http://127.0.0.1:1"))
		assert.ErrorIs(t, err, ErrInvalidEndpointScheme)
	})
	t.Run("canceled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := New(ctx, WithAddr("unix:///tmp/x.sock"))
		assert.ErrorIs(t, err, context.Canceled)
	})
	t.Run("tcp", func(t *testing.T) {
		c, err := New(t.Context(), WithAddr("tcp://127.0.0.1:1"), WithLogger(nil), WithBackoffStrategy(nil))
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err = c.FetchX509SVID(ctx)
		assert.Equal(t, codes.Unavailable, status.Code(err))
		require.NoError(t, c.Close())
		assert.Error(t, c.Close())
	})
}

func TestConvenienceFunctions(t *testing.T) {
	f := newFixture(t)
	srv := newFakeServer()
	srv.x509 = f.x509Response("/a", "/b")
	srv.x509B = f.x509Bundles()
	srv.jwtB = f.jwtBundles()
	srv.jwtSVID = f.jwtHandler(time.Minute, "/a")
	srv.witSVIDs = &workloadpb.WITSVIDResponse{Svids: []*workloadpb.WITSVID{f.witSVID("/a", "")}}
	srv.witB = f.witBundles()
	e := startEndpoint(t, srv)
	ctx := t.Context()
	opt := WithAddr(e.addr)

	svid, err := FetchX509SVID(ctx, opt)
	require.NoError(t, err)
	assert.Equal(t, f.id("/a"), svid.ID)
	svids, err := FetchX509SVIDs(ctx, opt)
	require.NoError(t, err)
	assert.Len(t, svids, 2)
	x509Ctx, err := FetchX509Context(ctx, opt)
	require.NoError(t, err)
	assert.Len(t, x509Ctx.SVIDs, 2)
	x509Bundles, err := FetchX509Bundles(ctx, opt)
	require.NoError(t, err)
	assert.Equal(t, 1, x509Bundles.Len())
	jwtSVID, err := FetchJWTSVID(ctx, jwtsvid.Params{Audience: "a"}, opt)
	require.NoError(t, err)
	assert.Equal(t, f.id("/a"), jwtSVID.ID)
	jwtSVIDs, err := FetchJWTSVIDs(ctx, jwtsvid.Params{Audience: "a"}, opt)
	require.NoError(t, err)
	assert.Len(t, jwtSVIDs, 1)
	jwtBundles, err := FetchJWTBundles(ctx, opt)
	require.NoError(t, err)
	assert.Equal(t, 1, jwtBundles.Len())
	srv.set(func(s *fakeServer) {
		s.validate = func(req *workloadpb.ValidateJWTSVIDRequest) (*workloadpb.ValidateJWTSVIDResponse, error) {
			return &workloadpb.ValidateJWTSVIDResponse{SpiffeId: f.id("/a").String()}, nil
		}
	})
	validated, err := ValidateJWTSVID(ctx, jwtSVID.Marshal(), "a", opt)
	require.NoError(t, err)
	assert.Equal(t, f.id("/a"), validated.ID)
	witSVID, err := FetchWITSVID(ctx, "", opt)
	require.NoError(t, err)
	assert.Equal(t, f.id("/a"), witSVID.ID)
	witSVIDs, err := FetchWITSVIDs(ctx, f.id("/a").String(), opt)
	require.NoError(t, err)
	assert.Len(t, witSVIDs, 1)
	witBundles, err := FetchWITBundles(ctx, opt)
	require.NoError(t, err)
	assert.Equal(t, 1, witBundles.Len())

	// The package-level watches run until ctx is done.
	wctx, cancel := context.WithCancel(ctx)
	w := newRecorder()
	errCh := make(chan error, 3)
	go func() { errCh <- WatchX509Context(wctx, w, opt) }()
	go func() { errCh <- WatchX509Bundles(wctx, w, opt) }()
	go func() { errCh <- WatchJWTBundles(wctx, w, opt) }()
	w.waitX509(t, 1)
	w.waitX509Bundles(t, 1)
	w.waitJWTBundles(t, 1)
	cancel()
	for range 3 {
		assert.ErrorIs(t, <-errCh, context.Canceled)
	}

	_, err = FetchX509SVID(ctx, WithAddr("bad"))
	assert.ErrorIs(t, err, ErrInvalidEndpointScheme)
	assert.ErrorIs(t, WatchX509Context(ctx, w, WithAddr("bad")), ErrInvalidEndpointScheme)
}

// recorder is a watcher for every kind of watch that records what it gets.
type recorder struct {
	mu          sync.Mutex
	x509        []*X509Context
	x509Bundles []*x509bundle.Set
	jwtBundles  []*jwtbundle.Set
	witSVIDs    [][]*witsvid.SVID
	witBundles  []*witbundle.Set
	errs        []error
}

func newRecorder() *recorder { return &recorder{} }

func (r *recorder) OnX509ContextUpdate(c *X509Context) {
	r.mu.Lock()
	r.x509 = append(r.x509, c)
	r.mu.Unlock()
}
func (r *recorder) OnX509ContextWatchError(err error) { r.addErr(err) }
func (r *recorder) OnX509BundlesUpdate(s *x509bundle.Set) {
	r.mu.Lock()
	r.x509Bundles = append(r.x509Bundles, s)
	r.mu.Unlock()
}
func (r *recorder) OnX509BundlesWatchError(err error) { r.addErr(err) }
func (r *recorder) OnJWTBundlesUpdate(s *jwtbundle.Set) {
	r.mu.Lock()
	r.jwtBundles = append(r.jwtBundles, s)
	r.mu.Unlock()
}
func (r *recorder) OnJWTBundlesWatchError(err error) { r.addErr(err) }
func (r *recorder) OnWITSVIDsUpdate(s []*witsvid.SVID) {
	r.mu.Lock()
	r.witSVIDs = append(r.witSVIDs, s)
	r.mu.Unlock()
}
func (r *recorder) OnWITSVIDsWatchError(err error) { r.addErr(err) }
func (r *recorder) OnWITBundlesUpdate(s *witbundle.Set) {
	r.mu.Lock()
	r.witBundles = append(r.witBundles, s)
	r.mu.Unlock()
}
func (r *recorder) OnWITBundlesWatchError(err error) { r.addErr(err) }

func (r *recorder) addErr(err error) { r.mu.Lock(); r.errs = append(r.errs, err); r.mu.Unlock() }

func (r *recorder) lastX509() *X509Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.x509[len(r.x509)-1]
}

func (r *recorder) hasErr(match func(error) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, err := range r.errs {
		if match(err) {
			return true
		}
	}
	return false
}

func waitN(t *testing.T, mu *sync.Mutex, n int, length func() int) {
	t.Helper()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return length() >= n
	}, 10*time.Second, 5*time.Millisecond)
}

func (r *recorder) waitX509(t *testing.T, n int) {
	t.Helper()
	waitN(t, &r.mu, n, func() int { return len(r.x509) })
}

func (r *recorder) waitX509Bundles(t *testing.T, n int) {
	t.Helper()
	waitN(t, &r.mu, n, func() int { return len(r.x509Bundles) })
}

func (r *recorder) waitJWTBundles(t *testing.T, n int) {
	t.Helper()
	waitN(t, &r.mu, n, func() int { return len(r.jwtBundles) })
}

func (r *recorder) waitErrs(t *testing.T, n int) {
	t.Helper()
	waitN(t, &r.mu, n, func() int { return len(r.errs) })
}
