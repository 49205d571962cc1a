package oauthsvid_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/exp/oauthsvid"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func newValidator(t testing.TB, d *domain, mod func(*oauthsvid.Config)) *oauthsvid.Validator {
	t.Helper()
	cfg := oauthsvid.Config{
		Issuer:      issuer,
		JWTBundles:  jwtbundle.NewSet(d.jwtBundle()),
		X509Bundles: x509bundle.NewSet(d.x509Bundle()),
		Clients: oauthsvid.Registry{
			"spiffe://example.org/client":              oauthsvid.MustParsePattern("spiffe://example.org/client"),
			"spiffe://example.org/other":               oauthsvid.MustParsePattern("spiffe://example.org/other"),
			"https://example.org/client/metadata.json": oauthsvid.MustParsePattern("spiffe://example.org/agents/*"),
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	v, err := oauthsvid.NewValidator(cfg)
	require.NoError(t, err)
	return v
}

// TestAuthenticateJWT tries to break each rule of
// draft-ietf-oauth-spiffe-client-auth-02 §3.1 and of RFC 6749's token
// requests, one row at a time.
func TestAuthenticateJWT(t *testing.T) {
	d := newDomain(t, "example.org")
	other := newDomain(t, "other.test")

	type row struct {
		name     string
		req      func(t *testing.T) *http.Request
		mod      func(*oauthsvid.Config)
		wantCode string // "": accepted
		wantID   string // the client identifier when accepted
	}
	form := func(mod func(url.Values)) func(t *testing.T) *http.Request {
		return func(t *testing.T) *http.Request {
			f := assertionForm(d.token(t, "/client", issuer))
			mod(f)
			return tokenRequest(f)
		}
	}
	rows := []row{
		{name: "ok", req: form(func(url.Values) {}), wantID: "spiffe://example.org/client"},
		{name: "ok with client_id", req: form(func(f url.Values) { f.Set("client_id", "spiffe://example.org/client") }), wantID: "spiffe://example.org/client"},
		{name: "ok: a Client ID Metadata Document client with a wildcard", req: func(t *testing.T) *http.Request {
			f := assertionForm(d.token(t, "/agents/1234", issuer))
			f.Set("client_id", "https://example.org/client/metadata.json")
			return tokenRequest(f)
		}, wantID: "https://example.org/client/metadata.json"},

		// The JWT-SVID.
		{name: "aud is the token endpoint, not the issuer", req: func(t *testing.T) *http.Request {
			return tokenRequest(assertionForm(d.token(t, "/client", tokenURL)))
		}, wantCode: "invalid_client"},
		{name: "aud another server", req: func(t *testing.T) *http.Request {
			return tokenRequest(assertionForm(d.token(t, "/client", "https://other.example")))
		}, wantCode: "invalid_client"},
		{name: "aud the issuer and another", req: func(t *testing.T) *http.Request {
			return tokenRequest(assertionForm(d.token(t, "/client", issuer, "https://other.example")))
		}, wantCode: "invalid_client"},
		{name: "expired", req: func(t *testing.T) *http.Request {
			old, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: d.key, TrustDomain: d.td, Now: func() time.Time { return time.Now().Add(-time.Hour) }})
			require.NoError(t, err)
			token, err := old.SignJWTSVID(t.Context(), ca.JWTSVIDParams{ID: d.id("/client"), Audience: []string{issuer}, TTL: 5 * time.Minute})
			require.NoError(t, err)
			return tokenRequest(assertionForm(token))
		}, wantCode: "invalid_client"},
		{name: "from a trust domain not trusted", req: func(t *testing.T) *http.Request {
			return tokenRequest(assertionForm(other.token(t, "/client", issuer)))
		}, wantCode: "invalid_client"},
		{name: "signed by another trust domain's key for this one", req: func(t *testing.T) *http.Request {
			rogue, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: other.key, KeyID: d.jwt.KeyID()})
			require.NoError(t, err)
			token, err := rogue.SignJWTSVID(t.Context(), ca.JWTSVIDParams{ID: d.id("/client"), Audience: []string{issuer}})
			require.NoError(t, err)
			return tokenRequest(assertionForm(token))
		}, wantCode: "invalid_client"},
		{name: "signature tampered", req: form(func(f url.Values) {
			a := f.Get("client_assertion")
			f.Set("client_assertion", a[:len(a)-4]+"AAAA")
		}), wantCode: "invalid_client"},
		{name: "not a JWT", req: form(func(f url.Values) { f.Set("client_assertion", "secret") }), wantCode: "invalid_client"},
		{name: "assertion missing", req: form(func(f url.Values) { f.Del("client_assertion") }), wantCode: "invalid_client"},
		{name: "RFC 7523's jwt-bearer type", req: form(func(f url.Values) {
			f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		}), wantCode: "invalid_client"},
		{name: "assertion type missing", req: form(func(f url.Values) { f.Del("client_assertion_type") }), wantCode: "invalid_client"},

		// The client.
		{name: "SPIFFE ID of no registered client", req: func(t *testing.T) *http.Request {
			return tokenRequest(assertionForm(d.token(t, "/stranger", issuer)))
		}, wantCode: "invalid_client"},
		{name: "client_id of another client", req: form(func(f url.Values) { f.Set("client_id", "spiffe://example.org/other") }), wantCode: "invalid_client"},
		{name: "wildcard matches whole segments only", req: func(t *testing.T) *http.Request {
			f := assertionForm(d.token(t, "/agents1234", issuer))
			f.Set("client_id", "https://example.org/client/metadata.json")
			return tokenRequest(f)
		}, wantCode: "invalid_client"},
		{name: "JWT-SVID method turned off", req: form(func(url.Values) {}), mod: func(c *oauthsvid.Config) { c.JWTBundles = nil }, wantCode: "invalid_client"},

		// The request.
		{name: "GET", req: func(t *testing.T) *http.Request {
			return httptest.NewRequest(http.MethodGet, tokenURL+"?"+assertionForm(d.token(t, "/client", issuer)).Encode(), nil)
		}, wantCode: "invalid_request"},
		{name: "JSON body", req: func(t *testing.T) *http.Request {
			r := tokenRequest(assertionForm(d.token(t, "/client", issuer)))
			r.Header.Set("Content-Type", "application/json")
			return r
		}, wantCode: "invalid_request"},
		{name: "assertion in the URL only", req: func(t *testing.T) *http.Request {
			r := tokenRequest(url.Values{"grant_type": {"client_credentials"}})
			r.URL.RawQuery = assertionForm(d.token(t, "/client", issuer)).Encode()
			return r
		}, wantCode: "invalid_client"},
		{name: "assertion repeated", req: form(func(f url.Values) { f.Add("client_assertion", f.Get("client_assertion")) }), wantCode: "invalid_request"},
		{name: "a client secret as well", req: form(func(f url.Values) { f.Set("client_secret", "s3cret") }), wantCode: "invalid_request"},
		{name: "HTTP Basic as well", req: func(t *testing.T) *http.Request {
			r := tokenRequest(assertionForm(d.token(t, "/client", issuer)))
			r.SetBasicAuth("spiffe://example.org/client", "s3cret")
			return r
		}, wantCode: "invalid_request"},
		{name: "body over the limit", req: form(func(f url.Values) {
			f.Set("scope", strings.Repeat("s", oauthsvid.MaxRequestSize))
		}), wantCode: "invalid_request"},
		{name: "no authentication", req: func(t *testing.T) *http.Request {
			return tokenRequest(url.Values{"grant_type": {"client_credentials"}})
		}, wantCode: "invalid_client"},
	}
	for _, tt := range rows {
		t.Run(tt.name, func(t *testing.T) {
			v := newValidator(t, d, tt.mod)
			c, err := v.Authenticate(tt.req(t))
			if tt.wantCode == "" {
				require.NoError(t, err)
				assert.Equal(t, tt.wantID, c.ClientID)
				assert.Equal(t, oauthsvid.MethodJWT, c.Method)
				assert.Equal(t, []string{issuer}, c.JWTSVID.Audience)
				return
			}
			e, ok := errors.AsType[*oauthsvid.Error](err)
			require.True(t, ok, "%v", err)
			assert.Equal(t, tt.wantCode, e.Code, "%v", err)
			assert.Nil(t, c)
		})
	}
}

