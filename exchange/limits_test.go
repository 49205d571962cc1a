package exchange_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/exchange"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// claimsAt are honest claims valid at now.
func (e *env) claimsAt(sub string, now time.Time) map[string]any {
	c := e.iss.Claims(sub, audience)
	c["iat"], c["nbf"], c["exp"] = now.Unix(), now.Unix(), now.Add(5*time.Minute).Unix()
	return c
}

func TestSubjectRateLimit(t *testing.T) {
	clk := newClock()
	e := newEnv(t, func(c *exchange.Config) {
		c.SubjectRate, c.SubjectBurst, c.Now = 1, 2, clk.now
	})
	e.register(t, "spiffe://example.org/alice", spiffeid.ID{}, e.sub("alice"))
	e.register(t, "spiffe://example.org/bob", spiffeid.ID{}, e.sub("bob"))
	alice := e.iss.Mint(t, e.claimsAt("alice", clk.now()))
	for range 2 {
		require.Equal(t, http.StatusOK, e.post(t, jwtForm(alice, "x")).status)
	}
	a := e.post(t, jwtForm(alice, "x"))
	assert.Equal(t, http.StatusTooManyRequests, a.status)
	assert.Equal(t, "temporarily_unavailable", a.err.Error)
	assert.Equal(t, "1", a.header.Get("Retry-After"))
	// Another subject has a bucket of its own.
	bob := e.iss.Mint(t, e.claimsAt("bob", clk.now()))
	assert.Equal(t, http.StatusOK, e.post(t, jwtForm(bob, "x")).status)
	// The bucket fills again with time.
	clk.add(time.Second)
	assert.Equal(t, http.StatusOK, e.post(t, jwtForm(alice, "x")).status)
	assert.Contains(t, e.logs.String(), "subject rate limit")
}

func TestGlobalRateLimit(t *testing.T) {
	e := newEnv(t, func(c *exchange.Config) { c.Rate, c.Burst = 1e-9, 2 })
	e.register(t, "spiffe://example.org/alice", spiffeid.ID{}, e.sub("alice"))
	tok := e.iss.Mint(t, e.iss.Claims("alice", audience))
	assert.Equal(t, http.StatusOK, e.post(t, jwtForm(tok, "x")).status)
	assert.Equal(t, http.StatusBadRequest, e.post(t, jwtForm("junk", "x")).status, "a refused token counts too")
	a := e.post(t, jwtForm(tok, "x"))
	assert.Equal(t, http.StatusTooManyRequests, a.status)
	assert.Contains(t, e.logs.String(), "global rate limit")
}

// TestManySubjects: a flood of subjects keeps a bounded number of buckets
// and does not lock out anyone.
func TestManySubjects(t *testing.T) {
	clk := newClock()
	e := newEnv(t, func(c *exchange.Config) { c.MaxSubjects, c.SubjectBurst, c.Now = 3, 1, clk.now })
	e.register(t, "spiffe://example.org/team", spiffeid.ID{}, e.claim("team", "a"))
	for i := range 10 {
		c := e.claimsAt(fmt.Sprintf("user-%d", i), clk.now())
		c["team"] = "a"
		require.Equal(t, http.StatusOK, e.post(t, jwtForm(e.iss.Mint(t, c), "x")).status, i)
		if i == 5 {
			clk.add(time.Minute) // every bucket full again
		}
	}
	assert.LessOrEqual(t, exchange.SubjectBuckets(e.h), 3)
}

// TestKeyCache: the issuer's keys are fetched once, again for a key ID they
// lack (at most once per interval), kept while the issuer fails, and given
// up after a day of failures.
func TestKeyCache(t *testing.T) {
	clk := newClock()
	e := newEnv(t, func(c *exchange.Config) { c.Now = clk.now })
	e.register(t, "spiffe://example.org/alice", spiffeid.ID{}, e.sub("alice"))
	ok := func() int {
		t.Helper()
		return e.post(t, jwtForm(e.iss.Mint(t, e.claimsAt("alice", clk.now())), "x")).status
	}
	require.Equal(t, http.StatusOK, ok())
	require.Equal(t, http.StatusOK, ok())
	assert.EqualValues(t, 1, e.iss.Fetches(), "fetched once")

	// A rotated key is fetched when a token names it.
	e.iss.Rotate(t, jose.RS256)
	clk.add(31 * time.Second)
	require.Equal(t, http.StatusOK, ok())
	assert.EqualValues(t, 2, e.iss.Fetches())

	// Key IDs the keys lack cause at most one fetch per interval.
	e.iss.Rotate(t, jose.ES384)
	require.Equal(t, http.StatusBadRequest, ok(), "within the interval, the keys are not fetched again")
	assert.EqualValues(t, 2, e.iss.Fetches())
	clk.add(31 * time.Second)
	require.Equal(t, http.StatusOK, ok())
	assert.EqualValues(t, 3, e.iss.Fetches())

	// While the issuer fails, the keys it published are used.
	e.iss.SetFailing(true)
	clk.add(2 * time.Hour)
	require.Equal(t, http.StatusOK, ok())
	assert.EqualValues(t, 4, e.iss.Fetches(), "stale keys are fetched again")
	clk.add(25 * time.Hour)
	require.Equal(t, http.StatusBadRequest, ok(), "keys a day past their lifetime are no longer used")
	assert.Contains(t, e.logs.String(), "could not be fetched")
	e.iss.SetFailing(false)
	clk.add(time.Minute)
	require.Equal(t, http.StatusOK, ok())
}

func TestIssuerDown(t *testing.T) {
	e := newEnv(t)
	e.register(t, "spiffe://example.org/alice", spiffeid.ID{}, e.sub("alice"))
	e.iss.SetFailing(true)
	tok := e.iss.Mint(t, e.iss.Claims("alice", audience))
	a := e.post(t, jwtForm(tok, "x"))
	assert.Equal(t, http.StatusBadRequest, a.status)
	a = e.post(t, jwtForm(tok, "x"))
	assert.Equal(t, http.StatusBadRequest, a.status)
	assert.EqualValues(t, 1, e.iss.Fetches(), "a failing issuer is not asked again at once")
	assert.Contains(t, e.logs.String(), "status 503")
}

// TestDiscoveryRefused: a discovery document that names another issuer,
// or keys off https, is refused.
func TestDiscoveryRefused(t *testing.T) {
	for _, tt := range []struct {
		name, doc, reason string
	}{
		{"another issuer", `{"issuer":"https://evil.example","jwks_uri":"%s/jwks"}`, "another issuer"},
		{"keys over http", `{"issuer":"%[1]s","jwks_uri":"http://127.0.0.1/jwks"}`, "not an https URL"},
		{"no keys", `{"issuer":"%[1]s"}`, "no jwks_uri"},
		{"not JSON", `<html>`, "discovery document"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.register(t, "spiffe://example.org/alice", spiffeid.ID{}, e.sub("alice"))
			e.iss.SetDiscovery(fmt.Appendf(nil, tt.doc, e.iss.URL))
			a := e.post(t, jwtForm(e.iss.Mint(t, e.iss.Claims("alice", audience)), "x"))
			assert.Equal(t, http.StatusBadRequest, a.status)
			assert.Contains(t, e.logs.String(), tt.reason)
		})
	}
}
