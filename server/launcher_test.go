package server_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	tokenexchange "github.com/spiffekit/spiffekit/exchange"
	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/launch"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// testClock is a clock a test moves forward.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// launchServer is a real server with the launcher API on a unix socket
// and the token exchange endpoint (no OIDC issuer: launch handles only),
// a client of each, and the server's log.
type launchServer struct {
	*nodetest.Server
	launcher *http.Client
	exchange *http.Client
	url      string
	logs     *logtest.Buffer
	clock    *testClock
}

func startLaunchServer(t testing.TB, mod ...func(*server.Config)) *launchServer {
	t.Helper()
	return startLaunchServerWith(t, func(cfg server.Config) *nodetest.Server { return nodetest.StartServer(t, cfg) }, mod...)
}

// startLaunchServerWith is startLaunchServer with the server started by
// start (nodetest.StartServerIn, for a server over SQLite).
func startLaunchServerWith(t testing.TB, start func(server.Config) *nodetest.Server, mod ...func(*server.Config)) *launchServer {
	t.Helper()
	dir, err := os.MkdirTemp("", "launch")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "launch.sock")
	clock := &testClock{now: time.Now()}
	logs := &logtest.Buffer{}
	cfg := server.Config{
		Logger:        logs.Logger(),
		Now:           clock.Now,
		TokenExchange: &server.TokenExchange{Bind: "127.0.0.1:0"},
		Launcher:      &server.Launcher{SocketPath: sock},
	}
	for _, m := range mod {
		m(&cfg)
	}
	s := start(cfg)
	require.Equal(t, sock, s.LauncherAddr().String())
	serverID := spiffeid.RequireFromPath(s.TrustDomain(), nodeapi.ServerPath)
	tr := &http.Transport{TLSClientConfig: tlsconfig.TLSClientConfig(s.Bundle().X509Bundle(), tlsconfig.AuthorizeID(serverID))}
	lt := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	t.Cleanup(lt.CloseIdleConnections)
	return &launchServer{Server: s, logs: logs, clock: clock,
		launcher: &http.Client{Transport: lt}, exchange: &http.Client{Transport: tr},
		url: "https://" + s.ExchangeAddr().String() + server.ExchangePath}
}

type launchReply struct {
	status int
	body   map[string]any
}

// call calls the launcher API.
func (s *launchServer) call(t testing.TB, method, path, body string) launchReply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://launcher"+path, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := s.launcher.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	r := launchReply{status: resp.StatusCode}
	if resp.StatusCode != http.StatusNoContent {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&r.body))
	}
	return r
}

// launch makes a launch of path through the launcher API and returns its
// ID and handle.
func (s *launchServer) launch(t testing.TB, path, extra string) (id, handle string) {
	t.Helper()
	r := s.call(t, http.MethodPost, "/v1/launches", `{"spiffe_id": "spiffe://`+s.TrustDomain().Name()+path+`"`+extra+`}`)
	require.Equal(t, http.StatusCreated, r.status, r.body)
	return r.body["id"].(string), r.body["handle"].(string)
}

// redeem posts handle to the token exchange endpoint, as a sandbox does,
// for an X509-SVID for key (or a JWT-SVID for aud when key is nil).
func (s *launchServer) redeem(t testing.TB, handle string, key crypto.Signer, aud string) exchangeAnswer {
	t.Helper()
	form := url.Values{
		"grant_type":         {tokenexchange.GrantType},
		"subject_token":      {handle},
		"subject_token_type": {tokenexchange.TokenTypeLaunchHandle},
	}
	if key != nil {
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		require.NoError(t, err)
		form.Set("csr", base64.RawURLEncoding.EncodeToString(csr))
	} else {
		form.Set("audience", aud)
	}
	resp, err := s.exchange.PostForm(s.url, form)
	require.NoError(t, err)
	defer resp.Body.Close()
	a := exchangeAnswer{status: resp.StatusCode}
	if resp.StatusCode == http.StatusOK {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&a.resp))
	} else {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&a.err))
	}
	return a
}

// verifyChain parses a PEM chain and verifies it against the server's
// bundle, returning the SVID's ID and leaf.
func (s *launchServer) verifyChain(t testing.TB, chainPEM string) (spiffeid.ID, *x509.Certificate) {
	t.Helper()
	var chain []*x509.Certificate
	for rest := []byte(chainPEM); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		require.NoError(t, err)
		chain = append(chain, c)
	}
	require.NotEmpty(t, chain)
	id, _, err := x509svid.Verify(chain, s.Bundle().X509Bundle())
	require.NoError(t, err)
	return id, chain[0]
}

func newECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

