package exchange_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/exchange"
	"github.com/spiffekit/spiffekit/internal/testing/oidctest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

func TestExchangeJWTSVID(t *testing.T) {
	e := newEnv(t)
	e.register(t, "spiffe://example.org/ci/app", spiffeid.ID{}, e.sub("repo:acme/app:ref:refs/heads/main"))
	claims := e.iss.Claims("repo:acme/app:ref:refs/heads/main", audience)
	token := e.iss.Mint(t, claims)

	a := e.post(t, jwtForm(token, "https://api.example.com", "other"))
	require.Equal(t, http.StatusOK, a.status, a.err)
	assert.Equal(t, "no-store", a.header.Get("Cache-Control"))
	assert.Equal(t, exchange.TokenTypeJWT, a.resp.IssuedTokenType)
	assert.Equal(t, "Bearer", a.resp.TokenType)
	assert.Equal(t, "spiffe://example.org/ci/app", a.resp.SPIFFEID)
	assert.Positive(t, a.resp.ExpiresIn)
	svid, err := jwtsvid.ParseAndValidate(a.resp.AccessToken, e.ca.jwtBundle(), []string{"https://api.example.com"})
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/ci/app", svid.ID.String())
	assert.ElementsMatch(t, []string{"https://api.example.com", "other"}, svid.Audience)

	// The audit line names the issuer, the subject and the SVID, never the token.
	logs := e.logs.String()
	assert.NotContains(t, logs, token)
	assert.NotContains(t, logs, a.resp.AccessToken)
	lines := e.logs.lines(t)
	require.Len(t, lines, 1)
	assert.Equal(t, "token exchanged", lines[0]["msg"])
	assert.Equal(t, e.iss.URL, lines[0]["issuer"])
	assert.Equal(t, "repo:acme/app:ref:refs/heads/main", lines[0]["subject"])
	assert.Equal(t, "spiffe://example.org/ci/app", lines[0]["spiffe_id"])
	assert.Equal(t, "jwt", lines[0]["svid_type"])
}

func TestExchangeX509SVID(t *testing.T) {
	e := newEnv(t)
	entry := e.register(t, "spiffe://example.org/ci/deploy", spiffeid.ID{}, e.claim("repository", "acme/app"), e.claim("groups", "deployers"))
	claims := e.iss.Claims("someone", audience)
	claims["repository"] = "acme/app"
	claims["groups"] = []string{"devs", "deployers"}
	key := newKey(t)

	// Requested implicitly by sending a CSR.
	form := x509Form(t, e.iss.Mint(t, claims), key)
	form.Del("requested_token_type")
	a := e.post(t, form)
	require.Equal(t, http.StatusOK, a.status, a.err)
	assert.Equal(t, exchange.TokenTypeX509SVID, a.resp.IssuedTokenType)
	assert.Equal(t, "N_A", a.resp.TokenType)
	chain := parseChain(t, a.resp.AccessToken)
	id, _, err := x509svid.Verify(chain, e.ca.x509Bundle())
	require.NoError(t, err)
	assert.Equal(t, entry.SPIFFEID, id)
	assert.True(t, key.PublicKey.Equal(chain[0].PublicKey), "the SVID certifies the CSR's key")

	lines := e.logs.lines(t)
	require.Len(t, lines, 1)
	assert.Equal(t, "x509", lines[0]["svid_type"])
	assert.Equal(t, chain[0].SerialNumber.Text(16), lines[0]["serial"])
	assert.Equal(t, entry.ID, lines[0]["entry_id"])
}

