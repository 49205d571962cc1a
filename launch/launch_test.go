package launch_test

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/exchange"
	"github.com/spiffekit/spiffekit/launch"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestLaunchRedeemEnd(t *testing.T) {
	e := newEnv(t)
	id := spiffeid.RequireFromPath(td, "/sandbox/42")
	l, err := e.ls.Launch(t.Context(), launch.Params{SPIFFEID: id, TTL: 10 * time.Minute, Hint: "job 42"})
	require.NoError(t, err)
	assert.Equal(t, id, l.SPIFFEID)
	assert.Equal(t, e.clock.Now().Add(10*time.Minute), l.ExpiresAt)
	// The SVID lifetimes default to an hour and five minutes, cut to the
	// launch.
	assert.Equal(t, 10*time.Minute, l.X509SVIDTTL)
	assert.Equal(t, 5*time.Minute, l.JWTSVIDTTL)
	require.True(t, strings.HasPrefix(l.Handle, l.ID+"."))
	assert.Len(t, l.Handle, 32+1+43, "a 256-bit secret in base64url")

	// The entry: parented in the reserved namespace, expiring with the
	// launch, holding the digest of the handle and not the handle.
	stored, err := e.store.Get(t.Context(), l.ID)
	require.NoError(t, err)
	assert.Equal(t, launch.ParentID(td), stored.ParentID)
	assert.Equal(t, "spiffe://example.org/spiffekit/launch", stored.ParentID.String())
	assert.Equal(t, l.ExpiresAt, stored.ExpiresAt)
	assert.Equal(t, "job 42", stored.Hint)
	require.Len(t, stored.Selectors, 1)
	assert.Equal(t, launch.SelectorType, stored.Selectors[0].Type)
	assert.Regexp(t, "^handle:[0-9a-f]{64}$", stored.Selectors[0].Value)
	secret := strings.TrimPrefix(l.Handle, l.ID+".")
	assert.NotContains(t, stored.Selectors[0].Value, secret)

	info, err := e.ls.Get(t.Context(), l.ID)
	require.NoError(t, err)
	assert.Equal(t, launch.Info{ID: l.ID, SPIFFEID: id, Hint: "job 42", ExpiresAt: l.ExpiresAt}, info)

	got, err := e.ls.Redeem(t.Context(), l.Handle, nil)
	require.NoError(t, err)
	assert.Equal(t, id, got.SPIFFEID)
	assert.Equal(t, l.ExpiresAt, got.ExpiresAt)
	info, err = e.ls.Get(t.Context(), l.ID)
	require.NoError(t, err)
	assert.True(t, info.Redeemed)

	// Single use.
	_, err = e.ls.Redeem(t.Context(), l.Handle, nil)
	require.ErrorIs(t, err, exchange.ErrInvalidToken)
	assert.ErrorContains(t, err, "already redeemed")

	require.NoError(t, e.ls.End(t.Context(), l.ID))
	_, err = e.store.Get(t.Context(), l.ID)
	require.ErrorIs(t, err, registry.ErrNotFound)
	require.ErrorIs(t, e.ls.End(t.Context(), l.ID), launch.ErrNotFound)
	_, err = e.ls.Get(t.Context(), l.ID)
	require.ErrorIs(t, err, launch.ErrNotFound)

	// One audit line per launch, redemption and end; never the handle.
	assert.Len(t, e.logs.lines(t, "launch created"), 1)
	assert.Len(t, e.logs.lines(t, "launch redeemed"), 1)
	ended := e.logs.lines(t, "launch ended")
	require.Len(t, ended, 1)
	assert.Equal(t, true, ended[0]["redeemed"])
	assert.NotContains(t, e.logs.String(), secret)
}

