package launch_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/launch"
)

// api serves e's launch server on a real unix socket and returns a client
// of it.
func (e *env) api(t *testing.T) (*http.Client, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "launch")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "l.sock")
	lis, err := e.ls.Listen(path)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.ls.Serve(ctx, lis) }()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		cancel()
		require.NoError(t, <-done)
	})
	return &http.Client{Transport: tr}, path
}

type reply struct {
	status int
	body   map[string]any
}

func call(t *testing.T, c *http.Client, method, path, body string) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://launcher"+path, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := reply{status: resp.StatusCode}
	if len(b) > 0 {
		require.NoError(t, json.Unmarshal(b, &r.body), string(b))
	}
	return r
}

func TestAPI(t *testing.T) {
	e := newEnv(t)
	c, path := e.api(t)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "only root and the server's uid are allowed: 0600")

	r := call(t, c, http.MethodPost, "/v1/launches", `{"spiffe_id": "spiffe://example.org/sandbox/1", "ttl": "10m", "jwt_svid_ttl": "1m", "hint": "job 1"}`)
	require.Equal(t, http.StatusCreated, r.status, r.body)
	assert.Equal(t, "spiffe://example.org/sandbox/1", r.body["spiffe_id"])
	assert.Equal(t, "10m0s", r.body["x509_svid_ttl"])
	assert.Equal(t, "1m0s", r.body["jwt_svid_ttl"])
	assert.Equal(t, "2026-12-07T01:10:00Z", r.body["expires_at"])
	id, handle := r.body["id"].(string), r.body["handle"].(string)

	created := e.logs.lines(t, "launch created")
	require.Len(t, created, 1)
	assert.EqualValues(t, os.Getuid(), created[0]["uid"], "the audit line names the launcher's uid")
	assert.EqualValues(t, os.Getpid(), created[0]["pid"])

	r = call(t, c, http.MethodGet, "/v1/launches/"+id, "")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, false, r.body["redeemed"])
	assert.Equal(t, "job 1", r.body["hint"])
	assert.NotContains(t, r.body, "handle")

	_, err = e.ls.Redeem(t.Context(), handle, nil)
	require.NoError(t, err)
	r = call(t, c, http.MethodGet, "/v1/launches/"+id, "")
	assert.Equal(t, true, r.body["redeemed"])

	r = call(t, c, http.MethodDelete, "/v1/launches/"+id, "")
	assert.Equal(t, http.StatusNoContent, r.status)
	r = call(t, c, http.MethodDelete, "/v1/launches/"+id, "")
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "not_found", r.body["error"])
	r = call(t, c, http.MethodGet, "/v1/launches/not-an-id", "")
	assert.Equal(t, http.StatusNotFound, r.status)

	for _, tt := range []struct{ name, body, want string }{
		{"reserved ID", `{"spiffe_id": "spiffe://example.org/spiffekit/server"}`, "reserved"},
		{"agent ID", `{"spiffe_id": "spiffe://example.org/spiffekit/agent/x"}`, "reserved"},
		{"no ID", `{}`, "spiffe_id is required"},
		{"TTL past the maximum", `{"spiffe_id": "spiffe://example.org/x", "ttl": "25h"}`, "TTL"},
		{"not JSON", `spiffe_id=x`, "not a JSON object"},
		{"too large", `{"hint": "` + strings.Repeat("x", launch.MaxRequestSize) + `"}`, "larger than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, c, http.MethodPost, "/v1/launches", tt.body)
			assert.Equal(t, http.StatusBadRequest, r.status)
			assert.Equal(t, "invalid", r.body["error"])
			assert.Contains(t, r.body["message"], tt.want)
		})
	}
	assert.Len(t, e.logs.lines(t, "launch refused"), 5, "every refused launch is logged, but a body too large to read")
}

func TestAPIRefusesOtherUIDs(t *testing.T) {
	e := newEnv(t, func(c *launch.Config) { c.AllowedUIDs = []int{os.Getuid() + 4242} })
	c, path := e.api(t)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o666), fi.Mode().Perm(), "another uid is allowed: the socket is open to all, the uid check holds")

	r := call(t, c, http.MethodPost, "/v1/launches", `{"spiffe_id": "spiffe://example.org/sandbox/1"}`)
	assert.Equal(t, http.StatusForbidden, r.status)
	assert.Equal(t, "permission_denied", r.body["error"])
	r = call(t, c, http.MethodDelete, "/v1/launches/0123456789abcdef0123456789abcdef", "")
	assert.Equal(t, http.StatusForbidden, r.status)
	entries, _, err := e.store.List(t.Context(), registryFilter(), registryPage())
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing was launched")
	assert.Len(t, e.logs.lines(t, "launcher connection refused: uid not allowed"), 1, "one line per connection")
}