// TestRefusedTokens: each rule of the token's checks has a token that
// tries to break it, and is refused with invalid_request (RFC 8693 §2.2.2)
// before anything is minted.
func TestRefusedTokens(t *testing.T) {
	e := newEnv(t)
	e.register(t, "spiffe://example.org/ci/app", spiffeid.ID{}, e.sub("alice"))
	other := oidctest.New(t) // an issuer nobody configured
	now := time.Now()
	good := func() map[string]any { return e.iss.Claims("alice", audience) }
	with := func(k string, v any) map[string]any {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	require.Equal(t, http.StatusOK, e.post(t, jwtForm(e.iss.Mint(t, good()), "x")).status, "the honest token passes")

	// The current key's public key as an HMAC secret: algorithm confusion.
	pubSecret := e.iss.JWKS()
	for _, tt := range []struct {
		name, token, reason string
	}{
		{"unconfigured issuer", other.Mint(t, with("iss", other.URL)), `is not trusted`},
		{"unconfigured issuer claiming a trusted one", other.Mint(t, good()), `cryptographic primitive`},
		{"expired", e.iss.Mint(t, with("exp", now.Add(-time.Minute).Unix())), `expired at`},
		{"no expiry", e.iss.Mint(t, with("exp", nil)), `no expiry`},
		{"not yet valid", e.iss.Mint(t, with("nbf", now.Add(5*time.Minute).Unix())), `not valid before`},
		{"issued in the future", e.iss.Mint(t, with("iat", now.Add(5*time.Minute).Unix())), `issued in the future`},
		{"wrong audience", e.iss.Mint(t, with("aud", "spiffe://example.org/another")), `does not hold`},
		{"no audience", e.iss.Mint(t, with("aud", nil)), `does not hold`},
		{"no subject", e.iss.Mint(t, with("sub", nil)), `no subject`},
		{"wrong signature", e.iss.MintForeign(t, good()), `cryptographic primitive`},
		{"alg none", oidctest.Unsigned("key-1", good()), `"none"`},
		{"HMAC with the public key", oidctest.HMAC(t, pubSecret, "key-1", good()), `"HS256"`},
		{"no key ID", oidctest.Sign(t, jose.ES256, newKey(t), "", good()), `no key ID`},
		{"unknown key ID", oidctest.Sign(t, jose.ES256, newKey(t), "made-up", good()), `"made-up"`},
		{"subject with a control character", e.iss.Mint(t, with("sub", "alice\n")), `control character`},
		{"not a JWT", "not.a.jwt", `base64`},
		{"too large", strings.Repeat("a", exchange.MaxTokenSize+1), `larger than`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := e.ca.minted()
			a := e.post(t, jwtForm(tt.token, "x"))
			assert.Equal(t, http.StatusBadRequest, a.status)
			assert.Equal(t, "invalid_request", a.err.Error)
			assert.Equal(t, "the subject token is not acceptable", a.err.Description)
			assert.Equal(t, before, e.ca.minted(), "nothing minted")
			lines := e.logs.lines(t)
			last := lines[len(lines)-1]
			assert.Equal(t, "token exchange refused", last["msg"])
			assert.Contains(t, last["reason"], tt.reason, "refused for the reason the row tests")
		})
	}
	assert.Zero(t, other.Fetches(), "the keys of an unconfigured issuer are never fetched")
}