func TestRedeemRefused(t *testing.T) {
	e := newEnv(t)
	l := e.launch(t, "/sandbox/a")
	id, secret, _ := strings.Cut(l.Handle, ".")
	other := e.launch(t, "/sandbox/b")
	_, otherSecret, _ := strings.Cut(other.Handle, ".")
	plain, err := e.store.Create(t.Context(), registry.Entry{
		SPIFFEID: spiffeid.RequireFromPath(td, "/w"), ParentID: spiffeid.RequireFromPath(td, "/spiffekit/agent/x"),
		Selectors: []attest.Selector{{Type: "unix", Value: "uid:0"}},
	})
	require.NoError(t, err)
	flip := func(s string) string {
		if s[0] == 'A' {
			return "B" + s[1:]
		}
		return "A" + s[1:]
	}
	for _, tt := range []struct{ name, handle, want string }{
		{"empty", "", "no '.'"},
		{"no dot", id + secret, "no '.'"},
		{"bad ID", "ZZ." + secret, "ID is malformed"},
		{"short secret", id + "." + secret[:42], "secret is malformed"},
		{"padded secret", id + "." + secret + "=", "secret is malformed"},
		{"not base64url", id + "." + strings.Repeat("*", 43), "secret is malformed"},
		{"too long", id + "." + strings.Repeat("A", 200), "too long"},
		// Another launch's secret under this launch's ID.
		{"wrong secret", id + "." + otherSecret, "wrong secret"},
		{"one character off", id + "." + flip(secret), "wrong secret"},
		{"unknown launch", "0123456789abcdef0123456789abcdef." + secret, "no launch"},
		// An ordinary entry's ID is never a launch.
		{"not a launch", plain.ID + "." + secret, "not a launch"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.ls.Redeem(t.Context(), tt.handle, nil)
			require.ErrorIs(t, err, exchange.ErrInvalidToken)
			assert.ErrorContains(t, err, tt.want)
			if tt.handle != "" {
				assert.NotContains(t, err.Error(), secret, "the error holds no secret")
			}
		})
	}
	// A wrong secret does not burn the launch.
	got, err := e.ls.Redeem(t.Context(), l.Handle, nil)
	require.NoError(t, err)
	assert.Equal(t, "/sandbox/a", got.SPIFFEID.Path())

	// An expired handle is refused, and stays unredeemed until pruned.
	e.clock.Add(launch.DefaultTTL)
	_, err = e.ls.Redeem(t.Context(), other.Handle, nil)
	require.ErrorIs(t, err, exchange.ErrInvalidToken)
	assert.ErrorContains(t, err, "expired")

	// An ended launch is refused.
	l = e.launch(t, "/sandbox/c")
	require.NoError(t, e.ls.End(t.Context(), l.ID))
	_, err = e.ls.Redeem(t.Context(), l.Handle, nil)
	require.ErrorIs(t, err, exchange.ErrInvalidToken)
}

// A launch entry whose SPIFFE ID is another trust domain's (written to the
// store by other means than Launch) is never redeemed.
func TestRedeemForeignEntry(t *testing.T) {
	e := newEnv(t)
	l := e.launch(t, "/sandbox/a")
	stored, err := e.store.Get(t.Context(), l.ID)
	require.NoError(t, err)
	stored.SPIFFEID = spiffeid.RequireFromString("spiffe://other.org/sandbox/a")
	_, err = e.store.Update(t.Context(), stored)
	require.NoError(t, err)
	_, err = e.ls.Redeem(t.Context(), l.Handle, nil)
	require.ErrorIs(t, err, exchange.ErrInvalidToken)
	assert.ErrorContains(t, err, "may not be issued")
}

// An entry under the launches' parent without an expiry (written by other
// means than Launch) is never redeemed: it would give an identity without
// end.
func TestRedeemEntryWithoutExpiry(t *testing.T) {
	e := newEnv(t)
	l := e.launch(t, "/sandbox/a")
	stored, err := e.store.Get(t.Context(), l.ID)
	require.NoError(t, err)
	stored.ExpiresAt = time.Time{}
	_, err = e.store.Update(t.Context(), stored)
	require.NoError(t, err)
	_, err = e.ls.Redeem(t.Context(), l.Handle, nil)
	require.ErrorIs(t, err, exchange.ErrInvalidToken)
	assert.ErrorContains(t, err, "no expiry")
}

// Of concurrent redemptions of one handle, exactly one wins: over the
// in-memory store and over SQLite, as servers sharing a database see it.
func TestConcurrentRedeem(t *testing.T) {
	t.Run("memstore", func(t *testing.T) { concurrentRedeem(t, newEnv(t)) })
	t.Run("sqlite", func(t *testing.T) {
		e := newEnv(t)
		st, err := sqlstore.Open(t.Context(), sqlstore.Config{Dialect: sqlstore.SQLite, DSN: filepath.Join(t.TempDir(), "db"), Now: e.clock.Now})
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		// Two servers over one database.
		e.ls, err = launch.New(launch.Config{TrustDomain: td, Entries: st, Now: e.clock.Now})
		require.NoError(t, err)
		other, err := launch.New(launch.Config{TrustDomain: td, Entries: st, Now: e.clock.Now})
		require.NoError(t, err)
		concurrentRedeem(t, e, other)
	})
}

