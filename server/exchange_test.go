package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/ca/keymanager"
	tokenexchange "github.com/spiffekit/spiffekit/exchange"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/internal/testing/oidctest"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

const exchangeAudience = "spiffe://example.org/token-exchange"

// exchangeServer is a real server with the token exchange endpoint trusting
// a real OIDC issuer, and an HTTPS client that authenticates the endpoint
// by the server's SPIFFE ID.
type exchangeServer struct {
	*nodetest.Server
	iss    *oidctest.Issuer
	client *http.Client
	url    string
	logs   *logtest.Buffer
}

func startExchangeServer(t *testing.T) *exchangeServer {
	t.Helper()
	iss := oidctest.New(t)
	logs := &logtest.Buffer{}
	s := nodetest.StartServer(t, server.Config{
		Logger: logs.Logger(),
		TokenExchange: &server.TokenExchange{
			Bind: "127.0.0.1:0",
			Endpoint: tokenexchange.Config{
				Issuers: []tokenexchange.Issuer{{URL: iss.URL, Audience: exchangeAudience, Client: iss.Client()}},
			},
		},
	})
	serverID := spiffeid.RequireFromPath(s.TrustDomain(), nodeapi.ServerPath)
	tr := &http.Transport{TLSClientConfig: tlsconfig.TLSClientConfig(s.Bundle().X509Bundle(), tlsconfig.AuthorizeID(serverID))}
	t.Cleanup(tr.CloseIdleConnections)
	return &exchangeServer{Server: s, iss: iss, client: &http.Client{Transport: tr}, logs: logs,
		url: "https://" + s.ExchangeAddr().String() + server.ExchangePath}
}

// register creates, through the admin API, an entry obtainable by token
// exchange, and waits until the server's index holds it.
func (s *exchangeServer) register(t *testing.T, path string, sels ...string) registry.Entry {
	t.Helper()
	e := registry.Entry{SPIFFEID: spiffeid.RequireFromPath(s.TrustDomain(), path), ParentID: tokenexchange.ParentID(s.TrustDomain())}
	for _, v := range sels {
		e.Selectors = append(e.Selectors, attest.Selector{Type: tokenexchange.SelectorType, Value: s.iss.URL + ":" + v})
	}
	e, err := s.Admin.CreateEntry(t.Context(), e)
	require.NoError(t, err)
	deadline := time.Now().Add(30 * time.Second)
	for len(s.Node().Index().ForWorkload(e.Selectors)) == 0 {
		require.True(t, time.Now().Before(deadline), "the server's index never held the entry")
		time.Sleep(10 * time.Millisecond)
	}
	return e
}

type exchangeAnswer struct {
	status int
	resp   tokenexchange.Response
	err    struct {
		Error string `json:"error"`
	}
}

func (s *exchangeServer) post(t *testing.T, form url.Values) exchangeAnswer {
	t.Helper()
	resp, err := s.client.PostForm(s.url, form)
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

func exchangeForm(token string) url.Values {
	return url.Values{
		"grant_type":         {tokenexchange.GrantType},
		"subject_token":      {token},
		"subject_token_type": {tokenexchange.TokenTypeJWT},
		"audience":           {"https://api.example.com"},
	}
}

// TestTokenExchange: a token of a local OIDC issuer is exchanged, over the
// server's HTTPS endpoint, for a JWT-SVID and an X509-SVID that verify
// against the server's bundle; the tokens that must not be are refused.
func TestTokenExchange(t *testing.T) {
	s := startExchangeServer(t)
	entry := s.register(t, "/ci/app", "sub:repo:acme/app", "claim:ref:refs/heads/main")
	claims := s.iss.Claims("repo:acme/app", exchangeAudience)
	claims["ref"] = "refs/heads/main"
	token := s.iss.Mint(t, claims)

	a := s.post(t, exchangeForm(token))
	require.Equal(t, http.StatusOK, a.status, a.err)
	svid, err := jwtsvid.ParseAndValidate(a.resp.AccessToken, s.Bundle().JWTBundle(), []string{"https://api.example.com"})
	require.NoError(t, err)
	assert.Equal(t, entry.SPIFFEID, svid.ID)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	require.NoError(t, err)
	form := exchangeForm(token)
	form.Del("audience")
	form.Set("csr", base64.RawURLEncoding.EncodeToString(csr))
	a = s.post(t, form)
	require.Equal(t, http.StatusOK, a.status, a.err)
	var chain []*x509.Certificate
	for rest := []byte(a.resp.AccessToken); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		require.NoError(t, err)
		chain = append(chain, c)
	}
	id, _, err := x509svid.Verify(chain, s.Bundle().X509Bundle())
	require.NoError(t, err)
	assert.Equal(t, entry.SPIFFEID, id)
	assert.True(t, key.PublicKey.Equal(chain[0].PublicKey))
	assert.True(t, s.logs.Contains(`msg="token exchanged"`))
	assert.True(t, s.logs.Contains("spiffe_id="+entry.SPIFFEID.String()))
	assert.False(t, s.logs.Contains(token), "the token is never logged")

	other := oidctest.New(t)
	now := time.Now()
	with := func(k string, v any) map[string]any {
		c := s.iss.Claims("repo:acme/app", exchangeAudience)
		c["ref"] = "refs/heads/main"
		c[k] = v
		return c
	}
	for _, tt := range []struct{ name, token string }{
		{"unconfigured issuer", other.Mint(t, other.Claims("repo:acme/app", exchangeAudience))},
		{"expired", s.iss.Mint(t, with("exp", now.Add(-time.Minute).Unix()))},
		{"not yet valid", s.iss.Mint(t, with("nbf", now.Add(10*time.Minute).Unix()))},
		{"wrong audience", s.iss.Mint(t, with("aud", "spiffe://example.org/elsewhere"))},
		{"wrong signature", s.iss.MintForeign(t, with("ref", "refs/heads/main"))},
		{"alg none", oidctest.Unsigned("key-1", with("ref", "refs/heads/main"))},
		{"no entry", s.iss.Mint(t, with("ref", "refs/heads/feature"))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := s.post(t, exchangeForm(tt.token))
			assert.Equal(t, http.StatusBadRequest, a.status)
			assert.Equal(t, "invalid_request", a.err.Error)
		})
	}
	assert.Zero(t, other.Fetches())
}