// TestLaunchToSVID: a launcher makes a launch over the launcher socket;
// the sandbox trades its handle, over the token exchange endpoint, for an
// X509-SVID that verifies against the server's bundle with the launch's
// SPIFFE ID and ends with the launch; the handle is refused the second
// time.
func TestLaunchToSVID(t *testing.T) {
	s := startLaunchServer(t)
	r := s.call(t, http.MethodPost, "/v1/launches", `{"spiffe_id": "spiffe://`+s.TrustDomain().Name()+`/sandbox/1", "ttl": "10m", "hint": "agent run 1"}`)
	require.Equal(t, http.StatusCreated, r.status, r.body)
	id, handle := r.body["id"].(string), r.body["handle"].(string)

	// The sandbox authenticates the endpoint with the authorities the
	// launcher handed it, and nothing else.
	var roots []*x509.Certificate
	for rest := []byte(r.body["x509_authorities"].(string)); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		require.NoError(t, err)
		roots = append(roots, c)
	}
	require.Equal(t, s.Bundle().X509Authorities(), roots)
	sandbox := &http.Transport{TLSClientConfig: tlsconfig.TLSClientConfig(x509bundle.FromX509Authorities(s.TrustDomain(), roots),
		tlsconfig.AuthorizeID(spiffeid.RequireFromPath(s.TrustDomain(), nodeapi.ServerPath)))}
	defer sandbox.CloseIdleConnections()
	s.exchange = &http.Client{Transport: sandbox}

	key := newECKey(t)
	a := s.redeem(t, handle, key, "")
	require.Equal(t, http.StatusOK, a.status, a.err)
	svidID, leaf := s.verifyChain(t, a.resp.AccessToken)
	assert.Equal(t, "spiffe://"+s.TrustDomain().Name()+"/sandbox/1", svidID.String())
	assert.Equal(t, svidID.String(), a.resp.SPIFFEID)
	assert.True(t, leaf.PublicKey.(*ecdsa.PublicKey).Equal(key.Public()), "the SVID is for the CSR's key")
	assert.False(t, leaf.NotAfter.After(s.clock.Now().Add(10*time.Minute)), "the SVID ends with the launch")

	// Single use.
	a = s.redeem(t, handle, newECKey(t), "")
	assert.Equal(t, http.StatusBadRequest, a.status)
	assert.Equal(t, "invalid_request", a.err.Error)

	r = s.call(t, http.MethodGet, "/v1/launches/"+id, "")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, true, r.body["redeemed"])
	assert.Equal(t, "agent run 1", r.body["hint"])

	// The launch's entry is never an agent's: its parent is reserved.
	e, err := s.Stores.Entries.Get(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, launch.ParentID(s.TrustDomain()), e.ParentID)

	r = s.call(t, http.MethodDelete, "/v1/launches/"+id, "")
	assert.Equal(t, http.StatusNoContent, r.status)
	_, err = s.Stores.Entries.Get(t.Context(), id)
	require.ErrorIs(t, err, registry.ErrNotFound)

	// The audit: a line per launch, redemption, exchange and end; never
	// the handle.
	_, secret, _ := strings.Cut(handle, ".")
	logs := s.logs.String()
	assert.NotContains(t, logs, secret)
	for _, msg := range []string{`"launch created"`, `"launch redeemed"`, `"token exchanged"`, `"launch ended"`} {
		assert.Equal(t, 1, strings.Count(logs, msg), msg)
	}
}

// TestLaunchJWTSVID: a handle redeemed for a JWT-SVID for an audience,
// which validates with the JWT authorities the launch handed: the trust
// domain's JWT keys, as a JWK Set.
func TestLaunchJWTSVID(t *testing.T) {
	s := startLaunchServer(t)
	r := s.call(t, http.MethodPost, "/v1/launches", `{"spiffe_id": "spiffe://`+s.TrustDomain().Name()+`/sandbox/jwt", "jwt_svid_ttl": "2m"}`)
	require.Equal(t, http.StatusCreated, r.status, r.body)
	handle := r.body["handle"].(string)
	doc, err := json.Marshal(r.body["jwt_authorities"])
	require.NoError(t, err)
	keys, err := jwtbundle.Parse(s.TrustDomain(), doc)
	require.NoError(t, err, "%s", doc)
	require.NotEmpty(t, keys.JWTAuthorities())
	assert.True(t, keys.Equal(s.Bundle().JWTBundle()), "the trust domain's JWT keys")

	a := s.redeem(t, handle, nil, "https://api.example.com")
	require.Equal(t, http.StatusOK, a.status, a.err)
	svid, err := jwtsvid.ParseAndValidate(a.resp.AccessToken, keys, []string{"https://api.example.com"})
	require.NoError(t, err)
	assert.Equal(t, "/sandbox/jwt", svid.ID.Path())
	assert.False(t, svid.Expiry.After(s.clock.Now().Add(2*time.Minute)), "the launch's JWT-SVID TTL")
}

