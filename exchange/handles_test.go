package exchange_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/exchange"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// fakeRedeemer is a HandleRedeemer over a map: each handle is given once,
// unless check refuses it. Package launch's Server is the real one; its
// tests run it through this endpoint.
type fakeRedeemer struct {
	mu      sync.Mutex
	handles map[string]registry.Entry
	fail    error
	// ignoreCheck: a redeemer that does not call check.
	ignoreCheck bool
}

func (f *fakeRedeemer) Redeem(_ context.Context, handle string, check func(registry.Entry) error) (registry.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return registry.Entry{}, f.fail
	}
	e, ok := f.handles[handle]
	if !ok {
		return registry.Entry{}, fmt.Errorf("%w: unknown or used handle", exchange.ErrInvalidToken)
	}
	if check != nil && !f.ignoreCheck {
		if err := check(e); err != nil {
			return registry.Entry{}, err
		}
	}
	delete(f.handles, handle)
	return e, nil
}

// spent reports whether handle was redeemed (or never existed).
func (f *fakeRedeemer) spent(handle string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.handles[handle]
	return !ok
}

func handleForm(handle string, form url.Values) url.Values {
	form.Set("subject_token", handle)
	form.Set("subject_token_type", exchange.TokenTypeLaunchHandle)
	return form
}

func launchEntry(path string, expires time.Time) registry.Entry {
	return registry.Entry{
		ID: "0123456789abcdef0123456789abcdef", SPIFFEID: spiffeid.RequireFromPath(td, path),
		ParentID:    spiffeid.RequireFromPath(td, "/spiffekit/launch"),
		Selectors:   []attest.Selector{{Type: "launch", Value: "handle:x"}},
		X509SVIDTTL: time.Hour, JWTSVIDTTL: time.Hour, ExpiresAt: expires,
	}
}

