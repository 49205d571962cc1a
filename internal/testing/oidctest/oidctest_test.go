package oidctest

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func get(t *testing.T, c *http.Client, url string) (int, []byte) {
	t.Helper()
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// The issuer serves an honest discovery document and its key set over
// HTTPS, and its tokens verify with the published keys, across rotations.
func TestIssuerServesWhatItSigns(t *testing.T) {
	is := New(t)
	code, body := get(t, is.Client(), is.URL+"/.well-known/openid-configuration")
	require.Equal(t, http.StatusOK, code)
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	require.NoError(t, json.Unmarshal(body, &doc))
	assert.Equal(t, is.URL, doc.Issuer)
	assert.Equal(t, is.URL+"/jwks", doc.JWKSURI)
	assert.EqualValues(t, 1, is.Fetches())

	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.RS256} {
		if alg != jose.ES256 {
			is.Rotate(t, alg)
		}
		token := is.Mint(t, is.Claims("repo:acme/app", "aud-1"))
		code, body = get(t, is.Client(), doc.JWKSURI)
		require.Equal(t, http.StatusOK, code)
		var set jose.JSONWebKeySet
		require.NoError(t, json.Unmarshal(body, &set))
		parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{alg})
		require.NoError(t, err)
		keys := set.Key(parsed.Headers[0].KeyID)
		require.Len(t, keys, 1, "the token's kid is published")
		var claims jwt.Claims
		require.NoError(t, parsed.Claims(keys[0].Key, &claims))
		assert.Equal(t, "repo:acme/app", claims.Subject)
		assert.Equal(t, is.URL, claims.Issuer)
		assert.NoError(t, claims.Validate(jwt.Expected{Issuer: is.URL, AnyAudience: jwt.Audience{"aud-1"}}))
	}
	var set jose.JSONWebKeySet
	require.NoError(t, json.Unmarshal(is.JWKS(), &set))
	assert.Len(t, set.Keys, 3, "old keys stay published")

	block, _ := pem.Decode(is.CertificatePEM())
	require.NotNil(t, block)
	_, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
}

// What no honest issuer makes: a failing server, a replaced discovery
// document, and tokens that must not verify.
func TestIssuerMisbehaves(t *testing.T) {
	is := New(t)
	is.SetFailing(true)
	code, _ := get(t, is.Client(), is.URL+"/.well-known/openid-configuration")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	code, _ = get(t, is.Client(), is.URL+"/jwks")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	is.SetFailing(false)

	is.SetDiscovery([]byte(`{"issuer":"https://elsewhere.example"}`))
	_, body := get(t, is.Client(), is.URL+"/.well-known/openid-configuration")
	assert.JSONEq(t, `{"issuer":"https://elsewhere.example"}`, string(body))
	is.SetDiscovery(nil)
	_, body = get(t, is.Client(), is.URL+"/.well-known/openid-configuration")
	assert.Contains(t, string(body), is.URL)

	var set jose.JSONWebKeySet
	require.NoError(t, json.Unmarshal(is.JWKS(), &set))
	pub := set.Keys[0]
	claims := is.Claims("sub", "aud")

	foreign, err := jwt.ParseSigned(is.MintForeign(t, claims), []jose.SignatureAlgorithm{jose.ES256})
	require.NoError(t, err)
	assert.Equal(t, pub.KeyID, foreign.Headers[0].KeyID, "under the published kid")
	var out jwt.Claims
	assert.Error(t, foreign.Claims(pub.Key, &out), "signed by a key never published")

	unsigned := Unsigned(pub.KeyID, claims)
	assert.True(t, strings.HasSuffix(unsigned, "."))
	_, err = jwt.ParseSigned(unsigned, []jose.SignatureAlgorithm{jose.ES256})
	assert.Error(t, err, "alg none parses with no allowed algorithm")

	hmac := HMAC(t, []byte("the bytes of the published public key, at least 32"), pub.KeyID, claims)
	_, err = jwt.ParseSigned(hmac, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	assert.Error(t, err, "HS256 is not an allowed algorithm")
	parsed, err := jwt.ParseSigned(hmac, []jose.SignatureAlgorithm{jose.HS256})
	require.NoError(t, err)
	assert.Equal(t, pub.KeyID, parsed.Headers[0].KeyID)

	noKid := Sign(t, jose.ES256, newKey(t, jose.ES256), "", claims)
	parsed, err = jwt.ParseSigned(noKid, []jose.SignatureAlgorithm{jose.ES256})
	require.NoError(t, err)
	assert.Empty(t, parsed.Headers[0].KeyID)
}
