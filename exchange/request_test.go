package exchange_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/exchange"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestParseRequest(t *testing.T) {
	key := newKey(t)
	csr := csrOf(t, key)
	base := func() url.Values { return jwtForm("tok", "aud") }
	for _, tt := range []struct {
		name string
		mod  func(url.Values)
		code string // "" when it parses
	}{
		{"JWT-SVID", func(url.Values) {}, ""},
		{"id_token subject type", func(f url.Values) { f.Set("subject_token_type", exchange.TokenTypeIDToken) }, ""},
		{"JWT-SVID by default", func(f url.Values) { f.Del("requested_token_type") }, ""},
		{"X509-SVID", func(f url.Values) {
			f.Set("requested_token_type", exchange.TokenTypeX509SVID)
			f.Del("audience")
			f.Set("csr", csr)
		}, ""},
		{"padded csr", func(f url.Values) {
			f.Set("requested_token_type", exchange.TokenTypeX509SVID)
			f.Set("csr", csr+strings.Repeat("=", (4-len(csr)%4)%4))
		}, ""},
		{"spiffe_id", func(f url.Values) { f.Set("spiffe_id", "spiffe://example.org/app") }, ""},
		{"unknown parameters ignored (RFC 6749 §3.2)", func(f url.Values) { f.Set("scope", "x"); f.Set("resource", "https://r") }, ""},
		{"no grant_type", func(f url.Values) { f.Del("grant_type") }, "invalid_request"},
		{"another grant_type", func(f url.Values) { f.Set("grant_type", "client_credentials") }, "unsupported_grant_type"},
		{"grant_type twice", func(f url.Values) { f.Add("grant_type", exchange.GrantType) }, "invalid_request"},
		{"subject_token twice", func(f url.Values) { f.Add("subject_token", "tok2") }, "invalid_request"},
		{"no subject_token", func(f url.Values) { f.Del("subject_token") }, "invalid_request"},
		{"no subject_token_type", func(f url.Values) { f.Del("subject_token_type") }, "invalid_request"},
		{"SAML subject", func(f url.Values) { f.Set("subject_token_type", "urn:ietf:params:oauth:token-type:saml2") }, "invalid_request"},
		{"actor_token", func(f url.Values) { f.Set("actor_token", "a") }, "invalid_request"},
		{"actor_token_type", func(f url.Values) { f.Set("actor_token_type", exchange.TokenTypeJWT) }, "invalid_request"},
		{"another requested type", func(f url.Values) { f.Set("requested_token_type", "urn:ietf:params:oauth:token-type:access_token") }, "invalid_request"},
		{"JWT-SVID without audience", func(f url.Values) { f.Del("audience") }, "invalid_request"},
		{"empty audience", func(f url.Values) { f.Set("audience", "") }, "invalid_request"},
		{"audience with a newline", func(f url.Values) { f.Set("audience", "a\nb") }, "invalid_request"},
		{"audience too long", func(f url.Values) { f.Set("audience", strings.Repeat("a", 1025)) }, "invalid_request"},
		{"too many audiences", func(f url.Values) {
			for i := range exchange.MaxAudiences {
				f.Add("audience", string(rune('a'+i)))
			}
		}, "invalid_request"},
		{"JWT-SVID with a csr", func(f url.Values) { f.Set("csr", csr) }, "invalid_request"},
		{"X509-SVID without csr", func(f url.Values) { f.Set("requested_token_type", exchange.TokenTypeX509SVID) }, "invalid_request"},
		{"csr not base64url", func(f url.Values) {
			f.Set("requested_token_type", exchange.TokenTypeX509SVID)
			f.Set("csr", "***")
		}, "invalid_request"},
		{"csr not DER", func(f url.Values) {
			f.Set("requested_token_type", exchange.TokenTypeX509SVID)
			f.Set("csr", base64.RawURLEncoding.EncodeToString([]byte("not a csr")))
		}, "invalid_request"},
		{"csr with a bad signature", func(f url.Values) {
			f.Set("requested_token_type", exchange.TokenTypeX509SVID)
			f.Set("csr", badSignatureCSR(t))
		}, "invalid_request"},
		{"bad spiffe_id", func(f url.Values) { f.Set("spiffe_id", "https://example.org/app") }, "invalid_request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := base()
			tt.mod(f)
			r, err := exchange.ParseRequest([]byte(f.Encode()))
			if tt.code == "" {
				require.NoError(t, err)
				assert.Equal(t, "tok", r.SubjectToken)
				if r.TokenType == exchange.TokenTypeX509SVID {
					assert.True(t, key.PublicKey.Equal(r.PublicKey))
				} else {
					assert.Equal(t, exchange.TokenTypeJWT, r.TokenType)
					assert.Equal(t, []string{"aud"}, r.Audience)
				}
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.code)
		})
	}
	r, err := exchange.ParseRequest([]byte(url.Values{"grant_type": {exchange.GrantType}, "subject_token": {"t"},
		"subject_token_type": {exchange.TokenTypeJWT}, "csr": {csr}}.Encode()))
	require.NoError(t, err)
	assert.Equal(t, exchange.TokenTypeX509SVID, r.TokenType, "a csr alone asks for an X509-SVID")
	r, err = exchange.ParseRequest([]byte(jwtForm("t", "a").Encode() + "&spiffe_id=spiffe://example.org/x"))
	require.NoError(t, err)
	assert.Equal(t, spiffeid.RequireFromString("spiffe://example.org/x"), r.SPIFFEID)
	_, err = exchange.ParseRequest([]byte("%zz"))
	require.ErrorContains(t, err, "not a form")
	_, err = exchange.ParseRequest(make([]byte, exchange.MaxRequestSize+1))
	require.ErrorContains(t, err, "larger than")
}

// badSignatureCSR is a certificate request whose signature does not
// verify: its key signed another request.
func badSignatureCSR(t *testing.T) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, priv)
	require.NoError(t, err)
	der[len(der)-1] ^= 1 // the last byte of the Ed25519 signature
	return base64.RawURLEncoding.EncodeToString(der)
}

// TestHTTPRefusals: what is not a POST of a bounded form is refused before
// any token is looked at.
func TestHTTPRefusals(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get(e.srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	assert.Equal(t, http.MethodPost, resp.Header.Get("Allow"))

	resp, err = http.Post(e.srv.URL, "application/json", strings.NewReader(`{"grant_type":"x"}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)

	resp, err = http.Post(e.srv.URL, "application/x-www-form-urlencoded", strings.NewReader(strings.Repeat("a", exchange.MaxRequestSize+10)))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)

	f := jwtForm("t", "a")
	f.Set("grant_type", "password")
	a := e.post(t, f)
	assert.Equal(t, http.StatusBadRequest, a.status)
	assert.Equal(t, "unsupported_grant_type", a.err.Error)
	assert.Zero(t, e.iss.Fetches())
}