// TestAuthorization: an SVID is given only for an entry parented by
// ParentID whose selectors are all the token's.
func TestAuthorization(t *testing.T) {
	e := newEnv(t)
	agent := spiffeid.RequireFromString("spiffe://example.org/spiffekit/agent/join_token/x")
	e.register(t, "spiffe://example.org/agent-child", agent, e.sub("bob"))
	e.register(t, "spiffe://example.org/needs-two", spiffeid.ID{}, e.sub("carol"), e.claim("env", "prod"))
	e.register(t, "spiffe://example.org/dave/a", spiffeid.ID{}, e.sub("dave"))
	e.register(t, "spiffe://example.org/dave/b", spiffeid.ID{}, e.claim("team", "dave"))

	mint := func(sub string, extra map[string]any) string {
		c := e.iss.Claims(sub, audience)
		for k, v := range extra {
			c[k] = v
		}
		return e.iss.Mint(t, c)
	}
	t.Run("no entry", func(t *testing.T) {
		a := e.post(t, jwtForm(mint("nobody", nil), "x"))
		assert.Equal(t, http.StatusBadRequest, a.status)
		assert.Equal(t, "invalid_request", a.err.Error)
		assert.Equal(t, "no identity is registered for the subject token", a.err.Description)
	})
	t.Run("an agent's entry is not obtainable", func(t *testing.T) {
		a := e.post(t, jwtForm(mint("bob", nil), "x"))
		assert.Equal(t, http.StatusBadRequest, a.status)
	})
	t.Run("an entry needing a claim the token lacks", func(t *testing.T) {
		a := e.post(t, jwtForm(mint("carol", map[string]any{"env": "dev"}), "x"))
		assert.Equal(t, http.StatusBadRequest, a.status)
		a = e.post(t, jwtForm(mint("carol", map[string]any{"env": "prod"}), "x"))
		assert.Equal(t, http.StatusOK, a.status)
		assert.Equal(t, "spiffe://example.org/needs-two", a.resp.SPIFFEID)
	})
	t.Run("several entries need spiffe_id", func(t *testing.T) {
		tok := mint("dave", map[string]any{"team": "dave"})
		a := e.post(t, jwtForm(tok, "x"))
		assert.Equal(t, http.StatusBadRequest, a.status)
		assert.Equal(t, "invalid_target", a.err.Error)
		form := jwtForm(tok, "x")
		form.Set("spiffe_id", "spiffe://example.org/dave/b")
		a = e.post(t, form)
		require.Equal(t, http.StatusOK, a.status)
		assert.Equal(t, "spiffe://example.org/dave/b", a.resp.SPIFFEID)
		form.Set("spiffe_id", "spiffe://example.org/needs-two")
		a = e.post(t, form)
		assert.Equal(t, http.StatusBadRequest, a.status)
		assert.Equal(t, "invalid_target", a.err.Error)
	})
	t.Run("another issuer's selectors", func(t *testing.T) {
		// An entry for a subject of this issuer, asked for with a token of a
		// second configured issuer for the same subject.
		var iss2 *oidctest.Issuer
		e2 := newEnv(t, func(c *exchange.Config) {
			iss2 = oidctest.New(t) // after newEnv's leak check, so stopped before it
			c.Issuers = append(c.Issuers, exchange.Issuer{URL: iss2.URL, Audience: audience, Client: iss2.Client()})
		})
		e2.register(t, "spiffe://example.org/erin", spiffeid.ID{}, e2.sub("erin"))
		a := e2.post(t, jwtForm(iss2.Mint(t, iss2.Claims("erin", audience)), "x"))
		assert.Equal(t, http.StatusBadRequest, a.status)
		a = e2.post(t, jwtForm(e2.iss.Mint(t, e2.iss.Claims("erin", audience)), "x"))
		assert.Equal(t, http.StatusOK, a.status)
	})
}

// fixedEntries answers every lookup with the same entries, as a registry
// that does not leave out reserved IDs would.
type fixedEntries []registry.Entry

func (f fixedEntries) ForWorkload([]attest.Selector) []registry.Entry { return f }

// TestReservedNeverIssued: an entry of a reserved SPIFFE ID, or of another
// trust domain, is never used, even when the registry offers it.
func TestReservedNeverIssued(t *testing.T) {
	for _, id := range []string{
		"spiffe://example.org/spiffekit/server",
		"spiffe://example.org/spiffekit/agent/join_token/x",
		"spiffe://example.org/spiffekit",
		"spiffe://other.org/app",
	} {
		t.Run(id, func(t *testing.T) {
			e := newEnv(t, func(c *exchange.Config) {
				c.Entries = fixedEntries{{ID: "e1", SPIFFEID: spiffeid.RequireFromString(id), ParentID: exchange.ParentID(td)}}
			})
			a := e.post(t, jwtForm(e.iss.Mint(t, e.iss.Claims("mallory", audience)), "x"))
			assert.Equal(t, http.StatusBadRequest, a.status)
			assert.Zero(t, e.ca.minted())
		})
	}
}

func TestMintFailure(t *testing.T) {
	e := newEnv(t)
	e.register(t, "spiffe://example.org/app", spiffeid.ID{}, e.sub("alice"))
	e.ca.fail = errors.New("the CA has no active authority")
	a := e.post(t, jwtForm(e.iss.Mint(t, e.iss.Claims("alice", audience)), "x"))
	assert.Equal(t, http.StatusInternalServerError, a.status)
	assert.Equal(t, "server_error", a.err.Error)
	assert.NotContains(t, a.err.Description, "authority", "details stay in the log")
	assert.Contains(t, e.logs.String(), "the CA has no active authority")
	_, err := e.h.Exchange(t.Context(), exchange.Request{SubjectToken: e.iss.Mint(t, e.iss.Claims("alice", audience)), TokenType: exchange.TokenTypeX509SVID, PublicKey: newKey(t).Public()})
	require.Error(t, err)
	assert.False(t, errors.Is(err, exchange.ErrInvalidToken))
}

