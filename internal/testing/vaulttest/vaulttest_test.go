package vaulttest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// call sends a request as Vault's client does and decodes the answer.
func call(t *testing.T, s *Server, hc *http.Client, method, path, token, namespace string, body any) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			b, err = json.Marshal(body)
			require.NoError(t, err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL()+path, r)
	require.NoError(t, err)
	req.Header.Set("X-Vault-Request", "true")
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	if namespace != "" {
		req.Header.Set("X-Vault-Namespace", namespace)
	}
	if hc == nil {
		hc = s.Client()
	}
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	if json.Unmarshal(raw, &out) != nil {
		out = map[string]any{"raw": string(raw)}
	}
	return resp.StatusCode, out
}

func errorsOf(m map[string]any) string {
	b, _ := json.Marshal(m["errors"])
	return string(b)
}

func csrPEM(t *testing.T) (string, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), key
}

func parsePEM(t *testing.T, s string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		require.NoError(t, err)
		out = append(out, c)
	}
}

func TestTokens(t *testing.T) {
	clk := &clock{now: time.Now()}
	s := New(t, Config{Now: clk.Now})
	assert.Nil(t, s.CACertificate())
	root := s.NewToken(TokenParams{})
	renewable := s.NewToken(TokenParams{TTL: time.Hour, Renewable: true, MaxTTL: 90 * time.Minute})
	fixed := s.NewToken(TokenParams{TTL: time.Hour})

	code, resp := call(t, s, nil, "GET", "/v1/auth/token/lookup-self", root, "", nil)
	require.Equal(t, 200, code)
	data := resp["data"].(map[string]any)
	assert.Equal(t, root, data["id"])
	assert.EqualValues(t, 0, data["ttl"])
	assert.Nil(t, data["expire_time"])
	code, resp = call(t, s, nil, "GET", "/v1/auth/token/lookup-self", renewable, "", nil)
	require.Equal(t, 200, code)
	data = resp["data"].(map[string]any)
	assert.EqualValues(t, 3600, data["ttl"])
	assert.Equal(t, true, data["renewable"])

	// Renewals: for the creation TTL, for an increment, up to the max TTL.
	clk.Add(30 * time.Minute)
	code, resp = call(t, s, nil, "POST", "/v1/auth/token/renew-self", renewable, "", map[string]any{})
	require.Equal(t, 200, code, resp)
	assert.EqualValues(t, 3600, resp["auth"].(map[string]any)["lease_duration"])
	code, resp = call(t, s, nil, "PUT", "/v1/auth/token/renew-self", renewable, "", map[string]any{"increment": "600"})
	require.Equal(t, 200, code, resp)
	assert.EqualValues(t, 600, resp["auth"].(map[string]any)["lease_duration"])
	code, resp = call(t, s, nil, "POST", "/v1/auth/token/renew-self", renewable, "", map[string]any{"increment": 7200})
	require.Equal(t, 200, code, resp)
	assert.EqualValues(t, 3600, resp["auth"].(map[string]any)["lease_duration"], "capped at the max TTL")
	assert.NotEmpty(t, resp["warnings"])
	code, resp = call(t, s, nil, "POST", "/v1/auth/token/renew-self", renewable, "", map[string]any{"increment": "1h"})
	require.Equal(t, 200, code, resp)
	code, resp = call(t, s, nil, "POST", "/v1/auth/token/renew-self", renewable, "", map[string]any{"increment": "soon"})
	assert.Equal(t, 400, code)
	assert.Contains(t, errorsOf(resp), "error parsing duration")
	code, resp = call(t, s, nil, "POST", "/v1/auth/token/renew-self", renewable, "", map[string]any{"increment": true})
	assert.Equal(t, 400, code)
	code, resp = call(t, s, nil, "POST", "/v1/auth/token/renew-self", fixed, "", map[string]any{})
	assert.Equal(t, 400, code)
	assert.Contains(t, errorsOf(resp), "lease is not renewable")
	code, _ = call(t, s, nil, "POST", "/v1/auth/token/renew-self", "nope", "", map[string]any{})
	assert.Equal(t, 403, code)

	// Expiry, revocation.
	clk.Add(2 * time.Hour)
	code, resp = call(t, s, nil, "GET", "/v1/auth/token/lookup-self", fixed, "", nil)
	assert.Equal(t, 403, code)
	assert.Contains(t, errorsOf(resp), "permission denied")
	s.RevokeToken(root)
	code, _ = call(t, s, nil, "GET", "/v1/auth/token/lookup-self", root, "", nil)
	assert.Equal(t, 403, code)
	other := s.NewToken(TokenParams{})
	s.RevokeAll()
	code, _ = call(t, s, nil, "GET", "/v1/auth/token/lookup-self", other, "", nil)
	assert.Equal(t, 403, code)
	assert.Equal(t, 5, s.Requests("auth/token/lookup-self"))
}

