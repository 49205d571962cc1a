package e2e_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/exp/oauthsvid"
	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/exp/wpt"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// witEnv runs spiffe-server and spiffe-agent with WIT-SVIDs on, registers
// an entry for this process (spiffe://example.org/client) and returns the
// agent's Workload API address once it serves it.
func witEnv(t *testing.T) (*progtest.Env, string) {
	t.Helper()
	e := progtest.NewEnv(t, "-wit-svids")
	e.StartServer()
	agent := progtest.Start(t, e.AgentBin, append(e.AgentArgs(e.Token()), "-wit-svids")...)
	id := e.AgentID()
	e.Entry(id, clientID.String(), "unix:uid:"+strconv.Itoa(os.Getuid()))
	e.WaitSVID(e.APISock, clientID.String(), agent)
	return e, "unix://" + e.APISock
}

var clientID = spiffeid.RequireFromString("spiffe://example.org/client")

// recorder is the base transport of the WPT client: it keeps the
// credentials of the last request sent, for the test to send them again.
type recorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	wit  string
	wpt  string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.wit, r.wpt = req.Header.Get("Workload-Identity-Token"), req.Header.Get("Authorization")
	r.mu.Unlock()
	return r.base.RoundTrip(req)
}

func (r *recorder) last() (wit, proof string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wit, r.wpt
}

// TestWorkloadProofTokens: a Go HTTP client and server authenticate
// requests with Workload Proof Tokens, the client with wpt.Transport over
// the WIT-SVID the real agent serves (signed by the real server for a key
// the agent made), the server with wpt.Verifier over the WIT bundles of
// the same Workload API. A request succeeds and the handler sees the
// caller's SPIFFE ID; the same proof replayed, a stale one, and one made
// for another target (path or origin) are refused (WIT rules 14 and 15).
func TestWorkloadProofTokens(t *testing.T) {
	_, addr := witEnv(t)
	ctx := t.Context()
	source, err := workloadapi.NewWITSource(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(addr)))
	require.NoError(t, err)
	t.Cleanup(func() { source.Close() })
	svid, err := source.GetWITSVIDForID(clientID)
	require.NoError(t, err)
	bundle, err := source.GetWITBundleForTrustDomain(clientID.TrustDomain())
	require.NoError(t, err)
	_, ok := bundle.FindWITAuthority(svid.KeyID)
	require.True(t, ok, "the WIT bundle of the Workload API holds the key that signed the WIT-SVID")

	var logs logtest.Buffer
	srv := httptest.NewUnstartedServer(nil)
	origin := "https://" + srv.Listener.Addr().String()
	verifier, err := wpt.NewVerifier(wpt.Config{
		Bundles: source, Origins: []string{origin}, RequireMethod: true,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	require.NoError(t, err)
	srv.Config.Handler = verifier.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, ok := wpt.FromContext(r.Context())
		if !ok {
			http.Error(w, "no caller", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, res.ID.String())
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	tlsClient := srv.Client()
	t.Cleanup(tlsClient.CloseIdleConnections)

	rec := &recorder{base: tlsClient.Transport}
	client := &http.Client{Transport: &wpt.Transport{Source: source, ID: clientID, Base: rec}}
	get := func(c *http.Client, target string, header http.Header) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		require.NoError(t, err)
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	// present sends a WIT-SVID and a proof as they are, without the
	// Transport.
	present := func(target, wit, proof string) int {
		t.Helper()
		code, _ := get(tlsClient, target, http.Header{"Workload-Identity-Token": {wit}, "Authorization": {proof}})
		return code
	}
	refusedFor := func(reason string) {
		t.Helper()
		progtest.WaitFor(t, "the refusal logged: "+reason, func() bool { return logs.Contains(reason) })
	}

	code, body := get(client, origin+"/hello", nil)
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, clientID.String(), body, "the handler sees the caller's SPIFFE ID")
	code, body = get(client, origin+"/hello?again=1", nil)
	require.Equal(t, http.StatusOK, code, "a new proof for every request: %s", body)

	// Replayed: the same proof a second time.
	wit, proof := rec.last()
	assert.Equal(t, svid.Marshal(), wit)
	assert.Equal(t, http.StatusUnauthorized, present(origin+"/hello", wit, proof))
	refusedFor(wpt.ErrReplay.Error())

	// Stale: a proof whose life ended before it arrived.
	stale, err := wpt.Mint(svid, wpt.MintParams{Audience: origin + "/hello", Method: http.MethodGet,
		Now: time.Now().Add(-10 * time.Minute), Lifetime: 30 * time.Second})
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, present(origin+"/hello", wit, wpt.Scheme+" "+stale))
	refusedFor("token has expired")

	// Re-targeted: a proof for one path or origin sent to another.
	for _, aud := range []string{origin + "/hello", "https://other.example.org/admin"} {
		p, err := wpt.Mint(svid, wpt.MintParams{Audience: aud, Method: http.MethodGet})
		require.NoError(t, err)
		assert.Equal(t, http.StatusUnauthorized, present(origin+"/admin", wit, wpt.Scheme+" "+p), aud)
	}
	refusedFor("token audience does not name this request's target")

	// And for another method than the request's.
	p, err := wpt.Mint(svid, wpt.MintParams{Audience: origin + "/hello", Method: http.MethodPost})
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, present(origin+"/hello", wit, wpt.Scheme+" "+p))

	// A WIT-SVID alone, as a bearer token, is no credential (WIT rule 14).
	assert.Equal(t, http.StatusUnauthorized, present(origin+"/hello", wit, "Bearer "+wit))

	// The same WIT-SVID with a fresh proof still works.
	p, err = wpt.Mint(svid, wpt.MintParams{Audience: origin + "/hello", Method: http.MethodGet})
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, present(origin+"/hello", wit, wpt.Scheme+" "+p))

	// A WIT-SVID of another key, with a proof of that key: the agent
	// holds the key the token binds, and nobody else.
	other, err := witsvid.ParseInsecure(wit)
	require.NoError(t, err)
	other.PrivateKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	_, err = wpt.Mint(other, wpt.MintParams{Audience: origin + "/hello"})
	require.Error(t, err, "a proof needs the cnf key")
}