// TestLaunchWITAuthorities: a server that signs WIT-SVIDs hands its trust
// domain's WIT keys with each launch, as a JWK Set beside the JWT keys;
// a WIT-SVID that a workload of an agent obtains, and shows the sandbox,
// validates against them. A server that signs none hands an empty set.
func TestLaunchWITAuthorities(t *testing.T) {
	s := startLaunchServer(t, func(c *server.Config) { c.WITSVIDs = true })
	r := s.call(t, http.MethodPost, "/v1/launches", `{"spiffe_id": "spiffe://`+s.TrustDomain().Name()+`/sandbox/wit"}`)
	require.Equal(t, http.StatusCreated, r.status, r.body)
	doc, err := json.Marshal(r.body["wit_authorities"])
	require.NoError(t, err)
	keys, err := witbundle.Parse(s.TrustDomain(), doc)
	require.NoError(t, err, "%s", doc)
	require.NotEmpty(t, keys.WITAuthorities())
	assert.True(t, keys.Equal(s.Bundle().WITBundle()), "the trust domain's WIT keys")

	peer, c := nodetest.StartWITWorkload(t, s, "/peer")
	shown, err := c.FetchWITSVID(t.Context(), "")
	require.NoError(t, err)
	svid, err := witsvid.ParseAndValidate(shown.Marshal(), keys)
	require.NoError(t, err, "the WIT-SVID validates with the keys the launch handed")
	assert.Equal(t, peer.SPIFFEID, svid.ID)

	plain := startLaunchServer(t)
	r = plain.call(t, http.MethodPost, "/v1/launches", `{"spiffe_id": "spiffe://`+plain.TrustDomain().Name()+`/sandbox/wit"}`)
	require.Equal(t, http.StatusCreated, r.status, r.body)
	assert.Equal(t, map[string]any{"keys": []any{}}, r.body["wit_authorities"], "no WIT key")
}

// TestLaunchRefusals: the rules a launcher or a sandbox might try to break.
func TestLaunchRefusals(t *testing.T) {
	s := startLaunchServer(t)
	// Reserved IDs: the server's and the agents' namespace.
	for _, path := range []string{"/spiffekit/server", "/spiffekit/agent/join_token/x", "/spiffekit/launch"} {
		r := s.call(t, http.MethodPost, "/v1/launches", `{"spiffe_id": "spiffe://`+s.TrustDomain().Name()+path+`"}`)
		assert.Equal(t, http.StatusBadRequest, r.status, path)
		assert.Contains(t, r.body["message"], "reserved", path)
	}
	r := s.call(t, http.MethodPost, "/v1/launches", `{"spiffe_id": "spiffe://other.test/x"}`)
	assert.Equal(t, http.StatusBadRequest, r.status, "another trust domain")
	r = s.call(t, http.MethodPost, "/v1/launches", `{"spiffe_id": "spiffe://`+s.TrustDomain().Name()+`/x", "ttl": "48h"}`)
	assert.Equal(t, http.StatusBadRequest, r.status, "past the maximum TTL")

	// A forged handle: a launch's ID with another secret.
	id, handle := s.launch(t, "/sandbox/a", "")
	_, other := s.launch(t, "/sandbox/b", "")
	_, otherSecret, _ := strings.Cut(other, ".")
	a := s.redeem(t, id+"."+otherSecret, newECKey(t), "")
	assert.Equal(t, http.StatusBadRequest, a.status)
	// ... leaves the real one usable.
	a = s.redeem(t, handle, newECKey(t), "")
	assert.Equal(t, http.StatusOK, a.status, a.err)

	// A launch ended early: its handle is refused.
	id, handle = s.launch(t, "/sandbox/c", "")
	assert.Equal(t, http.StatusNoContent, s.call(t, http.MethodDelete, "/v1/launches/"+id, "").status)
	a = s.redeem(t, handle, newECKey(t), "")
	assert.Equal(t, http.StatusBadRequest, a.status)

	// The launcher can neither see nor end an entry that is not a launch.
	e := s.Register(t, spiffeid.RequireFromPath(s.TrustDomain(), "/spiffekit/agent/x"), "/workload")
	assert.Equal(t, http.StatusNotFound, s.call(t, http.MethodDelete, "/v1/launches/"+e.ID, "").status)
	assert.Equal(t, http.StatusNotFound, s.call(t, http.MethodGet, "/v1/launches/"+e.ID, "").status)
	_, err := s.Stores.Entries.Get(t.Context(), e.ID)
	require.NoError(t, err)
}

