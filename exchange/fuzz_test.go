package exchange_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/spiffekit/spiffekit/exchange"
)

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(jwtForm("a.b.c", "aud").Encode()))
	f.Add([]byte(url.Values{"grant_type": {exchange.GrantType}, "subject_token": {"t"}, "subject_token_type": {exchange.TokenTypeJWT},
		"requested_token_type": {exchange.TokenTypeX509SVID}, "csr": {fuzzCSR(f)}, "spiffe_id": {"spiffe://example.org/x"}}.Encode()))
	f.Add([]byte(url.Values{"grant_type": {exchange.GrantType}, "subject_token": {"h"}, "subject_token_type": {exchange.TokenTypeLaunchHandle},
		"audience": {"a"}}.Encode()))
	f.Add([]byte("grant_type=x&grant_type=y"))
	f.Add([]byte("%zz"))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := exchange.ParseRequest(body)
		if err != nil {
			return
		}
		// What parses is a complete request of one of the two kinds.
		require.NotEmpty(t, r.SubjectToken)
		switch r.TokenType {
		case exchange.TokenTypeJWT:
			require.NotEmpty(t, r.Audience)
			require.LessOrEqual(t, len(r.Audience), exchange.MaxAudiences)
		case exchange.TokenTypeX509SVID:
			require.NotNil(t, r.PublicKey)
		default:
			t.Fatalf("token type %q", r.TokenType)
		}
	})
}

func fuzzCSR(f *testing.F) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(f, err)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	require.NoError(f, err)
	return base64.RawURLEncoding.EncodeToString(der)
}

func FuzzParseCSR(f *testing.F) {
	f.Add(fuzzCSR(f))
	f.Add("")
	f.Add("MIIB")
	f.Fuzz(func(t *testing.T, s string) {
		pub, err := exchange.ParseCSR(s)
		if err != nil {
			return
		}
		require.NotNil(t, pub)
	})
}

// FuzzIssuerDocuments reads each input as an issuer's discovery document
// and as its JWK Set.
func FuzzIssuerDocuments(f *testing.F) {
	const iss = "https://issuer.example"
	f.Add([]byte(`{"issuer":"https://issuer.example","jwks_uri":"https://issuer.example/jwks"}`))
	f.Add([]byte(`{"issuer":"https://issuer.example","jwks_uri":"http://x"}`))
	f.Add([]byte(`{"issuer":null}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AAAA","kid":"k"}]}`))
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		if u, err := exchange.ParseDiscovery(doc, iss); err == nil {
			parsed, err := url.Parse(u)
			require.NoError(t, err)
			require.Equal(t, "https", parsed.Scheme)
			require.NotEmpty(t, parsed.Host)
		}
		keys, err := exchange.ParseKeySet(doc)
		if err != nil {
			return
		}
		require.NotEmpty(t, keys)
		for kid, k := range keys {
			require.NotEmpty(t, kid)
			require.NotNil(t, k)
		}
	})
}

func FuzzSelectors(f *testing.F) {
	f.Add("alice", []byte(`{"repository":"acme/app","groups":["a","b"],"n":1}`))
	f.Add("a:b", []byte(`{"x:y":"z","":"e"}`))
	f.Fuzz(func(t *testing.T, sub string, claimsJSON []byte) {
		var claims map[string]any
		if json.Unmarshal(claimsJSON, &claims) != nil {
			return
		}
		sels, err := exchange.Selectors("https://issuer.example", sub, claims)
		if err != nil {
			return
		}
		require.NotEmpty(t, sels)
		require.LessOrEqual(t, len(sels), exchange.MaxSelectors)
		for _, s := range sels {
			require.NoError(t, s.Validate())
			require.Equal(t, exchange.SelectorType, s.Type)
		}
	})
}

// FuzzExchange sends arbitrary subject tokens to a live endpoint: none may
// panic it, and none but the issuer's may obtain anything.
func FuzzExchange(f *testing.F) {
	// No limit, so that every input reaches the verification.
	e := newEnv(f, func(c *exchange.Config) { c.Rate, c.Burst = rate.Inf, 1 })
	f.Add(e.iss.Mint(f, e.iss.Claims("alice", audience)))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, token string) {
		_, err := e.h.Exchange(t.Context(), exchange.Request{SubjectToken: token, TokenType: exchange.TokenTypeJWT, Audience: []string{"x"}})
		require.Error(t, err, "no entry is registered: nothing is ever issued")
		require.NotErrorIs(t, err, exchange.ErrRateLimited)
	})
}