// TestOAuthClientAssertionFromAgent: a token endpoint (an
// oauthsvid.Validator over the JWT bundles of the Workload API) accepts a
// JWT-SVID client assertion the real agent fetched for the issuer as
// audience, and refuses one for another audience.
func TestOAuthClientAssertionFromAgent(t *testing.T) {
	_, addr := witEnv(t)
	ctx := t.Context()
	const issuer = "https://as.example.org"
	opts := workloadapi.WithClientOptions(workloadapi.WithAddr(addr))
	jwtSource, err := workloadapi.NewJWTSource(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() { jwtSource.Close() })

	v, err := oauthsvid.NewValidator(oauthsvid.Config{
		Issuer:     issuer,
		JWTBundles: jwtSource,
		Clients:    oauthsvid.Registry{clientID.String(): oauthsvid.MustParsePattern(clientID.String())},
	})
	require.NoError(t, err)
	var granted sync.Map
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := v.Authenticate(r)
		if err != nil {
			oauthsvid.WriteError(w, err)
			return
		}
		granted.Store(c.ID.String(), c.Method)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "at-" + c.ClientID, "token_type": "Bearer", "expires_in": 60})
	}))
	t.Cleanup(srv.Close)
	hc := srv.Client()
	t.Cleanup(hc.CloseIdleConnections)
	grant := url.Values{"grant_type": {"client_credentials"}}

	c := &oauthsvid.Client{TokenURL: srv.URL + "/token", Audience: issuer, JWTSource: jwtSource, ID: clientID, HTTPClient: hc}
	tok, err := c.Token(ctx, grant)
	require.NoError(t, err)
	assert.Equal(t, "at-"+clientID.String(), tok.AccessToken)
	method, ok := granted.Load(clientID.String())
	require.True(t, ok)
	assert.Equal(t, oauthsvid.MethodJWT, method)

	wrong := *c
	wrong.Audience = "https://other.example.org"
	_, err = wrong.Token(ctx, grant)
	te, ok := errors.AsType[*oauthsvid.TokenError](err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, "invalid_client", te.Code)

	// The agent's JWT-SVID for the right audience, posted by hand with a
	// second audience value, is refused too: the issuer must be the sole
	// audience.
	both, err := jwtSource.FetchJWTSVID(ctx, jwtsvid.Params{Audience: issuer, ExtraAudiences: []string{"https://other.example.org"}})
	require.NoError(t, err)
	resp, err := hc.PostForm(srv.URL+"/token", url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {oauthsvid.AssertionType},
		"client_assertion":      {both.Marshal()},
	})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}
