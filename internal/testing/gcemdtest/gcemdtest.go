// Package gcemdtest is a Compute Engine metadata server for tests, and a
// stand-in for Google's token-signing keys. Test only.
//
// The metadata server ([Start]) speaks the protocol Google documents for
// instance identity tokens: GET /computeMetadata/v1/instance/
// service-accounts/<account>/identity?audience=<aud>&format=full with the
// header "Metadata-Flavor: Google" returns a JWT signed RS256 by a test
// key ([Key]), with the claims Google's tokens carry (iss, aud, azp, sub,
// email, email_verified, iat, exp and, in the full format, google.
// compute_engine). A request without the header is refused (403), as is
// one with X-Forwarded-For (the real server refuses proxied requests); a
// missing audience is 400; an account other than "default" or the
// instance's e-mail is 404; every response carries "Metadata-Flavor:
// Google". It is not Google's server: the tokens are signed by keys the
// test makes, whose JWKS ([JWKS]) or certificates ([CertsV1]) the test
// gives the verifier, directly or through [StartKeys].
package gcemdtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"
)

// Issuer is the "iss" of Google's tokens.
const Issuer = "https://accounts.google.com"

// IdentityPrefix is the path of the identity endpoint, up to the account.
const IdentityPrefix = "/computeMetadata/v1/instance/service-accounts/"

// Hang, as a Server's body, makes the server never answer (until the
// request or the test ends).
const Hang = "<hang>"

// Key stands for one of Google's token-signing keys: RSA-2048 and a key ID.
type Key struct {
	ID      string
	Private *rsa.PrivateKey
}

var (
	keysOnce sync.Once
	keys     [3]*rsa.PrivateKey
)

// NewKey returns test key i (0 to 2, RSA-2048, made once per test binary)
// under a key ID of its public key's hash, as Google's are 40 hex digits.
func NewKey(t testing.TB, i int) *Key {
	t.Helper()
	keysOnce.Do(func() {
		for j := range keys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			keys[j] = k
		}
	})
	der, err := x509.MarshalPKIXPublicKey(&keys[i].PublicKey)
	require.NoError(t, err)
	sum := sha256.Sum256(der)
	return &Key{ID: hex.EncodeToString(sum[:20]), Private: keys[i]}
}

// Sign returns the compact RS256 JWS of claims (marshalled to JSON) with
// the key's ID in its header, as Google signs.
func (k *Key) Sign(t testing.TB, claims any) string {
	t.Helper()
	return k.SignWith(t, claims, jose.RS256, k.ID)
}

// SignWith signs claims with the key, algorithm alg (an RSA one) and key
// ID kid.
func (k *Key) SignWith(t testing.TB, claims any, alg jose.SignatureAlgorithm, kid string) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: k.Private}, opts)
	require.NoError(t, err)
	payload, err := json.Marshal(claims)
	require.NoError(t, err)
	jws, err := signer.Sign(payload)
	require.NoError(t, err)
	s, err := jws.CompactSerialize()
	require.NoError(t, err)
	return s
}

// Certificate returns a self-signed certificate of the key, as Google's
// v1 certs endpoint serves its keys.
func (k *Key) Certificate(t testing.TB) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "federated-signon.system.gserviceaccount.com"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(14 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.Private.PublicKey, k.Private)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return c
}

// JWKS returns the JWK Set of keys, as Google's v3 certs endpoint serves
// it (use "sig", alg "RS256").
func JWKS(t testing.TB, keys ...*Key) []byte {
	t.Helper()
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.Private.PublicKey, KeyID: k.ID, Algorithm: "RS256", Use: "sig"})
	}
	b, err := json.Marshal(set)
	require.NoError(t, err)
	return b
}

// CertsV1 returns the object of key IDs to PEM certificates that Google's
// v1 certs endpoint serves.
func CertsV1(t testing.TB, keys ...*Key) []byte {
	t.Helper()
	m := map[string]string{}
	for _, k := range keys {
		m[k.ID] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.Certificate(t).Raw}))
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

// Instance describes the instance the metadata server runs on.
type Instance struct {
	ProjectID      string
	ProjectNumber  int64
	Zone           string
	InstanceID     string
	InstanceName   string
	ServiceAccount string // its e-mail
	Created        int64  // instance_creation_timestamp
}

// TestInstance returns an instance of project "example-project".
func TestInstance() Instance {
	return Instance{
		ProjectID:      "example-project",
		ProjectNumber:  123456789012,
		Zone:           "us-central1-a",
		InstanceID:     "4567891234567891234",
		InstanceName:   "node-1",
		ServiceAccount: "node@example-project.iam.gserviceaccount.com",
		Created:        1764000000,
	}
}

// Claims returns the claims of an identity token of inst for audience,
// issued at iat and valid for an hour, with google.compute_engine if
// full, as Google's metadata server makes them.
func (inst Instance) Claims(audience string, full bool, iat time.Time) map[string]any {
	c := map[string]any{
		"iss":            Issuer,
		"aud":            audience,
		"azp":            "112233445566778899000",
		"sub":            "112233445566778899000",
		"email":          inst.ServiceAccount,
		"email_verified": true,
		"iat":            iat.Unix(),
		"exp":            iat.Add(time.Hour).Unix(),
	}
	if full {
		c["google"] = map[string]any{"compute_engine": map[string]any{
			"project_id":                  inst.ProjectID,
			"project_number":              inst.ProjectNumber,
			"zone":                        inst.Zone,
			"instance_id":                 inst.InstanceID,
			"instance_name":               inst.InstanceName,
			"instance_creation_timestamp": inst.Created,
		}}
	}
	return c
}

