// Package oidctest is, for tests only, a real OpenID Connect issuer: an
// HTTPS server (httptest, with its own CA) that serves a discovery document
// at /.well-known/openid-configuration and its JWK Set at /jwks, and mints
// tokens signed with its current key. Keys rotate on demand; the test can
// make the server fail, count its fetches, and craft tokens no honest
// issuer makes (unsigned, signed by another key under a published key ID).
//
//	iss := oidctest.New(t)
//	token := iss.Mint(t, iss.Claims("repo:acme/app", "spiffe://example.org"))
//	// give iss.URL and iss.Client() to the code under test
package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Issuer is a running OIDC issuer. Its methods are safe for concurrent use.
type Issuer struct {
	// URL is the issuer identifier, the "iss" of its tokens.
	URL string

	srv     *httptest.Server
	fetches atomic.Int64
	failing atomic.Bool

	mu   sync.Mutex
	keys []signingKey // the last is the current one
	// discovery, when not nil, replaces the discovery document.
	discovery []byte
}

type signingKey struct {
	kid string
	alg jose.SignatureAlgorithm
	key crypto.Signer
}

// New starts an issuer with one ES256 key; it stops when the test ends.
func New(t testing.TB) *Issuer {
	t.Helper()
	is := &Issuer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		is.fetches.Add(1)
		if is.failing.Load() {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		is.mu.Lock()
		doc := is.discovery
		is.mu.Unlock()
		if doc == nil {
			doc, _ = json.Marshal(map[string]any{
				"issuer":                                is.URL,
				"jwks_uri":                              is.URL + "/jwks",
				"response_types_supported":              []string{"id_token"},
				"subject_types_supported":               []string{"public"},
				"id_token_signing_alg_values_supported": []string{"ES256", "RS256"},
			})
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		if is.failing.Load() {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(is.JWKS())
	})
	is.srv = httptest.NewTLSServer(mux)
	t.Cleanup(is.srv.Close)
	is.URL = is.srv.URL
	is.Rotate(t, jose.ES256)
	return is
}

// Client returns an HTTP client that trusts the issuer's certificate.
func (is *Issuer) Client() *http.Client { return is.srv.Client() }

// CertificatePEM returns the issuer's HTTPS certificate (self-signed) as
// PEM, for a program told to trust it by file.
func (is *Issuer) CertificatePEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: is.srv.Certificate().Raw})
}

// Fetches returns how many times the discovery document was asked for.
func (is *Issuer) Fetches() int64 { return is.fetches.Load() }

// SetFailing makes the server answer 503 to everything, or stop doing so.
func (is *Issuer) SetFailing(f bool) { is.failing.Store(f) }

// SetDiscovery replaces the discovery document; nil restores the honest one.
func (is *Issuer) SetDiscovery(doc []byte) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.discovery = doc
}

// Rotate adds a new current key of algorithm alg (ES256, ES384 or RS256);
// the old keys stay published.
func (is *Issuer) Rotate(t testing.TB, alg jose.SignatureAlgorithm) string {
	t.Helper()
	key := newKey(t, alg)
	is.mu.Lock()
	defer is.mu.Unlock()
	kid := fmt.Sprintf("key-%d", len(is.keys)+1)
	is.keys = append(is.keys, signingKey{kid: kid, alg: alg, key: key})
	return kid
}

func newKey(t testing.TB, alg jose.SignatureAlgorithm) crypto.Signer {
	t.Helper()
	var key crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.RS256:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("oidctest: algorithm %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// JWKS returns the JWK Set document the issuer publishes.
func (is *Issuer) JWKS() []byte {
	is.mu.Lock()
	defer is.mu.Unlock()
	set := jose.JSONWebKeySet{}
	for _, k := range is.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.key.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"})
	}
	b, _ := json.Marshal(set)
	return b
}

// Claims returns the claims of an honest token of the issuer for sub and
// aud, valid from a minute ago for five minutes.
func (is *Issuer) Claims(sub, aud string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": is.URL,
		"sub": sub,
		"aud": aud,
		"iat": now.Add(-time.Minute).Unix(),
		"nbf": now.Add(-time.Minute).Unix(),
		"exp": now.Add(5 * time.Minute).Unix(),
	}
}

// Mint signs claims with the current key, naming its key ID.
func (is *Issuer) Mint(t testing.TB, claims map[string]any) string {
	t.Helper()
	is.mu.Lock()
	k := is.keys[len(is.keys)-1]
	is.mu.Unlock()
	return Sign(t, k.alg, k.key, k.kid, claims)
}

// MintForeign signs claims with a key the issuer never published, under
// the current key's ID: a token whose signature does not verify.
func (is *Issuer) MintForeign(t testing.TB, claims map[string]any) string {
	t.Helper()
	is.mu.Lock()
	k := is.keys[len(is.keys)-1]
	is.mu.Unlock()
	return Sign(t, k.alg, newKey(t, k.alg), k.kid, claims)
}

// Sign signs claims as a JWT with key and algorithm alg, with kid as the
// key ID ("" leaves it out).
func Sign(t testing.TB, alg jose.SignatureAlgorithm, key crypto.Signer, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Unsigned returns a token with "alg": "none" (and the given key ID) over
// claims, which no verifier may accept.
func Unsigned(kid string, claims map[string]any) string {
	hdr, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": kid})
	body, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	return enc(hdr) + "." + enc(body) + "."
}

// HMAC returns a token signed HS256 with secret (such as the bytes of a
// published public key, the classic algorithm confusion), under kid.
func HMAC(t testing.TB, secret []byte, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), kid)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
