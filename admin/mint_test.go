package admin_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// caMinter mints with the active authorities of a real CA manager, or
// fails with err when set.
type caMinter struct {
	m   *rotation.Manager
	mu  sync.Mutex
	err error
}

func (c *caMinter) fail() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *caMinter) setErr(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}

func (c *caMinter) MintX509SVID(ctx context.Context, id spiffeid.ID, key crypto.PublicKey, dns []string, ttl time.Duration) ([]*x509.Certificate, error) {
	if err := c.fail(); err != nil {
		return nil, err
	}
	return c.m.X509Authority().SignX509SVID(ctx, ca.X509SVIDParams{PublicKey: key, ID: id, DNSNames: dns, TTL: ttl})
}

func (c *caMinter) MintJWTSVID(ctx context.Context, id spiffeid.ID, audience []string, ttl time.Duration) (string, error) {
	if err := c.fail(); err != nil {
		return "", err
	}
	return c.m.JWTAuthority().SignJWTSVID(ctx, ca.JWTSVIDParams{ID: id, Audience: audience, TTL: ttl})
}

// startMinting serves the admin API with a minter over a new CA, whose
// bundle is the API's own.
func startMinting(t *testing.T) (*env, *caMinter) {
	t.Helper()
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	mi := &caMinter{m: m}
	e := start(t, func(c *admin.Config) {
		c.Minter = mi
		c.Bundle = func() *spiffebundle.Bundle { return m.Bundle() }
	})
	return e, mi
}

// csrFor returns a CSR for the URIs and DNS names, and its key.
func csrFor(t *testing.T, uris []string, dns ...string) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.CertificateRequest{DNSNames: dns}
	for _, u := range uris {
		parsed, err := url.Parse(u)
		require.NoError(t, err)
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	require.NoError(t, err)
	return csr, key
}

func TestMintX509SVID(t *testing.T) {
	e, mi := startMinting(t)
	csr, key := csrFor(t, []string{"spiffe://example.org/bootstrap"}, "db.example.org")
	minted, err := e.client.MintX509SVID(t.Context(), csr, 90*time.Minute)
	require.NoError(t, err)
	leaf := minted.Chain[0]
	assert.Equal(t, []string{"db.example.org"}, leaf.DNSNames)
	assert.Equal(t, key.Public(), leaf.PublicKey)
	assert.WithinDuration(t, time.Now().Add(90*time.Minute), leaf.NotAfter, time.Minute)
	assert.Equal(t, mi.m.Bundle().X509Authorities(), minted.RootCAs)
	id, _, err := x509svid.Verify(minted.Chain, mi.m.Bundle())
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/bootstrap", id.String())

	// The mint is logged at Info, without the key.
	logs := e.log.String()
	assert.Contains(t, logs, `level=INFO msg="admin: minted an X509-SVID" spiffe_id=spiffe://example.org/bootstrap dns_names=[db.example.org] serial=`+leaf.SerialNumber.Text(16))
	assert.NotContains(t, logs, "PRIVATE KEY")

	// Without a TTL, the minter's default.
	csr, _ = csrFor(t, []string{"spiffe://example.org/bootstrap"})
	minted, err = e.client.MintX509SVID(t.Context(), csr, 0)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(ca.DefaultX509SVIDTTL), minted.Chain[0].NotAfter, time.Minute)
}

func TestMintJWTSVID(t *testing.T) {
	e, mi := startMinting(t)
	id := spiffeid.RequireFromPath(td, "/batch")
	minted, err := e.client.MintJWTSVID(t.Context(), id, []string{"db", "cache"}, 10*time.Minute)
	require.NoError(t, err)
	svid, err := jwtsvid.ParseAndValidate(minted.Token, mi.m.Bundle(), []string{"cache"})
	require.NoError(t, err)
	assert.Equal(t, id, svid.ID)
	assert.Equal(t, svid.Expiry, minted.ExpiresAt)
	assert.WithinDuration(t, time.Now().Add(10*time.Minute), minted.ExpiresAt, time.Minute)
	logs := e.log.String()
	assert.Contains(t, logs, `level=INFO msg="admin: minted a JWT-SVID" spiffe_id=spiffe://example.org/batch audience="[db cache]" expires_at=`)
	assert.NotContains(t, logs, minted.Token)
	assert.NotContains(t, logs, strings.Split(minted.Token, ".")[2], "not even the signature")
}

