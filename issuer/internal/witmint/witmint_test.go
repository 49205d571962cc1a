package witmint

import (
	"context"
	"crypto"
	"errors"
	"fmt"
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
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

var (
	td    = spiffeid.RequireTrustDomainFromString("example.org")
	webID = spiffeid.RequireFromPath(td, "/web")
	web   = registry.Entry{ID: "web", SPIFFEID: webID, Revision: 1}
)

// fixture is a Minter whose signer signs with WIT key k1 or k2, or fails,
// and whose keys and clock a test sets.
type fixture struct {
	mu      sync.Mutex
	keys    map[string]*ca.WITAuthority
	kid     string
	err     error
	calls   int
	gone    map[string]bool
	tainted map[string]bool
	clock   atomic.Int64
	signed  atomic.Int32
	failed  atomic.Int32
	log     *logtest.Buffer
	m       *Minter
}

func (f *fixture) Signed(svidType string, n, failed int, _ time.Duration) {
	if svidType == SVIDType && n == 1 {
		f.signed.Add(1)
		f.failed.Add(int32(failed))
	}
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{keys: map[string]*ca.WITAuthority{}, kid: "k1", gone: map[string]bool{}, tainted: map[string]bool{}, log: &logtest.Buffer{}}
	for _, kid := range []string{"k1", "k2"} {
		a, err := ca.NewWITAuthority(ca.WITAuthorityConfig{Signer: testca.NewECKey(t), KeyID: kid, TrustDomain: td, NotAfter: time.Now().Add(24 * time.Hour)})
		require.NoError(t, err)
		f.keys[kid] = a
	}
	f.m = New(Config{
		Sign: func(ctx context.Context, e registry.Entry, key crypto.Signer) (string, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.calls++
			if f.err != nil {
				return "", f.err
			}
			return f.keys[f.kid].SignWITSVID(ctx, ca.WITSVIDParams{ID: e.SPIFFEID, PublicKey: key.Public(), KeyAlgorithm: KeyAlgorithm, TTL: time.Hour})
		},
		Fail: func(e registry.Entry, err error) error { return fmt.Errorf("entry %s: %w", e.ID, err) },
		Trusted: func(kid string) bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			return !f.gone[kid] && !f.tainted[kid]
		},
		Tainted: func(kid string) bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.tainted[kid]
		},
		Now:      func() time.Time { return time.Now().Add(time.Duration(f.clock.Load())) },
		Observer: f,
		Log:      f.log.Logger(),
	})
	return f
}

func (f *fixture) set(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

func (f *fixture) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// One WIT-SVID per entry, held until half its life, then renewed; each
// change counted.
func TestFor(t *testing.T) {
	f := newFixture(t)
	w, err := f.m.For(t.Context(), web)
	require.NoError(t, err)
	require.Equal(t, "k1", w.Kid)
	require.Equal(t, int64(1), w.Revision)
	require.Contains(t, w.Key, `"d"`, "the private key")
	again, err := f.m.For(t.Context(), web)
	require.NoError(t, err)
	require.Equal(t, w, again)
	require.Equal(t, 1, f.count())
	require.EqualValues(t, 1, f.m.Version())

	newer := web
	newer.Revision = 2
	_, err = f.m.For(t.Context(), newer)
	require.NoError(t, err)
	require.Equal(t, 2, f.count(), "a new revision: a new WIT-SVID")

	f.clock.Add(int64(31 * time.Minute))
	_, err = f.m.For(t.Context(), newer)
	require.NoError(t, err)
	require.Equal(t, 3, f.count(), "past half its life")
	require.EqualValues(t, 3, f.m.Version())
	require.EqualValues(t, 3, f.signed.Load())

	var ids []string
	f.m.Each(func(id string, _ WIT) { ids = append(ids, id) })
	require.Equal(t, []string{"web"}, ids)
}

// While the signer fails the WIT-SVID held is served until it expires;
// Unimplemented is never covered up.
func TestSignerFails(t *testing.T) {
	f := newFixture(t)
	w, err := f.m.For(t.Context(), web)
	require.NoError(t, err)
	f.set(func() { f.err = errors.New("the server is away") })
	f.clock.Add(int64(40 * time.Minute))
	got, err := f.m.For(t.Context(), web)
	require.NoError(t, err)
	require.Equal(t, w, got)
	require.True(t, f.log.Contains("serving the cached one"))
	require.EqualValues(t, 1, f.failed.Load())

	f.set(func() { f.err = fmt.Errorf("no WIT key: %w", endpoint.ErrUnimplemented) })
	_, err = f.m.For(t.Context(), web)
	require.ErrorIs(t, err, endpoint.ErrUnimplemented)
	require.NotContains(t, err.Error(), "entry web", "Unimplemented is not Fail's")

	f.set(func() { f.err = errors.New("the server is away") })
	f.clock.Add(int64(time.Hour))
	_, err = f.m.For(t.Context(), web)
	require.EqualError(t, err, "entry web: the server is away")
}

// A WIT-SVID of a key tainted or gone is never served; one the signer
// signs with a tainted key is refused.
func TestKeysNotTrusted(t *testing.T) {
	f := newFixture(t)
	w, err := f.m.For(t.Context(), web)
	require.NoError(t, err)
	f.set(func() { f.gone["k1"] = true; f.kid = "k2" })
	got, err := f.m.For(t.Context(), web)
	require.NoError(t, err)
	require.NotEqual(t, w.Token, got.Token)
	require.Equal(t, "k2", got.Kid)

	f.set(func() { f.tainted["k2"] = true })
	_, err = f.m.For(t.Context(), web)
	require.ErrorContains(t, err, `signed by the tainted key "k2"`)
}

// A token that names another identity, or has expired, is refused.
func TestBadTokens(t *testing.T) {
	f := newFixture(t)
	f.m.cfg.Sign = func(context.Context, registry.Entry, crypto.Signer) (string, error) { return "x", nil }
	_, err := f.m.For(t.Context(), web)
	require.ErrorContains(t, err, "not a compact JWS")

	f = newFixture(t)
	f.m.cfg.Observer = nil
	f.clock.Add(int64(3 * time.Hour)) // the token's hour has passed by the issuer's clock
	_, err = f.m.For(t.Context(), web)
	require.ErrorContains(t, err, "expired")
}

func TestRestoreAndDrops(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	w := WIT{Revision: 1, Kid: "k1", Token: "t1", Expiry: now.Add(time.Hour), RefreshAt: now.Add(30 * time.Minute)}
	require.True(t, f.m.Restore("a", w, now))
	require.False(t, f.m.Restore("a", w, now), "one is held already")
	require.Zero(t, f.m.Version(), "Restore does not count")
	f.m.Restored()
	require.EqualValues(t, 1, f.m.Version())
	w2 := w
	w2.Kid = "k2"
	require.True(t, f.m.Restore("b", w2, now))

	require.Zero(t, f.m.DropTainted(map[string]bool{"k3": true}))
	require.EqualValues(t, 1, f.m.Version(), "nothing dropped: no change")
	require.Equal(t, 1, f.m.DropTainted(map[string]bool{"k1": true}))
	require.EqualValues(t, 2, f.m.Version())
	n, gone := f.m.DropUntrusted(func(string) bool { return true })
	require.Zero(t, n)
	require.Nil(t, gone)
	n, gone = f.m.DropUntrusted(func(kid string) bool { return kid != "k2" })
	require.Equal(t, 1, n)
	require.Equal(t, []string{"k2"}, gone)
	require.EqualValues(t, 3, f.m.Version())
}