// TestAuthenticateX509 runs the X509-SVID method over real mutual TLS and
// tries to break §3.2's rules.
func TestAuthenticateX509(t *testing.T) {
	d := newDomain(t, "example.org")
	other := newDomain(t, "other.test")

	var v *oauthsvid.Validator
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := v.Authenticate(r)
		if err != nil {
			oauthsvid.WriteError(w, err)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"client": c.ClientID, "method": c.Method})
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())

	post := func(t *testing.T, hc *http.Client, form url.Values) (int, string) {
		t.Helper()
		resp, err := hc.PostForm(srv.URL+"/token", form)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	client := oauthsvid.MTLSHTTPClient(d.x509SVID(t, "/client"), roots)
	t.Cleanup(client.CloseIdleConnections)
	stranger := oauthsvid.MTLSHTTPClient(other.x509SVID(t, "/client"), roots)
	t.Cleanup(stranger.CloseIdleConnections)

	v = newValidator(t, d, nil)
	code, body := post(t, client, url.Values{"grant_type": {"client_credentials"}, "client_id": {"spiffe://example.org/client"}})
	require.Equal(t, http.StatusOK, code, body)
	assert.JSONEq(t, `{"client":"spiffe://example.org/client","method":"spiffe_x509"}`, body)

	code, body = post(t, client, url.Values{"grant_type": {"client_credentials"}})
	assert.Equal(t, http.StatusBadRequest, code, "client_id missing")
	assert.JSONEq(t, `{"error":"invalid_request","error_description":"client_id is required"}`, body)
	code, _ = post(t, client, url.Values{"client_id": {"spiffe://example.org/other"}})
	assert.Equal(t, http.StatusUnauthorized, code, "client_id of another client")
	code, _ = post(t, stranger, url.Values{"client_id": {"spiffe://other.test/client"}})
	assert.Equal(t, http.StatusUnauthorized, code, "certificate of an untrusted trust domain")
	code, _ = post(t, client, assertionForm(d.token(t, "/client", issuer)))
	assert.Equal(t, http.StatusBadRequest, code, "certificate and assertion")
	unregistered := oauthsvid.MTLSHTTPClient(d.x509SVID(t, "/stranger"), roots)
	t.Cleanup(unregistered.CloseIdleConnections)
	code, _ = post(t, unregistered, url.Values{"client_id": {"spiffe://example.org/stranger"}})
	assert.Equal(t, http.StatusUnauthorized, code, "unregistered client")

	v = newValidator(t, d, func(c *oauthsvid.Config) { c.X509Bundles = nil })
	code, _ = post(t, client, url.Values{"client_id": {"spiffe://example.org/client"}})
	assert.Equal(t, http.StatusUnauthorized, code, "X.509 method turned off")
	assert.Equal(t, []string{oauthsvid.MethodJWT}, v.Methods())
}