// With Config.X509Authorities, each launch hands the launcher the trust
// domain's authorities, as PEM, for the sandbox.
func TestAPIHandsTheAuthorities(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(1), IsCA: true, BasicConstraintsValid: true},
		&x509.Certificate{SerialNumber: big.NewInt(1)}, key.Public(), key)
	require.NoError(t, err)
	root, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	e := newEnv(t, func(c *launch.Config) {
		c.X509Authorities = func() []*x509.Certificate { return []*x509.Certificate{root} }
	})
	c, _ := e.api(t)
	r := call(t, c, http.MethodPost, "/v1/launches", `{"spiffe_id": "spiffe://example.org/sandbox/1"}`)
	require.Equal(t, http.StatusCreated, r.status)
	b, rest := pem.Decode([]byte(r.body["x509_authorities"].(string)))
	require.NotNil(t, b)
	assert.Equal(t, der, b.Bytes)
	assert.Empty(t, rest)

	// Without it, none.
	e = newEnv(t)
	c, _ = e.api(t)
	r = call(t, c, http.MethodPost, "/v1/launches", `{"spiffe_id": "spiffe://example.org/sandbox/1"}`)
	require.Equal(t, http.StatusCreated, r.status)
	assert.NotContains(t, r.body, "x509_authorities")
}

// With Config.JWTAuthorities, each launch hands the launcher the trust
// domain's JWT authorities, as a JWK Set (a JWT bundle), for the sandbox
// to validate JWT-SVIDs with.
func TestAPIHandsTheJWTAuthorities(t *testing.T) {
	k1, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	k2, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	keys := map[string]crypto.PublicKey{"jwt-1": k1.Public(), "jwt-2": k2.Public()}
	e := newEnv(t, func(c *launch.Config) {
		c.JWTAuthorities = func() map[string]crypto.PublicKey { return keys }
	})
	c, _ := e.api(t)
	r := call(t, c, http.MethodPost, "/v1/launches", `{"spiffe_id": "spiffe://example.org/sandbox/1"}`)
	require.Equal(t, http.StatusCreated, r.status)
	doc, err := json.Marshal(r.body["jwt_authorities"])
	require.NoError(t, err)
	b, err := jwtbundle.Parse(td, doc)
	require.NoError(t, err, "a JWK Set: %s", doc)
	assert.True(t, b.Equal(jwtbundle.FromJWTAuthorities(td, keys)), "the trust domain's keys, by key ID: %s", doc)
	assert.NotContains(t, string(doc), `"d"`, "public keys only")

	// A trust domain without JWT keys: an empty set, which validates
	// nothing; without the function, none.
	checkNoAuthorities(t, "jwt_authorities", func(c *launch.Config, keys func() map[string]crypto.PublicKey) { c.JWTAuthorities = keys })
}

// checkNoAuthorities checks the JWK Set field of a launch response that set
// configures: an empty set when the function returns no keys, no field
// without the function.
func checkNoAuthorities(t *testing.T, field string, set func(*launch.Config, func() map[string]crypto.PublicKey)) {
	t.Helper()
	e := newEnv(t, func(c *launch.Config) {
		set(c, func() map[string]crypto.PublicKey { return nil })
	})
	c, _ := e.api(t)
	r := call(t, c, http.MethodPost, "/v1/launches", `{"spiffe_id": "spiffe://example.org/sandbox/1"}`)
	require.Equal(t, http.StatusCreated, r.status)
	assert.Equal(t, map[string]any{"keys": []any{}}, r.body[field])

	e = newEnv(t)
	c, _ = e.api(t)
	r = call(t, c, http.MethodPost, "/v1/launches", `{"spiffe_id": "spiffe://example.org/sandbox/1"}`)
	require.Equal(t, http.StatusCreated, r.status)
	assert.NotContains(t, r.body, field)
}