// Server is a running metadata server.
type Server struct {
	*httptest.Server

	key  *Key
	inst Instance

	mu   sync.Mutex
	body string // if not empty, served instead of a token

	requests   atomic.Int32
	flavorless atomic.Int32
	hung       atomic.Int32
	hang       chan struct{}

	audiences chan string
}

// Start runs a metadata server of inst whose tokens key signs, on a
// loopback port until the test ends.
func Start(t testing.TB, key *Key, inst Instance) *Server {
	t.Helper()
	s := &Server{key: key, inst: inst, hang: make(chan struct{}), audiences: make(chan string, 100)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serve(t, w, r) }))
	t.Cleanup(func() {
		close(s.hang)
		s.Close()
	})
	return s
}

// Host is the server's host:port, as an agent's identity_token_host.
func (s *Server) Host() string { return strings.TrimPrefix(s.URL, "http://") }

// Requests is the number of identity requests answered with a token.
func (s *Server) Requests() int { return int(s.requests.Load()) }

// Flavorless is the number of requests without "Metadata-Flavor: Google".
func (s *Server) Flavorless() int { return int(s.flavorless.Load()) }

// HungCalls is the number of requests left unanswered (Hang).
func (s *Server) HungCalls() int { return int(s.hung.Load()) }

// SetBody makes the server answer identity requests with body instead of
// a token (Hang: never answer).
func (s *Server) SetBody(body string) { s.mu.Lock(); s.body = body; s.mu.Unlock() }

// LastAudience returns the audience of the oldest token request not yet
// returned, or "" if none.
func (s *Server) LastAudience() string {
	select {
	case a := <-s.audiences:
		return a
	default:
		return ""
	}
}

func (s *Server) serve(t testing.TB, w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Metadata-Flavor", "Google")
	if r.Header.Get("X-Forwarded-For") != "" {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	if r.Header.Get("Metadata-Flavor") != "Google" {
		s.flavorless.Add(1)
		http.Error(w, "Missing required header: Metadata-Flavor", http.StatusForbidden)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, IdentityPrefix)
	account, ok2 := strings.CutSuffix(rest, "/identity")
	if !ok || !ok2 || (account != "default" && account != s.inst.ServiceAccount) {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	audience := q.Get("audience")
	if audience == "" {
		http.Error(w, "non-empty audience parameter required", http.StatusBadRequest)
		return
	}
	format := q.Get("format")
	if format != "" && format != "standard" && format != "full" {
		http.Error(w, "invalid format", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	body := s.body
	s.mu.Unlock()
	if body == Hang {
		s.hung.Add(1)
		select {
		case <-r.Context().Done():
		case <-s.hang:
		}
		return
	}
	if body == "" {
		body = s.key.Sign(t, s.inst.Claims(audience, format == "full", time.Now()))
	}
	select {
	case s.audiences <- audience:
	default:
	}
	s.requests.Add(1)
	w.Header().Set("Content-Type", "text/html")
	w.Write([]byte(body))
}

// KeyServer serves Google's token-signing keys: the JWK Set at
// /oauth2/v3/certs and the PEM certificates at /oauth2/v1/certs, each with
// a Cache-Control max-age.
type KeyServer struct {
	*httptest.Server

	mu      sync.Mutex
	keys    []*Key
	maxAge  int
	status  int
	fetches atomic.Int32
}

// StartKeys serves keys on a loopback port until the test ends, with a
// max-age of an hour.
func StartKeys(t testing.TB, keys ...*Key) *KeyServer {
	t.Helper()
	s := &KeyServer{keys: keys, maxAge: 3600, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		keys, maxAge, status := s.keys, s.maxAge, s.status
		s.mu.Unlock()
		if status != http.StatusOK {
			http.Error(w, "unavailable", status)
			return
		}
		var body []byte
		switch r.URL.Path {
		case "/oauth2/v3/certs":
			body = JWKS(t, keys...)
		case "/oauth2/v1/certs":
			body = CertsV1(t, keys...)
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(maxAge)+", must-revalidate, no-transform")
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

// JWKSURL is the URL of the JWK Set.
func (s *KeyServer) JWKSURL() string { return s.URL + "/oauth2/v3/certs" }

// CertsURL is the URL of the PEM certificates.
func (s *KeyServer) CertsURL() string { return s.URL + "/oauth2/v1/certs" }

// Fetches is the number of requests served.
func (s *KeyServer) Fetches() int { return int(s.fetches.Load()) }

// SetKeys replaces the keys served (a rotation).
func (s *KeyServer) SetKeys(keys ...*Key) { s.mu.Lock(); s.keys = keys; s.mu.Unlock() }

// SetMaxAge sets the max-age of the responses, in seconds.
func (s *KeyServer) SetMaxAge(seconds int) { s.mu.Lock(); s.maxAge = seconds; s.mu.Unlock() }

// SetStatus makes the server answer with status (other than 200: an error).
func (s *KeyServer) SetStatus(status int) { s.mu.Lock(); s.status = status; s.mu.Unlock() }