func TestExchangeDirect(t *testing.T) {
	e := newEnv(t)
	e.register(t, "spiffe://example.org/app", spiffeid.ID{}, e.sub("alice"))
	key := newKey(t)
	resp, err := e.h.Exchange(t.Context(), exchange.Request{
		SubjectToken: e.iss.Mint(t, e.iss.Claims("alice", audience)),
		TokenType:    exchange.TokenTypeX509SVID,
		PublicKey:    key.Public(),
	})
	require.NoError(t, err)
	chain := parseChain(t, resp.AccessToken)
	_, _, err = x509svid.Verify(chain, e.ca.x509Bundle())
	require.NoError(t, err)
	_, err = e.h.Exchange(t.Context(), exchange.Request{SubjectToken: "x.y.z", TokenType: exchange.TokenTypeJWT, Audience: []string{"a"}})
	require.ErrorIs(t, err, exchange.ErrInvalidToken)
	for _, r := range []exchange.Request{
		{SubjectToken: "x.y.z"},
		{SubjectToken: "x.y.z", TokenType: exchange.TokenTypeJWT},
		{SubjectToken: "x.y.z", TokenType: exchange.TokenTypeX509SVID},
		{SubjectToken: "x.y.z", TokenType: "urn:other", Audience: []string{"a"}},
	} {
		_, err = e.h.Exchange(t.Context(), r)
		require.ErrorIs(t, err, exchange.ErrInvalidRequest)
	}
	_, err = e.h.Exchange(t.Context(), exchange.Request{SubjectToken: e.iss.Mint(t, e.iss.Claims("nobody", audience)), TokenType: exchange.TokenTypeJWT, Audience: []string{"a"}})
	require.ErrorIs(t, err, exchange.ErrNotAuthorized)
}

func TestNewRefuses(t *testing.T) {
	ok := func() exchange.Config {
		return exchange.Config{
			TrustDomain: td,
			Issuers:     []exchange.Issuer{{URL: "https://issuer.example", Audience: "a"}},
			Entries:     fixedEntries{},
			Minter:      &testCA{},
		}
	}
	_, err := exchange.New(ok())
	require.NoError(t, err)
	for _, tt := range []struct {
		name string
		mod  func(*exchange.Config)
	}{
		{"no trust domain", func(c *exchange.Config) { c.TrustDomain = spiffeid.TrustDomain{} }},
		{"no issuer", func(c *exchange.Config) { c.Issuers = nil }},
		{"no entries", func(c *exchange.Config) { c.Entries = nil }},
		{"no minter", func(c *exchange.Config) { c.Minter = nil }},
		{"skew too large", func(c *exchange.Config) { c.ClockSkew = time.Hour }},
		{"negative skew", func(c *exchange.Config) { c.ClockSkew = -time.Second }},
		{"negative rate", func(c *exchange.Config) { c.Rate = -1 }},
		{"http issuer", func(c *exchange.Config) { c.Issuers[0].URL = "http://issuer.example" }},
		{"issuer with a query", func(c *exchange.Config) { c.Issuers[0].URL = "https://issuer.example/?a=b" }},
		{"issuer with a fragment", func(c *exchange.Config) { c.Issuers[0].URL = "https://issuer.example/#a" }},
		{"issuer with user info", func(c *exchange.Config) { c.Issuers[0].URL = "https://u@issuer.example" }},
		{"issuer not a URL", func(c *exchange.Config) { c.Issuers[0].URL = "https://a b\x7f" }},
		{"issuer like a selector", func(c *exchange.Config) { c.Issuers[0].URL = "https://issuer.example/x:sub:y" }},
		{"issuer with a control character", func(c *exchange.Config) { c.Issuers[0].URL = "https://issuer.example/\t" }},
		{"no audience", func(c *exchange.Config) { c.Issuers[0].Audience = "" }},
		{"issuer twice", func(c *exchange.Config) { c.Issuers = append(c.Issuers, c.Issuers[0]) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := ok()
			tt.mod(&c)
			_, err := exchange.New(c)
			require.ErrorIs(t, err, exchange.ErrInvalidConfig)
		})
	}
}

func TestParentID(t *testing.T) {
	id := exchange.ParentID(td)
	assert.Equal(t, "spiffe://example.org/spiffekit/exchange", id.String())
	assert.True(t, registry.Reserved(id))
	assert.False(t, registry.IsAgentID(id), "no agent is given the entries it parents")
}
