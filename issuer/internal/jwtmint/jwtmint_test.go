package jwtmint

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	td    = spiffeid.RequireTrustDomainFromString("example.org")
	webID = spiffeid.RequireFromPath(td, "/web")
	web   = registry.Entry{ID: "web", SPIFFEID: webID, Revision: 1}
	aud   = []string{"db"}
)

// signer signs with the authority of the key a test makes active, or
// fails with err; it counts its calls.
type signer struct {
	mu    sync.Mutex
	keys  map[string]*ca.JWTAuthority
	kid   string
	err   error
	calls int
}

func newSigner(t *testing.T, kids ...string) *signer {
	s := &signer{keys: make(map[string]*ca.JWTAuthority)}
	for _, kid := range kids {
		a, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: testca.NewECKey(t), KeyID: kid, TrustDomain: td, NotAfter: time.Now().Add(24 * time.Hour)})
		require.NoError(t, err)
		s.keys[kid] = a
	}
	s.kid = kids[0]
	return s
}

func (s *signer) sign(ctx context.Context, e registry.Entry, audience []string, ttl time.Duration) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.err != nil {
		return "", s.err
	}
	return s.keys[s.kid].SignJWTSVID(ctx, ca.JWTSVIDParams{ID: e.SPIFFEID, Audience: audience, TTL: ttl})
}

func (s *signer) set(kid string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kid, s.err = kid, err
}