func TestLaunchHandle(t *testing.T) {
	now := time.Now()
	red := &fakeRedeemer{handles: map[string]registry.Entry{
		"x509-secret":     launchEntry("/sandbox/a", now.Add(10*time.Minute)),
		"jwt-secret":      launchEntry("/sandbox/b", now.Add(10*time.Minute)),
		"reserved-secret": launchEntry("/spiffekit/server", now.Add(10*time.Minute)),
		"foreign-secret":  {SPIFFEID: spiffeid.RequireFromString("spiffe://other.org/x"), ExpiresAt: now.Add(time.Minute)},
		"expired-secret":  launchEntry("/sandbox/c", now.Add(-time.Second)),
		"other-secret":    launchEntry("/sandbox/d", now.Add(10*time.Minute)),
		"noexpiry-secret": launchEntry("/sandbox/e", time.Time{}),
	}}
	e := newEnv(t, func(c *exchange.Config) { c.Handles = red; c.Now = func() time.Time { return now } })

	// An X509-SVID for a CSR: the entry's SPIFFE ID, ending with the
	// launch (10 minutes) rather than the entry's SVID TTL (an hour).
	key := newKey(t)
	a := e.post(t, handleForm("x509-secret", x509Form(t, "", key)))
	require.Equal(t, http.StatusOK, a.status, a.err.Description)
	chain := parseChain(t, a.resp.AccessToken)
	id, _, err := x509svid.Verify(chain, e.ca.x509Bundle(), x509svid.WithTime(now))
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/sandbox/a", id.String())
	assert.False(t, chain[0].NotAfter.After(now.Add(10*time.Minute)), "the SVID outlives its launch: %v", chain[0].NotAfter)
	assert.Equal(t, exchange.TokenTypeX509SVID, a.resp.IssuedTokenType)

	// The same handle again: refused, and nothing minted.
	minted := e.ca.minted()
	a = e.post(t, handleForm("x509-secret", x509Form(t, "", key)))
	assert.Equal(t, http.StatusBadRequest, a.status)
	assert.Equal(t, "invalid_request", a.err.Error)
	assert.Equal(t, minted, e.ca.minted())

	// A JWT-SVID for an audience.
	a = e.post(t, handleForm("jwt-secret", jwtForm("", "db")))
	require.Equal(t, http.StatusOK, a.status, a.err.Description)
	svid, err := jwtsvid.ParseAndValidate(a.resp.AccessToken, e.ca.jwtBundle(), []string{"db"})
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/sandbox/b", svid.ID.String())

	// Security rules: what the redeemer hands over is still checked.
	for _, tt := range []struct {
		name, handle, code string
		form               url.Values
	}{
		{"reserved ID never issued", "reserved-secret", "invalid_request", jwtForm("", "db")},
		{"foreign ID never issued", "foreign-secret", "invalid_request", jwtForm("", "db")},
		{"expired launch", "expired-secret", "invalid_request", jwtForm("", "db")},
		{"spiffe_id not the launch's", "other-secret", "invalid_target", func() url.Values {
			f := jwtForm("", "db")
			f.Set("spiffe_id", "spiffe://example.org/sandbox/zzz")
			return f
		}()},
		{"unknown handle", "nope", "invalid_request", jwtForm("", "db")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			minted := e.ca.minted()
			a := e.post(t, handleForm(tt.handle, tt.form))
			assert.Equal(t, http.StatusBadRequest, a.status)
			assert.Equal(t, tt.code, a.err.Error)
			assert.Equal(t, minted, e.ca.minted(), "nothing is minted")
			if tt.handle != "nope" {
				assert.False(t, red.spent(tt.handle), "a request refused before signing leaves the handle unspent")
			}
		})
	}

	// The handle refused with another spiffe_id obtains the launch's.
	other := jwtForm("", "db")
	other.Set("spiffe_id", "spiffe://example.org/sandbox/d")
	a = e.post(t, handleForm("other-secret", other))
	require.Equal(t, http.StatusOK, a.status, a.err.Description)
	assert.Equal(t, "spiffe://example.org/sandbox/d", a.resp.SPIFFEID)
	assert.True(t, red.spent("other-secret"))

	// A redeemer that does not call check: its entry is checked after,
	// and refused all the same.
	red.mu.Lock()
	red.ignoreCheck = true
	red.mu.Unlock()
	for handle, code := range map[string]string{"reserved-secret": "invalid_request", "expired-secret": "invalid_request"} {
		minted := e.ca.minted()
		a := e.post(t, handleForm(handle, jwtForm("", "db")))
		assert.Equal(t, http.StatusBadRequest, a.status, handle)
		assert.Equal(t, code, a.err.Error, handle)
		assert.Equal(t, minted, e.ca.minted(), "nothing is minted for %s", handle)
	}
	red.mu.Lock()
	red.ignoreCheck = false
	red.mu.Unlock()

	// An entry without an expiry keeps its own SVID TTL.
	a = e.post(t, handleForm("noexpiry-secret", x509Form(t, "", key)))
	require.Equal(t, http.StatusOK, a.status, a.err.Description)
	chain = parseChain(t, a.resp.AccessToken)
	assert.True(t, chain[0].NotAfter.After(now.Add(50*time.Minute)), "the entry's TTL of an hour applies: %v", chain[0].NotAfter)

	// The audit lines name the launch's entry, never the handle.
	var granted int
	for _, l := range e.logs.lines(t) {
		if l["msg"] == "token exchanged" {
			granted++
			assert.Equal(t, "launch_handle", l["subject_token_type"])
			assert.NotEmpty(t, l["entry_id"])
		}
	}
	assert.Equal(t, 4, granted)
	assert.NotContains(t, e.logs.String(), "-secret", "no handle in the log")

	// A redeemer's own failure is a server error, not a refusal.
	red.mu.Lock()
	red.fail = errors.New("store down")
	red.mu.Unlock()
	a = e.post(t, handleForm("anything", jwtForm("", "db")))
	assert.Equal(t, http.StatusInternalServerError, a.status)
}

func TestLaunchHandleNotAccepted(t *testing.T) {
	e := newEnv(t)
	a := e.post(t, handleForm("h", jwtForm("", "db")))
	assert.Equal(t, http.StatusBadRequest, a.status)
	assert.Equal(t, "invalid_request", a.err.Error)

	// Without issuers, a redeemer is enough; without both, nothing is.
	_, err := exchange.New(exchange.Config{TrustDomain: td, Entries: e.idx, Minter: e.ca, Handles: &fakeRedeemer{}})
	require.NoError(t, err)
	_, err = exchange.New(exchange.Config{TrustDomain: td, Entries: e.idx, Minter: e.ca})
	require.ErrorIs(t, err, exchange.ErrInvalidConfig)
}

func TestParseRequestLaunchHandle(t *testing.T) {
	r, err := exchange.ParseRequest([]byte(handleForm("h", jwtForm("", "db")).Encode()))
	require.NoError(t, err)
	assert.Equal(t, exchange.TokenTypeLaunchHandle, r.SubjectTokenType)
	assert.Equal(t, "h", r.SubjectToken)
}