// TestLaunchExpiry: at its TTL a launch's handle is refused and the server
// prunes its entry; the clock is the server's, moved by the test.
func TestLaunchExpiry(t *testing.T) {
	s := startLaunchServer(t)
	id, handle := s.launch(t, "/sandbox/short", `, "ttl": "1m"`)
	_, redeemed := s.launch(t, "/sandbox/redeemed", `, "ttl": "1m"`)
	require.Equal(t, http.StatusOK, s.redeem(t, redeemed, newECKey(t), "").status)
	lasting, _ := s.launch(t, "/sandbox/lasting", `, "ttl": "1h"`)

	s.clock.Add(time.Minute)
	a := s.redeem(t, handle, newECKey(t), "")
	assert.Equal(t, http.StatusBadRequest, a.status, "an expired handle is refused")

	// The server's index takes an entry out at its expiry when synced
	// (Run syncs it then); the pruner deletes what the index holds
	// expired.
	_, err := s.Node().Index().Sync(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 2, s.PruneEntries(t.Context()))
	_, err = s.Stores.Entries.Get(t.Context(), id)
	require.ErrorIs(t, err, registry.ErrNotFound, "the launch's entry is gone")
	assert.Equal(t, http.StatusNotFound, s.call(t, http.MethodGet, "/v1/launches/"+id, "").status)
	assert.Equal(t, http.StatusOK, s.call(t, http.MethodGet, "/v1/launches/"+lasting, "").status, "a launch not yet ended stays")
}

// TestLaunchMaxLive: the live launches are counted in the server's entry
// index: once it holds MaxLive, a launch is refused with 503
// too_many_launches, and a launch ended makes room.
func TestLaunchMaxLive(t *testing.T) {
	s := startLaunchServer(t, func(c *server.Config) { c.Launcher.Service.MaxLive = 2 })
	id, _ := s.launch(t, "/sandbox/a", "")
	s.launch(t, "/sandbox/b", "")
	_, err := s.Node().Index().Sync(t.Context())
	require.NoError(t, err)
	r := s.call(t, http.MethodPost, "/v1/launches", `{"spiffe_id": "spiffe://`+s.TrustDomain().Name()+`/sandbox/c"}`)
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.Equal(t, "too_many_launches", r.body["error"])
	assert.Contains(t, r.body["message"], "2 alive")

	assert.Equal(t, http.StatusNoContent, s.call(t, http.MethodDelete, "/v1/launches/"+id, "").status)
	_, err = s.Node().Index().Sync(t.Context())
	require.NoError(t, err)
	s.launch(t, "/sandbox/c", "")
}

// TestLauncherRefusesOtherUIDs: a uid not allowed is refused on the
// launcher socket (the test runs as one uid: it allows only another).
func TestLauncherRefusesOtherUIDs(t *testing.T) {
	s := startLaunchServer(t, func(c *server.Config) { c.Launcher.Service.AllowedUIDs = []int{os.Getuid() + 4242} })
	r := s.call(t, http.MethodPost, "/v1/launches", `{"spiffe_id": "spiffe://`+s.TrustDomain().Name()+`/x"}`)
	assert.Equal(t, http.StatusForbidden, r.status)
	assert.Equal(t, "permission_denied", r.body["error"])
}

func TestLauncherConfig(t *testing.T) {
	base := func(mod func(*server.Config)) server.Config {
		c := server.Config{
			TrustDomain:   td,
			TokenExchange: &server.TokenExchange{Bind: "127.0.0.1:0"},
			Launcher:      &server.Launcher{SocketPath: "/run/spiffekit/launch.sock"},
		}
		mod(&c)
		return c
	}
	require.NoError(t, server.Validate(base(func(*server.Config) {})), "a token exchange for launch handles alone needs no issuer")
	for _, tt := range []struct {
		name string
		mod  func(*server.Config)
		want string
	}{
		{"no token exchange", func(c *server.Config) { c.TokenExchange = nil }, "token exchange"},
		{"no socket", func(c *server.Config) { c.Launcher.SocketPath = "" }, "SocketPath"},
		{"socket path too long", func(c *server.Config) { c.Launcher.SocketPath = "/" + strings.Repeat("x", 200) }, "longer"},
		{"the admin socket", func(c *server.Config) { c.AdminSocket = c.Launcher.SocketPath }, "both listen"},
		{"bad TTL", func(c *server.Config) { c.Launcher.Service.MaxTTL = 48 * time.Hour }, "maximum TTL"},
		{"no issuer nor launcher", func(c *server.Config) { c.Launcher = nil }, "at least one issuer"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := server.Validate(base(tt.mod))
			require.ErrorIs(t, err, server.ErrInvalidConfig)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}