// TestMintRefusals: every request the API must not sign is refused with
// the reason, and none reaches the minter.
func TestMintRefusals(t *testing.T) {
	e, mi := startMinting(t)
	ctx := t.Context()
	x509Tests := []struct {
		name string
		uris []string
		dns  []string
		ttl  time.Duration
		msg  string
	}{
		{"no URI", nil, nil, 0, "the CSR must name exactly one URI, the SPIFFE ID; it names 0"},
		{"two URIs", []string{"spiffe://example.org/a", "spiffe://example.org/b"}, nil, 0, "it names 2"},
		{"not a SPIFFE ID", []string{"https://example.org/a"}, nil, 0, "the CSR's URI: "},
		{"another trust domain", []string{"spiffe://other.org/a"}, nil, 0, "spiffe://other.org/a is not in trust domain example.org, the only one this server signs for"},
		{"no path", []string{"spiffe://example.org"}, nil, 0, "spiffe://example.org has no path: an SVID names a workload"},
		{"the server's ID", []string{"spiffe://example.org/spiffekit/server"}, nil, 0, "spiffe://example.org/spiffekit/server is reserved for the server and its agents"},
		{"an agent's ID", []string{"spiffe://example.org/spiffekit/agent/join_token/x"}, nil, 0, "is reserved for the server and its agents"},
		{"negative TTL", []string{"spiffe://example.org/a"}, nil, -time.Second, "ttl -1s is negative"},
		{"TTL too long", []string{"spiffe://example.org/a"}, nil, admin.MaxMintTTL + time.Hour, "is longer than"},
	}
	for _, tt := range x509Tests {
		t.Run("x509 "+tt.name, func(t *testing.T) {
			csr, _ := csrFor(t, tt.uris, tt.dns...)
			_, err := e.client.MintX509SVID(ctx, csr, tt.ttl)
			require.ErrorIs(t, err, registry.ErrInvalid)
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
	jwtTests := []struct {
		name     string
		id       spiffeid.ID
		audience []string
		ttl      time.Duration
		msg      string
	}{
		{"no audience", spiffeid.RequireFromPath(td, "/a"), nil, 0, "at least one audience is required"},
		{"empty audience", spiffeid.RequireFromPath(td, "/a"), []string{"db", ""}, 0, "an audience must not be empty"},
		{"reserved", spiffeid.RequireFromPath(td, "/spiffekit/server"), []string{"db"}, 0, "is reserved"},
		{"another trust domain", spiffeid.RequireFromString("spiffe://other.org/a"), []string{"db"}, 0, "not in trust domain"},
		{"negative TTL", spiffeid.RequireFromPath(td, "/a"), []string{"db"}, -time.Minute, "is negative"},
	}
	for _, tt := range jwtTests {
		t.Run("jwt "+tt.name, func(t *testing.T) {
			_, err := e.client.MintJWTSVID(ctx, tt.id, tt.audience, tt.ttl)
			require.ErrorIs(t, err, registry.ErrInvalid)
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
	assert.NotContains(t, e.log.String(), "minted")

	// Hand-made requests the client never sends.
	csr, _ := csrFor(t, []string{"spiffe://example.org/a"})
	tampered := append([]byte(nil), csr...)
	tampered[len(tampered)-3] ^= 0xff
	for _, tt := range []struct {
		name, target string
		body         any
		msg          string
	}{
		{"malformed CSR", "/v1/svids/x509", map[string]any{"csr": []byte("nope")}, "malformed CSR"},
		{"CSR signature", "/v1/svids/x509", map[string]any{"csr": tampered}, "the CSR's signature does not verify"},
		{"malformed TTL", "/v1/svids/x509", map[string]any{"csr": csr, "ttl": "soon"}, `ttl: time: invalid duration`},
		{"unknown field", "/v1/svids/x509", map[string]any{"csr": csr, "key": "x"}, "unknown field"},
		{"malformed ID", "/v1/svids/jwt", map[string]any{"spiffe_id": "example.org/a", "audience": []string{"db"}}, "spiffe_id: "},
		{"malformed JWT TTL", "/v1/svids/jwt", map[string]any{"spiffe_id": "spiffe://example.org/a", "audience": []string{"db"}, "ttl": "1y"}, "ttl: "},
		{"JWT unknown field", "/v1/svids/jwt", map[string]any{"spiffe_id": "spiffe://example.org/a", "aud": "db"}, "unknown field"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body, err := json.Marshal(tt.body)
			require.NoError(t, err)
			status, answer := raw(t, e.path, http.MethodPost, tt.target, strings.NewReader(string(body)))
			assert.Equal(t, http.StatusBadRequest, status, answer)
			assert.Contains(t, answer, tt.msg)
			assert.Contains(t, answer, `"code":"invalid"`)
		})
	}

	// What the minter refuses as invalid is said; anything else is an
	// internal error, logged.
	mi.setErr(fmt.Errorf("ca: DNS name %q is not allowed: %w", "a_b", registry.ErrInvalid))
	_, err := e.client.MintX509SVID(ctx, csr, 0)
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.Contains(t, err.Error(), `DNS name "a_b" is not allowed`)
	mi.setErr(errors.New("signer on fire"))
	_, err = e.client.MintJWTSVID(ctx, spiffeid.RequireFromPath(td, "/a"), []string{"db"}, 0)
	require.Error(t, err)
	assert.Equal(t, "admin: internal error", err.Error())
	assert.Contains(t, e.log.String(), "signer on fire")
}

func TestMintWithoutMinter(t *testing.T) {
	e := start(t)
	csr, _ := csrFor(t, []string{"spiffe://example.org/a"})
	_, err := e.client.MintX509SVID(t.Context(), csr, 0)
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.Equal(t, "admin: this server mints no SVIDs on request", err.Error())
	_, err = e.client.MintJWTSVID(t.Context(), spiffeid.RequireFromPath(td, "/a"), []string{"db"}, 0)
	require.ErrorIs(t, err, registry.ErrNotFound)
}

// TestMintNeedsAnAllowedUID: minting is refused, like every call, to a uid
// that may not administer the server.
func TestMintNeedsAnAllowedUID(t *testing.T) {
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	e := start(t, func(c *admin.Config) {
		c.Minter = &caMinter{m: m}
		c.AllowedUIDs = []int{123456789}
	})
	csr, _ := csrFor(t, []string{"spiffe://example.org/a"})
	_, err = e.client.MintX509SVID(t.Context(), csr, 0)
	require.ErrorIs(t, err, admin.ErrPermissionDenied)
	_, err = e.client.MintJWTSVID(t.Context(), spiffeid.RequireFromPath(td, "/a"), []string{"db"}, 0)
	require.ErrorIs(t, err, admin.ErrPermissionDenied)
	assert.NotContains(t, e.log.String(), "minted")
}