// With Config.WITAuthorities, each launch hands the launcher the trust
// domain's WIT authorities as a JWK Set (a WIT bundle), as it does the
// JWT authorities, for the sandbox to validate WIT-SVIDs with; the two
// sets are kept apart.
func TestAPIHandsTheWITAuthorities(t *testing.T) {
	jwtKey, witKey := testca.NewECKey(t), testca.NewECKey(t)
	keys := map[string]crypto.PublicKey{"wit-1": witKey.Public()}
	e := newEnv(t, func(c *launch.Config) {
		c.JWTAuthorities = func() map[string]crypto.PublicKey { return map[string]crypto.PublicKey{"jwt-1": jwtKey.Public()} }
		c.WITAuthorities = func() map[string]crypto.PublicKey { return keys }
	})
	c, _ := e.api(t)
	r := call(t, c, http.MethodPost, "/v1/launches", `{"spiffe_id": "spiffe://example.org/sandbox/1"}`)
	require.Equal(t, http.StatusCreated, r.status)
	doc, err := json.Marshal(r.body["wit_authorities"])
	require.NoError(t, err)
	b, err := witbundle.Parse(td, doc)
	require.NoError(t, err, "a JWK Set: %s", doc)
	assert.True(t, b.Equal(witbundle.FromWITAuthorities(td, keys)), "the trust domain's WIT keys, by key ID: %s", doc)
	assert.NotContains(t, string(doc), `"d"`, "public keys only")
	jwtDoc, err := json.Marshal(r.body["jwt_authorities"])
	require.NoError(t, err)
	assert.NotContains(t, string(jwtDoc), "wit-1", "a WIT key is no JWT authority")

	// A trust domain without WIT keys (no server signs WIT-SVIDs): an
	// empty set, which validates nothing; without the function, none.
	checkNoAuthorities(t, "wit_authorities", func(c *launch.Config, keys func() map[string]crypto.PublicKey) { c.WITAuthorities = keys })
}

// A JWT or WIT authority the launcher API cannot hand as a public JWK
// (here a private key, given by mistake) fails the launch with an
// internal error: the key is never sent, and the launch, whose handle no
// one received, is ended rather than left alive.
func TestAPIRefusesToHandAPrivateKey(t *testing.T) {
	for _, kind := range []string{"JWT", "WIT"} {
		t.Run(kind, func(t *testing.T) {
			k := testca.NewECKey(t)
			private := func() map[string]crypto.PublicKey { return map[string]crypto.PublicKey{"key-1": k} }
			e := newEnv(t, func(c *launch.Config) {
				if kind == "JWT" {
					c.JWTAuthorities = private
				} else {
					c.WITAuthorities = private
				}
				c.MaxLive = 1
			})
			c, _ := e.api(t)
			for range 2 {
				r := call(t, c, http.MethodPost, "/v1/launches", `{"spiffe_id": "spiffe://example.org/sandbox/1"}`)
				assert.Equal(t, http.StatusInternalServerError, r.status, "not refused for too many live launches: the first was ended")
				assert.Equal(t, "launch: internal error", r.body["message"])
				assert.NotContains(t, r.body, "jwt_authorities")
				assert.NotContains(t, r.body, "wit_authorities")
			}
			entries, _, err := e.store.List(t.Context(), registryFilter(), registryPage())
			require.NoError(t, err)
			assert.Empty(t, entries, "the launches were ended")
			assert.Len(t, e.logs.lines(t, "launch ended"), 2)
			failed := e.logs.lines(t, "launcher request failed")
			require.Len(t, failed, 2)
			assert.Contains(t, failed[0]["err"], "the "+kind+" authorities of launch")
		})
	}
}

// A request that did not come through Serve has no known caller.
func TestHandlerWithoutServe(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(e.ls.Handler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v1/launches", "application/json", strings.NewReader(`{"spiffe_id": "spiffe://example.org/a"}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
}

func TestAPIFailures(t *testing.T) {
	e := newEnv(t, func(c *launch.Config) { c.Rate, c.Burst = 0.001, 1 })
	fs := &failingStore{Store: e.store}
	ls, err := launch.New(launch.Config{TrustDomain: td, Entries: fs, Now: e.clock.Now, Rate: 0.001, Burst: 1})
	require.NoError(t, err)
	e.ls = ls
	c, _ := e.api(t)
	r := call(t, c, http.MethodPost, "/v1/launches", `{"spiffe_id": "spiffe://example.org/a"}`)
	require.Equal(t, http.StatusCreated, r.status)
	r = call(t, c, http.MethodPost, "/v1/launches", `{"spiffe_id": "spiffe://example.org/b"}`)
	assert.Equal(t, http.StatusTooManyRequests, r.status)
	assert.Equal(t, "rate_limited", r.body["error"])
	fs.fail(errDown)
	r = call(t, c, http.MethodGet, "/v1/launches/0123456789abcdef0123456789abcdef", "")
	assert.Equal(t, http.StatusInternalServerError, r.status)
	assert.Equal(t, "launch: internal error", r.body["message"], "the cause stays in the log")
}

func TestListenRefusesAFile(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	_, err := e.ls.Listen(path)
	assert.ErrorContains(t, err, "launch:")
}

func TestServeFailsWithItsListener(t *testing.T) {
	e := newEnv(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	lis.Close()
	assert.Error(t, e.ls.Serve(t.Context(), lis))
}