func concurrentRedeem(t *testing.T, e *env, others ...*launch.Server) {
	servers := append([]*launch.Server{e.ls}, others...)
	l := e.launch(t, "/sandbox/a")
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, refused := 0, 0
	for i := range 16 {
		wg.Go(func() {
			_, err := servers[i%len(servers)].Redeem(t.Context(), l.Handle, nil)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				won++
			} else if assert.ErrorIs(t, err, exchange.ErrInvalidToken) {
				refused++
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 1, won, "exactly one redemption wins")
	assert.Equal(t, 15, refused)
}

func TestLaunchRefused(t *testing.T) {
	e := newEnv(t, func(c *launch.Config) { c.MaxTTL = time.Hour })
	p := func(id string, mod func(*launch.Params)) launch.Params {
		var p launch.Params
		if id != "" {
			p.SPIFFEID = spiffeid.RequireFromString(id)
		}
		if mod != nil {
			mod(&p)
		}
		return p
	}
	for _, tt := range []struct {
		name string
		p    launch.Params
		want string
	}{
		{"no SPIFFE ID", p("", nil), "no SPIFFE ID"},
		{"no path", p("spiffe://example.org", nil), "has no path"},
		{"foreign trust domain", p("spiffe://other.org/x", nil), "not in trust domain"},
		// The server's and the agents' namespace (registry.Reserved).
		{"the server's ID", p("spiffe://example.org/spiffekit/server", nil), "reserved"},
		{"an agent's ID", p("spiffe://example.org/spiffekit/agent/join_token/x", nil), "reserved"},
		{"the reserved root", p("spiffe://example.org/spiffekit", nil), "reserved"},
		{"the launch parent", p("spiffe://example.org/spiffekit/launch", nil), "reserved"},
		{"TTL too short", p("spiffe://example.org/x", func(p *launch.Params) { p.TTL = time.Second }), "TTL"},
		{"TTL over the maximum", p("spiffe://example.org/x", func(p *launch.Params) { p.TTL = 2 * time.Hour }), "TTL"},
		{"negative TTL", p("spiffe://example.org/x", func(p *launch.Params) { p.TTL = -time.Minute }), "TTL"},
		{"X509-SVID past the launch", p("spiffe://example.org/x", func(p *launch.Params) { p.TTL = time.Minute; p.X509SVIDTTL = time.Hour }), "X509-SVID"},
		{"JWT-SVID too short", p("spiffe://example.org/x", func(p *launch.Params) { p.JWTSVIDTTL = time.Millisecond }), "JWT-SVID"},
		{"hint with a control character", p("spiffe://example.org/x", func(p *launch.Params) { p.Hint = "a\nb" }), "hint"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.ls.Launch(t.Context(), tt.p)
			require.ErrorIs(t, err, launch.ErrInvalid)
			require.ErrorIs(t, err, registry.ErrInvalid)
			assert.ErrorContains(t, err, tt.want)
			// One prefix, then the reason: not the registry's words too.
			assert.True(t, strings.HasPrefix(err.Error(), "launch: invalid launch: "), err.Error())
			assert.NotContains(t, err.Error(), "invalid argument")
		})
	}
	entries, _, err := e.store.List(t.Context(), registry.Filter{}, registry.Page{})
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing refused was stored")

	// Explicit lifetimes within the launch are kept.
	l, err := e.ls.Launch(t.Context(), p("spiffe://example.org/x", func(p *launch.Params) {
		p.TTL, p.X509SVIDTTL, p.JWTSVIDTTL = time.Hour, 30*time.Minute, time.Minute
	}))
	require.NoError(t, err)
	assert.Equal(t, 30*time.Minute, l.X509SVIDTTL)
	assert.Equal(t, time.Minute, l.JWTSVIDTTL)
}

// TestPathPrefixes: with prefixes, a launcher launches the IDs below them
// only, at a segment boundary.
func TestPathPrefixes(t *testing.T) {
	e := newEnv(t, func(c *launch.Config) { c.PathPrefixes = []string{"/sandbox", "/ci/jobs"} })
	for _, path := range []string{"/sandbox", "/sandbox/42", "/ci/jobs/7/step"} {
		_, err := e.ls.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, path)})
		require.NoError(t, err, path)
	}
	for _, path := range []string{"/sandboxes", "/web", "/ci", "/ci/jobsx/1", "/x/sandbox"} {
		_, err := e.ls.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, path)})
		require.ErrorIs(t, err, launch.ErrInvalid, path)
		require.EqualError(t, err, `launch: invalid launch: SPIFFE ID "spiffe://example.org`+path+`" is outside the paths launches may take (/sandbox, /ci/jobs)`)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(c *launch.Config) { c.Rate, c.Burst = 0.001, 2 })
	e.launch(t, "/a")
	e.launch(t, "/b")
	_, err := e.ls.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/c")})
	require.ErrorIs(t, err, launch.ErrRateLimited)
	// A refused launch costs no token.
	_, err = e.ls.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/spiffekit/x")})
	require.ErrorIs(t, err, launch.ErrInvalid)
}