func TestNewValidatorErrors(t *testing.T) {
	d := newDomain(t, "example.org")
	reg := oauthsvid.Registry{}
	for name, cfg := range map[string]oauthsvid.Config{
		"no issuer":  {JWTBundles: d.jwtBundle(), Clients: reg},
		"no clients": {Issuer: issuer, JWTBundles: d.jwtBundle()},
		"no bundles": {Issuer: issuer, Clients: reg},
	} {
		_, err := oauthsvid.NewValidator(cfg)
		require.Error(t, err, name)
	}
	v, err := oauthsvid.NewValidator(oauthsvid.Config{Issuer: issuer, JWTBundles: d.jwtBundle(), X509Bundles: d.x509Bundle(), Clients: reg})
	require.NoError(t, err)
	assert.Equal(t, []string{oauthsvid.MethodJWT, oauthsvid.MethodX509}, v.Methods())
}

func TestWriteError(t *testing.T) {
	rec := httptest.NewRecorder()
	oauthsvid.WriteError(rec, errors.New("anything"))
	assert.Equal(t, http.StatusUnauthorized, rec.Code)
	assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
	assert.JSONEq(t, `{"error":"invalid_client","error_description":"client authentication failed"}`, rec.Body.String())
	e := &oauthsvid.Error{Code: "invalid_request", Description: "d", Err: context.Canceled}
	assert.ErrorIs(t, e, context.Canceled)
	assert.Contains(t, e.Error(), "invalid_request: d")
	assert.Equal(t, "oauthsvid: invalid_client: x", (&oauthsvid.Error{Code: "invalid_client", Description: "x"}).Error())
}

func TestPattern(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		id      string
		match   bool
	}{
		{"spiffe://example.org/client/*", "spiffe://example.org/client/123", true},
		{"spiffe://example.org/client/*", "spiffe://example.org/client/a/b", true},
		{"spiffe://example.org/client/*", "spiffe://example.org/client123", false},
		{"spiffe://example.org/client/*", "spiffe://example.org/client", false},
		{"spiffe://example.org/client/*", "spiffe://other.test/client/123", false},
		{"spiffe://example.org/client", "spiffe://example.org/client", true},
		{"spiffe://example.org/client", "spiffe://example.org/client/1", false},
	} {
		p, err := oauthsvid.ParsePattern(tc.pattern)
		require.NoError(t, err)
		assert.Equal(t, tc.pattern, p.String())
		assert.Equal(t, tc.match, p.Match(spiffeid.RequireFromString(tc.id)), "%s ~ %s", tc.pattern, tc.id)
	}
	for _, bad := range []string{"spiffe://example.org/*/x", "spiffe://example.org/client*", "https://example.org/*", "", "spiffe://example.org/a/**"} {
		_, err := oauthsvid.ParsePattern(bad)
		require.Error(t, err, bad)
	}
	assert.Panics(t, func() { oauthsvid.MustParsePattern("nope") })
}