func TestLogins(t *testing.T) {
	s := New(t, Config{TLS: true})
	require.NotNil(t, s.CACertificate())
	p := TokenParams{TTL: time.Hour, Renewable: true}
	s.AddAppRole("approle", "role", "secret", p)
	s.AddKubernetesRole("kubernetes", "spire", "jwt", p)

	login := func(mount string, body map[string]any) (int, map[string]any) {
		return call(t, s, nil, "POST", "/v1/auth/"+mount+"/login", "", "", body)
	}
	for _, tt := range []struct {
		mount string
		body  map[string]any
		code  int
		err   string
	}{
		{"approle", map[string]any{"role_id": "role", "secret_id": "secret"}, 200, ""},
		{"approle", map[string]any{"secret_id": "secret"}, 400, "missing role_id"},
		{"approle", map[string]any{"role_id": "role", "secret_id": "x"}, 400, "invalid role or secret ID"},
		{"kubernetes", map[string]any{"role": "spire", "jwt": "jwt"}, 200, ""},
		{"kubernetes", map[string]any{"jwt": "jwt"}, 400, "missing role"},
		{"kubernetes", map[string]any{"role": "spire"}, 400, "missing jwt"},
		{"kubernetes", map[string]any{"role": "x", "jwt": "jwt"}, 400, "invalid role name"},
		{"kubernetes", map[string]any{"role": "spire", "jwt": "x"}, 403, "permission denied"},
		{"nowhere", map[string]any{}, 404, "no handler for route"},
	} {
		code, resp := login(tt.mount, tt.body)
		require.Equal(t, tt.code, code, "%s %v: %v", tt.mount, tt.body, resp)
		if tt.err != "" {
			assert.Contains(t, errorsOf(resp), tt.err)
			continue
		}
		auth := resp["auth"].(map[string]any)
		tok := auth["client_token"].(string)
		assert.EqualValues(t, 3600, auth["lease_duration"])
		code, _ = call(t, s, nil, "GET", "/v1/auth/token/lookup-self", tok, "", nil)
		assert.Equal(t, 200, code, "the token is live")
	}

	// Certificate logins present a client certificate over TLS.
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "clients"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	s.AddCertRole("cert", "spire", ca, p)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, ca, leafKey.Public(), caKey)
	require.NoError(t, err)
	withCert := s.Client()
	tr := withCert.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{{Certificate: [][]byte{leafDER, caDER}, PrivateKey: leafKey}}
	withCert = &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	code, resp := call(t, s, withCert, "POST", "/v1/auth/cert/login", "", "", map[string]any{"name": "spire"})
	require.Equal(t, 200, code, resp)
	code, resp = call(t, s, withCert, "POST", "/v1/auth/cert/login", "", "", map[string]any{"name": "other"})
	assert.Equal(t, 400, code)
	assert.Contains(t, errorsOf(resp), "invalid certificate")
	code, resp = call(t, s, nil, "POST", "/v1/auth/cert/login", "", "", map[string]any{})
	assert.Equal(t, 400, code)
	assert.Contains(t, errorsOf(resp), "client certificate must be supplied")
}

