package launch_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	kitca "github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/launch"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
)

// dial serves e's launch server on a real unix socket and returns a
// Client of it.
func (e *env) dial(t *testing.T) *launch.Client {
	t.Helper()
	_, path := e.api(t)
	c := launch.Dial(path)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestClient(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t)
	id := spiffeid.RequireFromPath(td, "/sandbox/9")
	l, err := c.Launch(t.Context(), launch.Params{SPIFFEID: id, TTL: 20 * time.Minute, JWTSVIDTTL: time.Minute, Hint: "nine"})
	require.NoError(t, err)
	assert.Equal(t, id, l.SPIFFEID)
	assert.Equal(t, e.clock.Now().Add(20*time.Minute), l.ExpiresAt)
	assert.Equal(t, 20*time.Minute, l.X509SVIDTTL)
	assert.Equal(t, time.Minute, l.JWTSVIDTTL)
	assert.Nil(t, l.X509Authorities)
	assert.Nil(t, l.JWTAuthorities)
	assert.Nil(t, l.WITAuthorities)

	info, err := c.Get(t.Context(), l.ID)
	require.NoError(t, err)
	assert.Equal(t, launch.Info{ID: l.ID, SPIFFEID: id, Hint: "nine", ExpiresAt: l.ExpiresAt}, info)
	_, err = e.ls.Redeem(t.Context(), l.Handle, nil)
	require.NoError(t, err, "the client's handle is the server's")
	info, err = c.Get(t.Context(), l.ID)
	require.NoError(t, err)
	assert.True(t, info.Redeemed)

	require.NoError(t, c.End(t.Context(), l.ID))
	require.ErrorIs(t, c.End(t.Context(), l.ID), launch.ErrNotFound)
	_, err = c.Get(t.Context(), l.ID)
	require.ErrorIs(t, err, launch.ErrNotFound)

	_, err = c.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/spiffekit/server")})
	require.ErrorIs(t, err, launch.ErrInvalid)
	assert.ErrorContains(t, err, "reserved", "the server's reason reaches the launcher")
}

// TestClientAuthorities: the client gives the trust domain's X.509, JWT
// and WIT authorities the server handed with the launch.
func TestClientAuthorities(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ca := testca.New(t, td)
	keys := map[string]crypto.PublicKey{"jwt-1": k.Public()}
	wit, err := kitca.NewWITAuthority(kitca.WITAuthorityConfig{Signer: testca.NewECKey(t), KeyID: "wit-1", TrustDomain: td})
	require.NoError(t, err)
	e := newEnv(t, func(c *launch.Config) {
		c.X509Authorities = func() []*x509.Certificate { return ca.X509Bundle().X509Authorities() }
		c.JWTAuthorities = func() map[string]crypto.PublicKey { return keys }
		c.WITAuthorities = func() map[string]crypto.PublicKey { return map[string]crypto.PublicKey{wit.KeyID(): wit.PublicKey()} }
	})
	l, err := e.dial(t).Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/sandbox/1")})
	require.NoError(t, err)
	assert.Equal(t, ca.X509Bundle().X509Authorities(), l.X509Authorities)
	require.Len(t, l.JWTAuthorities, 1)
	assert.True(t, k.PublicKey.Equal(l.JWTAuthorities["jwt-1"]))

	// A JWT-SVID signed by that key validates with them alone.
	token := testca.SignJWT(t, k, map[string]any{"alg": "ES256", "kid": "jwt-1", "typ": "JWT"}, map[string]any{
		"sub": "spiffe://example.org/peer", "aud": []string{"sandbox"}, "exp": time.Now().Add(time.Minute).Unix()})
	svid, err := jwtsvid.ParseAndValidate(token, jwtbundle.FromJWTAuthorities(td, l.JWTAuthorities), []string{"sandbox"})
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/peer", svid.ID.String())

	// A WIT-SVID of the WIT key validates with the WIT authorities alone,
	// and with the JWT authorities not at all.
	require.Len(t, l.WITAuthorities, 1)
	peer := testca.NewECKey(t)
	token, err = wit.SignWITSVID(t.Context(), kitca.WITSVIDParams{ID: spiffeid.RequireFromPath(td, "/peer"), PublicKey: peer.Public()})
	require.NoError(t, err)
	witSVID, err := witsvid.ParseAndValidate(token, witbundle.FromWITAuthorities(td, l.WITAuthorities))
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/peer", witSVID.ID.String())
	assert.True(t, peer.PublicKey.Equal(witSVID.PublicKey), "the peer's key, which it must prove it holds")
	_, err = witsvid.ParseAndValidate(token, witbundle.FromWITAuthorities(td, l.JWTAuthorities))
	assert.Error(t, err, "a JWT key is no WIT key")
}