func TestStoreFailures(t *testing.T) {
	e := newEnv(t)
	fs := &failingStore{Store: e.store}
	ls, err := launch.New(launch.Config{TrustDomain: td, Entries: fs, Now: e.clock.Now})
	require.NoError(t, err)
	l, err := ls.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/a")})
	require.NoError(t, err)
	fs.fail(errDown)
	_, err = ls.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/b")})
	require.ErrorIs(t, err, errDown)
	_, err = ls.Redeem(t.Context(), l.Handle, nil)
	require.ErrorIs(t, err, errDown)
	require.NotErrorIs(t, err, exchange.ErrInvalidToken, "a store failure is not a refusal")
	_, err = ls.Get(t.Context(), l.ID)
	require.ErrorIs(t, err, errDown)
	require.ErrorIs(t, ls.End(t.Context(), l.ID), errDown)
}

func TestNewRefuses(t *testing.T) {
	store := memstore.New(memstore.Config{})
	for _, tt := range []struct {
		name string
		cfg  launch.Config
	}{
		{"no trust domain", launch.Config{Entries: store}},
		{"no store", launch.Config{TrustDomain: td}},
		{"default TTL too short", launch.Config{TrustDomain: td, Entries: store, DefaultTTL: time.Second}},
		{"maximum TTL too long", launch.Config{TrustDomain: td, Entries: store, MaxTTL: 48 * time.Hour}},
		{"default past the maximum", launch.Config{TrustDomain: td, Entries: store, DefaultTTL: time.Hour, MaxTTL: time.Minute}},
		{"negative rate", launch.Config{TrustDomain: td, Entries: store, Rate: -1}},
		{"negative maximum of live launches", launch.Config{TrustDomain: td, Entries: store, MaxLive: -1}},
		{"negative uid", launch.Config{TrustDomain: td, Entries: store, AllowedUIDs: []int{-1}}},
		{"prefix not a path", launch.Config{TrustDomain: td, Entries: store, PathPrefixes: []string{"sandbox"}}},
		{"empty prefix", launch.Config{TrustDomain: td, Entries: store, PathPrefixes: []string{""}}},
		{"prefix with a trailing slash", launch.Config{TrustDomain: td, Entries: store, PathPrefixes: []string{"/sandbox/"}}},
		{"prefix in the reserved namespace", launch.Config{TrustDomain: td, Entries: store, PathPrefixes: []string{"/spiffekit/launch"}}},
		{"the reserved root as a prefix", launch.Config{TrustDomain: td, Entries: store, PathPrefixes: []string{"/spiffekit"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := launch.New(tt.cfg)
			require.ErrorIs(t, err, launch.ErrInvalidConfig)
		})
	}
}

// TestRedeemCheck: check sees the launch's entry once the handle is found
// genuine; its refusal is returned as it is and leaves the handle
// unspent, so that a request that can be honoured redeems it after. A
// wrong secret never reaches check.
func TestRedeemCheck(t *testing.T) {
	e := newEnv(t)
	l := e.launch(t, "/sandbox/check")
	refused := errors.New("not this one")
	var seen []registry.Entry
	check := func(en registry.Entry) error {
		seen = append(seen, en)
		return refused
	}
	_, err := e.ls.Redeem(t.Context(), l.Handle, check)
	require.ErrorIs(t, err, refused)
	require.Len(t, seen, 1)
	assert.Equal(t, l.ID, seen[0].ID)
	assert.Equal(t, l.SPIFFEID, seen[0].SPIFFEID)
	info, err := e.ls.Get(t.Context(), l.ID)
	require.NoError(t, err)
	assert.False(t, info.Redeemed, "a refused check spends nothing")

	wrong := l.ID + "." + strings.Repeat("A", 43)
	_, err = e.ls.Redeem(t.Context(), wrong, check)
	require.ErrorIs(t, err, exchange.ErrInvalidToken)
	assert.Len(t, seen, 1, "check is not called for a wrong secret")

	got, err := e.ls.Redeem(t.Context(), l.Handle, func(registry.Entry) error { return nil })
	require.NoError(t, err)
	assert.Equal(t, l.SPIFFEID, got.SPIFFEID)
	_, err = e.ls.Redeem(t.Context(), l.Handle, check)
	require.ErrorIs(t, err, exchange.ErrInvalidToken, "single use: once redeemed, check or not")
	assert.Len(t, seen, 1, "check is not called for a redeemed launch")
	assert.Contains(t, e.logs.String(), "launch redemption refused, the handle unspent")
	assert.NotContains(t, e.logs.String(), l.Handle[len(l.ID)+1:], "no secret in the log")
}