func TestSignIntermediate(t *testing.T) {
	for _, intermediate := range []bool{false, true} {
		s := New(t, Config{Intermediate: intermediate, PKIMount: "pki-x", Namespace: "ns"})
		tok := s.NewToken(TokenParams{})
		sign := func(body map[string]any) (int, map[string]any) {
			return call(t, s, nil, "POST", "/v1/pki-x/root/sign-intermediate", tok, "ns", body)
		}
		csr, key := csrPEM(t)
		code, resp := sign(map[string]any{"csr": csr, "common_name": "example.org", "uri_sans": "spiffe://example.org",
			"organization": []string{"SPIFFE"}, "ttl": "2h", "format": "pem_bundle"})
		require.Equal(t, 200, code, resp)
		data := resp["data"].(map[string]any)
		certs := parsePEM(t, data["certificate"].(string))
		if intermediate {
			require.Len(t, certs, 3, "the new CA, the intermediate, the root")
			assert.Equal(t, s.Issuer().Raw, certs[1].Raw)
		} else {
			require.Len(t, certs, 1)
			assert.Same(t, s.Root(), s.Issuer())
		}
		c := certs[0]
		assert.True(t, c.IsCA)
		assert.True(t, key.PublicKey.Equal(c.PublicKey))
		assert.Equal(t, []string{"example.org"}, c.DNSNames, "the common name is a SAN unless excluded")
		assert.Equal(t, "spiffe://example.org", c.URIs[0].String())
		assert.Equal(t, []string{"SPIFFE"}, c.Subject.Organization)
		assert.WithinDuration(t, time.Now().Add(2*time.Hour), c.NotAfter, time.Minute)
		require.NoError(t, c.CheckSignatureFrom(s.Issuer()))
		assert.EqualValues(t, c.NotAfter.Unix(), data["expiration"])
		assert.Contains(t, data["serial_number"], ":")
		assert.Len(t, data["ca_chain"], len(certs))

		code, resp = sign(map[string]any{"csr": csr, "common_name": "example.org", "exclude_cn_from_sans": true, "organization": "A,B"})
		require.Equal(t, 200, code, resp)
		c = parsePEM(t, resp["data"].(map[string]any)["certificate"].(string))[0]
		assert.Empty(t, c.DNSNames)
		assert.Equal(t, []string{"A", "B"}, c.Subject.Organization)
		assert.WithinDuration(t, time.Now().Add(maxLeaseTTL), c.NotAfter, time.Minute, "the default TTL")

		code, resp = sign(map[string]any{"csr": csr, "format": "der", "ttl": 60})
		require.Equal(t, 200, code, resp)
		der, err := base64.StdEncoding.DecodeString(resp["data"].(map[string]any)["certificate"].(string))
		require.NoError(t, err)
		_, err = x509.ParseCertificate(der)
		require.NoError(t, err)
		code, resp = sign(map[string]any{"csr": csr})
		require.Equal(t, 200, code, resp)
		assert.Len(t, parsePEM(t, resp["data"].(map[string]any)["certificate"].(string)), 1, "format pem: the certificate alone")

		// Vault's chain endpoints.
		code, resp = call(t, s, nil, "GET", "/v1/pki-x/cert/ca_chain", "", "ns", nil)
		require.Equal(t, 200, code)
		chain := parsePEM(t, resp["data"].(map[string]any)["certificate"].(string))
		assert.Equal(t, s.Root().Raw, chain[len(chain)-1].Raw)
		code, resp = call(t, s, nil, "GET", "/v1/pki-x/ca_chain", "", "ns", nil)
		require.Equal(t, 200, code)
		assert.Len(t, parsePEM(t, resp["raw"].(string)), len(chain))
	}

	s := New(t, Config{})
	tok := s.NewToken(TokenParams{})
	csr, _ := csrPEM(t)
	for _, tt := range []struct {
		name  string
		token string
		body  any
		code  int
		err   string
	}{
		{"no token", "", map[string]any{"csr": csr}, 403, "permission denied"},
		{"bad format", tok, map[string]any{"csr": csr, "format": "pkcs7"}, 400, "format"},
		{"no CSR", tok, map[string]any{}, 400, "certificate request could not be parsed"},
		{"bad CSR", tok, map[string]any{"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}, 400, "could not be parsed"},
		{"bad TTL", tok, map[string]any{"csr": csr, "ttl": "later"}, 400, "error parsing duration"},
		{"TTL over the max", tok, map[string]any{"csr": csr, "ttl": "10000h"}, 400, "ttl is larger than maximum allowed"},
		{"bad URI SAN", tok, map[string]any{"csr": csr, "uri_sans": "spiffe://a b/%zz"}, 400, "error parsing URI SAN"},
		{"not JSON", tok, []byte("{"), 400, "failed to parse JSON input"},
	} {
		code, resp := call(t, s, nil, "POST", "/v1/pki/root/sign-intermediate", tt.token, "", tt.body)
		assert.Equal(t, tt.code, code, tt.name)
		assert.Contains(t, errorsOf(resp), tt.err, tt.name)
	}
}

func TestServe(t *testing.T) {
	s := New(t, Config{Namespace: "ns"})
	tok := s.NewToken(TokenParams{})
	code, resp := call(t, s, nil, "GET", "/v1/auth/token/lookup-self", tok, "", nil)
	assert.Equal(t, 403, code, "another namespace")
	code, _ = call(t, s, nil, "GET", "/v2/x", tok, "ns", nil)
	assert.Equal(t, 404, code)
	code, resp = call(t, s, nil, "GET", "/v1/secret/data/x", tok, "ns", nil)
	assert.Equal(t, 404, code)
	assert.Contains(t, errorsOf(resp), "no handler for route")

	req, err := http.NewRequest("GET", s.URL()+"/v1/auth/token/lookup-self", nil)
	require.NoError(t, err)
	req.Header.Set("X-Vault-Namespace", "ns")
	r, err := s.Client().Do(req)
	require.NoError(t, err)
	r.Body.Close()
	assert.Equal(t, http.StatusPreconditionFailed, r.StatusCode, "no X-Vault-Request")

	// Tampering and raw answers.
	s.SetTamper(func(path string, resp map[string]any) { resp["data"] = map[string]any{"tampered": path} })
	code, resp = call(t, s, nil, "GET", "/v1/auth/token/lookup-self", tok, "ns", nil)
	require.Equal(t, 200, code)
	assert.Equal(t, "auth/token/lookup-self", resp["data"].(map[string]any)["tampered"])
	s.SetTamper(nil)
	s.SetRawResponse("auth/token/lookup-self", 418, []byte("teapot"))
	code, resp = call(t, s, nil, "GET", "/v1/auth/token/lookup-self", tok, "", nil)
	assert.Equal(t, 418, code)
	assert.Equal(t, "teapot", resp["raw"])
	s.SetRawResponse("auth/token/lookup-self", 0, nil)
	code, _ = call(t, s, nil, "GET", "/v1/auth/token/lookup-self", tok, "ns", nil)
	assert.Equal(t, 200, code)

	// Sign and PEM, for tests that make wrong answers.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	u, _ := url.Parse("spiffe://example.org")
	c, err := s.Sign(&x509.Certificate{URIs: []*url.URL{u}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}, key.Public())
	require.NoError(t, err)
	require.NoError(t, c.CheckSignatureFrom(s.Issuer()))
	assert.Equal(t, 2, strings.Count(PEM(c, s.Root()), "BEGIN CERTIFICATE"))

	started, err := Start(Config{})
	require.NoError(t, err)
	started.Close()
}