func TestClientRefusals(t *testing.T) {
	e := newEnv(t, func(c *launch.Config) { c.AllowedUIDs = []int{os.Getuid() + 4242} })
	_, err := e.dial(t).Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/a")})
	require.ErrorIs(t, err, launch.ErrPermissionDenied)
	assert.EqualError(t, err, fmt.Sprintf("launch: permission denied: uid %d may not launch", os.Getuid()),
		"the server's message, once")

	e = newEnv(t, func(c *launch.Config) { c.Rate, c.Burst = 0.001, 1 })
	c := e.dial(t)
	_, err = c.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/a")})
	require.NoError(t, err)
	_, err = c.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/b")})
	require.ErrorIs(t, err, launch.ErrRateLimited)

	// No server at the path.
	none := filepath.Join(t.TempDir(), "none.sock")
	_, err = launch.Dial(none).Get(t.Context(), "0123456789abcdef0123456789abcdef")
	require.ErrorContains(t, err, "launch: cannot reach the launcher API at "+none)
	assert.NotErrorIs(t, err, launch.ErrPermissionDenied)

	// A socket whose mode lets the caller not connect.
	if os.Getuid() != 0 {
		closed := filepath.Join(t.TempDir(), "closed.sock")
		lis, err := net.Listen("unix", closed)
		require.NoError(t, err)
		defer lis.Close()
		require.NoError(t, os.Chmod(closed, 0))
		_, err = launch.Dial(closed).Get(t.Context(), "0123456789abcdef0123456789abcdef")
		require.ErrorIs(t, err, launch.ErrPermissionDenied)
		assert.ErrorContains(t, err, fmt.Sprintf("launch: permission denied: uid %d may not connect to %s: ", os.Getuid(), closed))
	}

	// Something that is not the launcher API.
	dir, err := os.MkdirTemp("", "lc")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "s.sock")
	lis, err := net.Listen("unix", path)
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			w.Write([]byte(`{"id": "x", "spiffe_id": "not an ID"}`))
			return
		case http.MethodPost:
			// JWT or WIT authorities (as the hint asks) that are not a
			// JWK Set of public keys.
			var req struct{ Hint string }
			json.NewDecoder(r.Body).Decode(&req)
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"id": "x", "spiffe_id": "spiffe://example.org/a", "handle": "x.y", "x509_svid_ttl": "1m0s",` +
				` "jwt_svid_ttl": "1m0s", "` + req.Hint + `_authorities": {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k"}]}}`))
			return
		}
		if r.Method == http.MethodDelete && r.URL.Path == "/v1/launches/"+anID {
			// An error of the launcher API's form.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTeapot)
			w.Write([]byte(`{"error": "teapot", "message": "launch: a teapot"}`))
			return
		}
		http.NotFound(w, r) // as any server answers what it does not serve
	})}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(lis) }()
	defer func() { srv.Shutdown(context.Background()); <-done }()
	other := launch.Dial(path)
	defer other.Close()
	_, err = other.Get(t.Context(), anID)
	assert.ErrorContains(t, err, "the server's answer")
	_, err = other.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/a"), Hint: "jwt"})
	assert.ErrorContains(t, err, "launch: the server's answer: jwtbundle:", "a symmetric key is no JWT authority")
	_, err = other.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/a"), Hint: "wit"})
	assert.ErrorContains(t, err, "launch: the server's answer: witbundle:", "nor a WIT authority")
	err = other.End(t.Context(), anID)
	assert.EqualError(t, err, "launch: the server answered 418 I'm a teapot: launch: a teapot")
	// An answer not of the launcher API's form (another server's socket,
	// such as the admin API's) says so, and is no ErrNotFound.
	err = other.End(t.Context(), "fedcba9876543210fedcba9876543210")
	assert.EqualError(t, err, "launch: "+path+" answered 404 Not Found, not as the launcher API does: is it the socket_path of the server's launcher section?")
	assert.NotErrorIs(t, err, launch.ErrNotFound)

	// What cannot be a launch ID names none, as the server would answer,
	// without asking it.
	for _, id := range []string{"", "x", "../../admin", "0123456789ABCDEF0123456789ABCDEF"} {
		_, err = other.Get(t.Context(), id)
		assert.ErrorIs(t, err, launch.ErrNotFound, id)
		assert.ErrorIs(t, other.End(t.Context(), id), launch.ErrNotFound, id)
	}
}

// anID is a launch ID for the fakes.
const anID = "0123456789abcdef0123456789abcdef"