// TestTokenExchangeReserved: an entry parented for exchange cannot name a
// reserved identity: the admin API refuses it, so the server's own ID is
// never issuable this way.
func TestTokenExchangeReserved(t *testing.T) {
	s := startExchangeServer(t)
	_, err := s.Admin.CreateEntry(t.Context(), registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(s.TrustDomain(), nodeapi.ServerPath),
		ParentID:  tokenexchange.ParentID(s.TrustDomain()),
		Selectors: []attest.Selector{{Type: tokenexchange.SelectorType, Value: s.iss.URL + ":sub:x"}},
	})
	require.Error(t, err)
	a := s.post(t, exchangeForm(s.iss.Mint(t, s.iss.Claims("x", exchangeAudience))))
	assert.Equal(t, http.StatusBadRequest, a.status)
}

// TestTokenExchangeWebCertificate: the endpoint can present a certificate
// of the operator's instead of the server's X509-SVID.
func TestTokenExchangeWebCertificate(t *testing.T) {
	iss := oidctest.New(t)
	cert, root := serverCert(t, "exchange")
	s := nodetest.StartServer(t, server.Config{
		TokenExchange: &server.TokenExchange{
			Bind:        "127.0.0.1:0",
			Certificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil },
			Endpoint:    tokenexchange.Config{Issuers: []tokenexchange.Issuer{{URL: iss.URL, Audience: exchangeAudience, Client: iss.Client()}}},
		},
	})
	tr := &http.Transport{TLSClientConfig: webTLS(root)}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).PostForm("https://"+s.ExchangeAddr().String()+server.ExchangePath, exchangeForm("x.y.z"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

func TestTokenExchangeConfig(t *testing.T) {
	iss := tokenexchange.Issuer{URL: "https://issuer.example", Audience: "a"}
	for _, tt := range []struct {
		name string
		te   server.TokenExchange
	}{
		{"no bind", server.TokenExchange{Endpoint: tokenexchange.Config{Issuers: []tokenexchange.Issuer{iss}}}},
		{"bad bind", server.TokenExchange{Bind: "nowhere", Endpoint: tokenexchange.Config{Issuers: []tokenexchange.Issuer{iss}}}},
		{"no issuer", server.TokenExchange{Bind: "127.0.0.1:0"}},
		{"bad issuer", server.TokenExchange{Bind: "127.0.0.1:0", Endpoint: tokenexchange.Config{Issuers: []tokenexchange.Issuer{{URL: "http://x", Audience: "a"}}}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			te := tt.te
			_, err := server.New(t.Context(), server.Config{
				TrustDomain: nodetest.TrustDomain, Stores: server.StoresOf(memstore.New(memstore.Config{})), KeyManager: keymanager.NewMemory(),
				BindAddr: "127.0.0.1:0", TokenExchange: &te,
			})
			require.ErrorIs(t, err, server.ErrInvalidConfig)
		})
	}
	for _, cfg := range []server.Config{
		{BindAddr: "127.0.0.1:8081", TokenExchange: &server.TokenExchange{Bind: ":8081", Endpoint: tokenexchange.Config{Issuers: []tokenexchange.Issuer{iss}}}},
		{BindAddr: "127.0.0.1:0", FederationBind: "0.0.0.0:8443", TokenExchange: &server.TokenExchange{Bind: "127.0.0.1:8443", Endpoint: tokenexchange.Config{Issuers: []tokenexchange.Issuer{iss}}}},
	} {
		cfg.TrustDomain = nodetest.TrustDomain
		err := server.Validate(cfg)
		require.ErrorIs(t, err, server.ErrInvalidConfig)
		assert.ErrorContains(t, err, "both listen on")
	}
	assert.Nil(t, nodetest.StartServer(t, server.Config{}).ExchangeAddr())
}
