package exchange_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/exchange"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/oidctest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

const audience = "spiffe://example.org/exchange"

var td = spiffeid.RequireTrustDomainFromString("example.org")

// testCA is a real CA that mints what the endpoint asks for, and the
// bundles that verify it.
type testCA struct {
	x509 *ca.X509Authority
	jwt  *ca.JWTAuthority
	root *x509.Certificate

	mu    sync.Mutex
	fail  error
	calls int
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	root, err := ca.CreateRoot(t.Context(), ca.RootParams{Signer: key, TrustDomain: td})
	require.NoError(t, err)
	xa, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: key, Certificate: root})
	require.NoError(t, err)
	jkey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ja, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: jkey, TrustDomain: td})
	require.NoError(t, err)
	return &testCA{x509: xa, jwt: ja, root: root}
}

func (c *testCA) MintX509SVID(ctx context.Context, id spiffeid.ID, key crypto.PublicKey, dnsNames []string, ttl time.Duration) ([]*x509.Certificate, error) {
	c.mu.Lock()
	c.calls++
	err := c.fail
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return c.x509.SignX509SVID(ctx, ca.X509SVIDParams{PublicKey: key, ID: id, DNSNames: dnsNames, TTL: ttl})
}

func (c *testCA) MintJWTSVID(ctx context.Context, id spiffeid.ID, aud []string, ttl time.Duration) (string, error) {
	c.mu.Lock()
	c.calls++
	err := c.fail
	c.mu.Unlock()
	if err != nil {
		return "", err
	}
	return c.jwt.SignJWTSVID(ctx, ca.JWTSVIDParams{ID: id, Audience: aud, TTL: ttl})
}

func (c *testCA) minted() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

func (c *testCA) x509Bundle() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(td, []*x509.Certificate{c.root})
}

func (c *testCA) jwtBundle() *jwtbundle.Bundle {
	return jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{c.jwt.KeyID(): c.jwt.PublicKey()})
}

// env is an endpoint over a real registry index, a real CA and a real
// OIDC issuer.
type env struct {
	iss   *oidctest.Issuer
	ca    *testCA
	store *memstore.Store
	idx   *index.Index
	h     *exchange.Handler
	srv   *httptest.Server
	logs  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines returns the JSON log lines.
func (s *syncBuffer) lines(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for l := range strings.Lines(s.String()) {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		out = append(out, m)
	}
	return out
}

func newEnv(t testing.TB, mod ...func(*exchange.Config)) *env {
	t.Helper()
	t.Cleanup(leaktest.Check(t)) // registered first: checked last
	e := &env{iss: oidctest.New(t), ca: newTestCA(t), store: memstore.New(memstore.Config{}), logs: &syncBuffer{}}
	var err error
	e.idx, err = index.New(t.Context(), e.store, index.Config{})
	require.NoError(t, err)
	cfg := exchange.Config{
		TrustDomain: td,
		Issuers:     []exchange.Issuer{{URL: e.iss.URL, Audience: audience, Client: e.iss.Client()}},
		Entries:     e.idx,
		Minter:      e.ca,
		Logger:      slog.New(slog.NewJSONHandler(e.logs, nil)),
	}
	for _, m := range mod {
		m(&cfg)
	}
	e.h, err = exchange.New(cfg)
	require.NoError(t, err)
	e.srv = httptest.NewServer(e.h)
	t.Cleanup(e.srv.Close)
	return e
}

// register writes an entry for id parented by parent (ParentID when zero)
// with the given selectors, and syncs the index.
func (e *env) register(t testing.TB, id string, parent spiffeid.ID, sels ...string) registry.Entry {
	t.Helper()
	if parent.IsZero() {
		parent = exchange.ParentID(td)
	}
	entry := registry.Entry{SPIFFEID: spiffeid.RequireFromString(id), ParentID: parent}
	for _, s := range sels {
		sel, err := attest.ParseSelector(s)
		require.NoError(t, err)
		entry.Selectors = append(entry.Selectors, sel)
	}
	entry, err := e.store.Create(t.Context(), entry)
	require.NoError(t, err)
	_, err = e.idx.Sync(t.Context())
	require.NoError(t, err)
	return entry
}

func (e *env) sub(sub string) string { return "oidc:" + e.iss.URL + ":sub:" + sub }

func (e *env) claim(name, value string) string {
	return "oidc:" + e.iss.URL + ":claim:" + name + ":" + value
}

// answer is a decoded response of the endpoint.
type answer struct {
	status int
	resp   exchange.Response
	err    struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	header http.Header
}

func (e *env) post(t testing.TB, form url.Values) answer {
	t.Helper()
	resp, err := http.PostForm(e.srv.URL, form)
	require.NoError(t, err)
	defer resp.Body.Close()
	var a answer
	a.status, a.header = resp.StatusCode, resp.Header
	dec := json.NewDecoder(resp.Body)
	if resp.StatusCode == http.StatusOK {
		require.NoError(t, dec.Decode(&a.resp))
	} else {
		require.NoError(t, dec.Decode(&a.err))
	}
	return a
}

// jwtForm is a request for a JWT-SVID for aud in exchange of token.
func jwtForm(token string, aud ...string) url.Values {
	return url.Values{
		"grant_type":           {exchange.GrantType},
		"subject_token":        {token},
		"subject_token_type":   {exchange.TokenTypeJWT},
		"requested_token_type": {exchange.TokenTypeJWT},
		"audience":             aud,
	}
}

// x509Form is a request for an X509-SVID for a CSR of key.
func x509Form(t testing.TB, token string, key crypto.Signer) url.Values {
	t.Helper()
	return url.Values{
		"grant_type":           {exchange.GrantType},
		"subject_token":        {token},
		"subject_token_type":   {exchange.TokenTypeJWT},
		"requested_token_type": {exchange.TokenTypeX509SVID},
		"csr":                  {csrOf(t, key)},
	}
}

func csrOf(t testing.TB, key crypto.Signer) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(der)
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

// parseChain reads a PEM chain.
func parseChain(t testing.TB, s string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		require.NoError(t, err)
		out = append(out, c)
	}
	require.Empty(t, bytes.TrimSpace(rest))
	return out
}