func (s *signer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

type observer struct{ signed, failed atomic.Int32 }

func (o *observer) Signed(svidType string, n, failed int, _ time.Duration) {
	if svidType == SVIDType && n == 1 {
		o.signed.Add(1)
		o.failed.Add(int32(failed))
	}
}

// keys is what the issuer trusts, as a test sets it.
type keys struct {
	mu      sync.Mutex
	gone    map[string]bool
	tainted map[string]bool
}

func (k *keys) trusted(kid string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return !k.gone[kid] && !k.tainted[kid]
}

func (k *keys) isTainted(kid string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.tainted[kid]
}

type fixture struct {
	s     *signer
	k     *keys
	o     *observer
	clock atomic.Int64 // offset from the real time
	log   *logtest.Buffer
	m     *Minter
}

func newFixture(t *testing.T, reporting bool) *fixture {
	f := &fixture{s: newSigner(t, "k1", "k2"), k: &keys{gone: map[string]bool{}, tainted: map[string]bool{}}, o: &observer{}, log: &logtest.Buffer{}}
	cfg := Config{
		Sign: f.s.sign, Trusted: f.k.trusted, Tainted: f.k.isTainted, TTL: time.Hour,
		Now: func() time.Time { return time.Now().Add(time.Duration(f.clock.Load())) }, Observer: f.o, Log: f.log.Logger(),
	}
	if reporting {
		cfg.ActiveKeyID = func() string {
			f.s.mu.Lock()
			defer f.s.mu.Unlock()
			return f.s.kid
		}
	}
	f.m = New(cfg)
	return f
}

func (f *fixture) advance(d time.Duration) { f.clock.Add(int64(d)) }

// A token is reused until half its life, then signed again.
func TestReuse(t *testing.T) {
	f := newFixture(t, false)
	first, err := f.m.For(t.Context(), web, aud)
	require.NoError(t, err)
	again, err := f.m.For(t.Context(), web, aud)
	require.NoError(t, err)
	require.Equal(t, first, again)
	require.Equal(t, 1, f.s.count())
	// Another audience, or another revision, is another token.
	_, err = f.m.For(t.Context(), web, []string{"other"})
	require.NoError(t, err)
	newer := web
	newer.Revision = 2
	_, err = f.m.For(t.Context(), newer, aud)
	require.NoError(t, err)
	require.Equal(t, 3, f.s.count())

	f.advance(31 * time.Minute)
	_, err = f.m.For(t.Context(), web, aud)
	require.NoError(t, err)
	require.Equal(t, 4, f.s.count(), "past half its life: signed again")
	require.EqualValues(t, 4, f.o.signed.Load())
	require.Zero(t, f.o.failed.Load())
}

// With a signer that names its active key, a new key is a new token.
func TestActiveKeyChange(t *testing.T) {
	f := newFixture(t, true)
	_, err := f.m.For(t.Context(), web, aud)
	require.NoError(t, err)
	f.s.set("k2", nil)
	_, err = f.m.For(t.Context(), web, aud)
	require.NoError(t, err)
	require.Equal(t, 2, f.s.count())
}

// While the signer fails, the cached token is served until three quarters
// of its life; then the caller is told to retry.
func TestSignerFails(t *testing.T) {
	f := newFixture(t, false)
	first, err := f.m.For(t.Context(), web, aud)
	require.NoError(t, err)
	f.s.set("k1", errors.New("the server is away"))
	f.advance(40 * time.Minute)
	got, err := f.m.For(t.Context(), web, aud)
	require.NoError(t, err)
	require.Equal(t, first, got)
	require.True(t, f.log.Contains("serving the cached one"))
	require.EqualValues(t, 1, f.o.failed.Load())

	f.advance(10 * time.Minute)
	_, err = f.m.For(t.Context(), web, aud)
	require.EqualError(t, err, "the server is away")
}

// The token of a tainted key is never served; a cached one of a key gone
// from the bundle is replaced.
func TestKeysNotTrusted(t *testing.T) {
	f := newFixture(t, false)
	first, err := f.m.For(t.Context(), web, aud)
	require.NoError(t, err)
	f.k.mu.Lock()
	f.k.gone["k1"] = true
	f.k.mu.Unlock()
	f.s.set("k2", nil)
	second, err := f.m.For(t.Context(), web, aud)
	require.NoError(t, err)
	require.NotEqual(t, first, second)

	f.k.mu.Lock()
	f.k.tainted["k2"] = true
	f.k.mu.Unlock()
	_, err = f.m.For(t.Context(), web, aud)
	require.ErrorContains(t, err, `signed by the tainted key "k2"`)
}

// A token that expired, or is no JWS, is refused.
func TestBadTokens(t *testing.T) {
	f := newFixture(t, false)
	f.m.cfg.Sign = func(context.Context, registry.Entry, []string, time.Duration) (string, error) {
		return "not a token", nil
	}
	_, err := f.m.For(t.Context(), web, aud)
	require.ErrorContains(t, err, "not a compact JWS")

	f.m.cfg.Sign = f.s.sign
	f.m.cfg.Observer = nil
	f.advance(48 * time.Hour) // after the key's own expiry: the token is already expired
	_, err = f.m.For(t.Context(), web, aud)
	require.Error(t, err)
}

// An entry's own TTL wins over the default.
func TestEntryTTL(t *testing.T) {
	f := newFixture(t, false)
	var got time.Duration
	f.m.cfg.Sign = func(ctx context.Context, e registry.Entry, audience []string, ttl time.Duration) (string, error) {
		got = ttl
		return f.s.sign(ctx, e, audience, ttl)
	}
	short := web
	short.JWTSVIDTTL = time.Minute
	_, err := f.m.For(t.Context(), short, aud)
	require.NoError(t, err)
	require.Equal(t, time.Minute, got)
}

func TestDrops(t *testing.T) {
	f := newFixture(t, true)
	_, err := f.m.For(t.Context(), web, aud)
	require.NoError(t, err)
	f.s.set("k2", nil)
	_, err = f.m.For(t.Context(), web, []string{"other"})
	require.NoError(t, err)
	require.Equal(t, 1, f.m.DropTainted(map[string]bool{"k1": true}))
	n, gone := f.m.DropUntrusted(func(kid string) bool { return kid != "k2" })
	require.Equal(t, 1, n)
	require.Equal(t, []string{"k2"}, gone)
	f.s.set("k1", nil)
	_, err = f.m.For(t.Context(), web, aud)
	require.NoError(t, err)
	require.Equal(t, 3, f.s.count(), "the dropped token was signed again")
}
