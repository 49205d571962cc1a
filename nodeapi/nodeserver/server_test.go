package nodeserver_test

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

func TestAttestIssuesAgentSVIDAndRecord(t *testing.T) {
	e := newEnv(t, nil)
	a := e.attest(t, "node1")
	want := spiffeid.RequireFromPath(td, "/spiffekit/agent/echo/node1")
	assert.Equal(t, want, a.svid.ID)
	id, _, err := x509svid.Verify(a.svid.Certificates, e.ca.Bundle())
	require.NoError(t, err)
	assert.Equal(t, want, id)

	rec, err := e.store.GetAgent(t.Context(), want)
	require.NoError(t, err)
	assert.Equal(t, "echo", rec.AttestorType)
	assert.Equal(t, a.svid.Certificates[0].SerialNumber.Text(16), rec.SerialNumber)
	assert.Equal(t, []attest.Selector{{Type: "echo", Value: "name:node1"}}, rec.Selectors)
	assert.True(t, rec.CanReattest)
}

func TestAttestRefusals(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	_, err := nodeapi.Attest(ctx, e.clientConfig(), echoClient{"bad"}, newKey(t))
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	assert.True(t, nodeapi.IsRefused(err))

	// A client answering the challenge wrongly is refused.
	_, err = nodeapi.Attest(ctx, e.clientConfig(), wrongAnswer{}, newKey(t))
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)

	// An unknown attestor type.
	_, err = nodeapi.Attest(ctx, e.clientConfig(), otherType{}, newKey(t))
	assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)

	// A banned agent may not attest again.
	a := e.attest(t, "node2")
	rec, err := e.store.GetAgent(ctx, a.svid.ID)
	require.NoError(t, err)
	rec.Banned = true
	_, err = e.store.PutAgent(ctx, rec)
	require.NoError(t, err)
	_, err = nodeapi.Attest(ctx, e.clientConfig(), echoClient{"node2"}, newKey(t))
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	assert.ErrorContains(t, err, "banned")
}

type wrongAnswer struct{ echoClient }

func (wrongAnswer) Payload(context.Context) ([]byte, error) { return []byte("node9"), nil }
func (wrongAnswer) Respond(context.Context, []byte) ([]byte, error) {
	return []byte("a replayed answer"), nil
}

type otherType struct{ echoClient }

func (otherType) Type() string { return "tpm" }

func TestClientRefusesUnverifiedServer(t *testing.T) {
	e := newEnv(t, nil)
	other := newEnv(t, nil) // another CA of the same trust domain name
	cfg := e.clientConfig()
	cfg.Bundle = other.ca.Bundle()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := nodeapi.Attest(ctx, cfg, echoClient{"node1"}, newKey(t))
	require.Error(t, err)
	assert.ErrorContains(t, err, "nodeapi: verifying the server: x509svid: could not verify leaf certificate: x509: certificate signed by unknown authority")
	assert.ErrorIs(t, err, nodeapi.ErrServerNotVerified)
	assert.False(t, nodeapi.IsRefused(err), "an unverified server refused nothing")

	// A server of another trust domain, whatever its CA.
	cfg.TrustDomain = spiffeid.RequireTrustDomainFromString("other.org")
	cfg.Bundle = e.ca.Bundle()
	_, err = nodeapi.Attest(ctx, cfg, echoClient{"node1"}, newKey(t))
	require.ErrorIs(t, err, nodeapi.ErrServerNotVerified)
	assert.EqualError(t, err, "nodeapi: the server presented spiffe://example.org/spiffekit/server, not spiffe://other.org/spiffekit/server")

	// A server that cannot be reached was not found wanting.
	down := e.clientConfig()
	down.Servers = []string{"127.0.0.1:1"}
	_, err = nodeapi.Attest(ctx, down, echoClient{"node1"}, newKey(t))
	require.Error(t, err)
	assert.NotErrorIs(t, err, nodeapi.ErrServerNotVerified)
	cfg = e.clientConfig()

	// Insecure bootstrap proceeds and trusts the returned bundle.
	cfg.InsecureBootstrap = true
	cfg.Bundle = nil
	svid, err := nodeapi.Attest(ctx, cfg, echoClient{"node1"}, newKey(t))
	require.NoError(t, err)
	assert.True(t, svid.Bundle.Equal(e.ca.Bundle()))
}

func TestSyncPushesEntriesIncrementally(t *testing.T) {
	e := newEnv(t, nil)
	a := e.attest(t, "node1")
	other := spiffeid.RequireFromPath(td, "/spiffekit/agent/echo/node2")
	e1 := e.entry(t, a.svid.ID, "/web")
	e.entry(t, other, "/not-mine")

	updates := make(chan nodeapi.Update, 16)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- a.client.Sync(ctx, nil, func(u nodeapi.Update) error { updates <- u; return nil })
	}()
	u := next(t, updates)
	require.Len(t, u.Upserts, 1, "only the agent's own entries")
	assert.Equal(t, e1.ID, u.Upserts[0].ID)
	assert.Equal(t, e1.SPIFFEID, u.Upserts[0].SPIFFEID)
	require.NotNil(t, u.Bundle)
	assert.True(t, u.Bundle.Equal(e.ca.Bundle()))
	require.NotNil(t, u.ActiveX509CA)

	// A new entry is pushed.
	e2 := e.entry(t, a.svid.ID, "/db")
	u = next(t, updates)
	require.Len(t, u.Upserts, 1)
	assert.Equal(t, e2.ID, u.Upserts[0].ID)
	assert.Nil(t, u.Bundle, "unchanged bundle is not sent again")

	// A deletion is pushed.
	_, err := e.store.Delete(t.Context(), e1.ID, 0)
	require.NoError(t, err)
	u = next(t, updates)
	assert.Equal(t, []string{e1.ID}, u.Deleted)
	cancel()
	<-done

	// Reconnecting with what it holds, the agent gets only the difference.
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	go func() {
		done <- a.client.Sync(ctx, map[string]int64{e2.ID: e2.Revision, e1.ID: 1}, func(u nodeapi.Update) error { updates <- u; return nil })
	}()
	u = next(t, updates)
	assert.Empty(t, u.Upserts)
	assert.Equal(t, []string{e1.ID}, u.Deleted)
	cancel()
	<-done
}

func next(t *testing.T, ch <-chan nodeapi.Update) nodeapi.Update {
	t.Helper()
	select {
	case u := <-ch:
		return u
	case <-time.After(10 * time.Second):
		t.Fatal("no update within 10s")
	}
	return nodeapi.Update{}
}

func TestNodeAliasEntries(t *testing.T) {
	e := newEnv(t, nil)
	a := e.attest(t, "node1")
	serverID := spiffeid.RequireFromPath(td, nodeapi.ServerPath)
	alias := e.entry(t, serverID, "/cluster/blue", attest.Selector{Type: "echo", Value: "name:node1"})
	viaAlias := e.entry(t, alias.SPIFFEID, "/blue-web")

	updates := make(chan nodeapi.Update, 4)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go a.client.Sync(ctx, nil, func(u nodeapi.Update) error { updates <- u; return nil })
	u := next(t, updates)
	require.Len(t, u.Upserts, 1)
	assert.Equal(t, viaAlias.ID, u.Upserts[0].ID)
}

func TestSignX509SVIDsOnlyForAuthorizedEntries(t *testing.T) {
	e := newEnv(t, nil)
	a := e.attest(t, "node1")
	mine := e.entry(t, a.svid.ID, "/web")
	notMine := e.entry(t, spiffeid.RequireFromPath(td, "/spiffekit/agent/echo/node2"), "/secret")

	key := newKey(t)
	csr, err := nodeapi.NewCSR(key, mine.SPIFFEID)
	require.NoError(t, err)
	lying, err := nodeapi.NewCSR(key, notMine.SPIFFEID)
	require.NoError(t, err)
	res, err := a.client.SignX509SVIDs(t.Context(), []nodeapi.X509SVIDRequest{
		{EntryID: mine.ID, CSR: csr},
		{EntryID: notMine.ID, CSR: csr},
		{EntryID: mine.ID, CSR: lying}, // CSR names another ID than its entry
		{EntryID: mine.ID, CSR: []byte("garbage")},
		{EntryID: "../../etc", CSR: csr},
	})
	require.NoError(t, err)
	require.Len(t, res, 5)
	require.NoError(t, res[0].Err)
	id, _, err := x509svid.Verify(res[0].Certificates, e.ca.Bundle())
	require.NoError(t, err)
	assert.Equal(t, mine.SPIFFEID, id)
	assert.True(t, key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(res[0].Certificates[0].PublicKey))
	assert.ErrorContains(t, res[1].Err, "not authorized")
	assert.ErrorContains(t, res[2].Err, "but entry")
	assert.ErrorContains(t, res[3].Err, "invalid CSR")
	assert.ErrorContains(t, res[4].Err, "not authorized")
}

func TestSignJWTSVID(t *testing.T) {
	e := newEnv(t, nil)
	a := e.attest(t, "node1")
	mine := e.entry(t, a.svid.ID, "/web")
	notMine := e.entry(t, spiffeid.RequireFromPath(td, "/spiffekit/agent/echo/node2"), "/secret")
	token, err := a.client.SignJWTSVID(t.Context(), mine.ID, []string{"db"})
	require.NoError(t, err)
	assert.NotEmpty(t, token)
	_, err = a.client.SignJWTSVID(t.Context(), notMine.ID, []string{"db"})
	assert.Equal(t, codes.PermissionDenied, status.Code(err))
}

// jwtClaims decodes the claims of a compact JWS without checking it.
func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3)
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	return m
}

func TestSignJWTSVIDJTIAndIssuer(t *testing.T) {
	t.Run("off by default", func(t *testing.T) {
		e := newEnv(t, nil)
		a := e.attest(t, "node1")
		mine := e.entry(t, a.svid.ID, "/web")
		token, err := a.client.SignJWTSVID(t.Context(), mine.ID, []string{"db"})
		require.NoError(t, err)
		assert.NotContains(t, jwtClaims(t, token), "jti")
		assert.NotContains(t, jwtClaims(t, token), "iss")
	})
	t.Run("on when configured, different in every token", func(t *testing.T) {
		e := newEnv(t, func(c *nodeserver.Config) { c.JWTSVIDJTI = true; c.JWTIssuer = "https://oidc.example.org" })
		a := e.attest(t, "node1")
		mine := e.entry(t, a.svid.ID, "/web")
		first, err := a.client.SignJWTSVID(t.Context(), mine.ID, []string{"db"})
		require.NoError(t, err)
		second, err := a.client.SignJWTSVID(t.Context(), mine.ID, []string{"db"})
		require.NoError(t, err)
		j1, _ := jwtClaims(t, first)["jti"].(string)
		j2, _ := jwtClaims(t, second)["jti"].(string)
		assert.Len(t, j1, 22)
		assert.Len(t, j2, 22)
		assert.NotEqual(t, j1, j2)
		assert.Equal(t, "https://oidc.example.org", jwtClaims(t, first)["iss"])
	})
}

func TestEvictedAgentIsRefusedAndLosesItsStream(t *testing.T) {
	e := newEnv(t, nil)
	a := e.attest(t, "node1")
	e.entry(t, a.svid.ID, "/web")
	updates := make(chan nodeapi.Update, 4)
	done := make(chan error, 1)
	go func() {
		done <- a.client.Sync(t.Context(), nil, func(u nodeapi.Update) error { updates <- u; return nil })
	}()
	next(t, updates)

	require.NoError(t, e.store.DeleteAgent(t.Context(), a.svid.ID))
	select {
	case err := <-done:
		assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
		assert.ErrorContains(t, err, "evicted")
	case <-time.After(10 * time.Second):
		t.Fatal("the stream of an evicted agent stayed open")
	}
	_, err := a.client.SignJWTSVID(t.Context(), "x", []string{"db"})
	assert.Equal(t, codes.PermissionDenied, status.Code(err))
}

func TestRenewAgent(t *testing.T) {
	e := newEnv(t, nil)
	a := e.attest(t, "node1")
	first := a.svid
	key2 := newKey(t)
	renewed, err := a.client.RenewAgent(t.Context(), key2)
	require.NoError(t, err)
	assert.Equal(t, first.ID, renewed.ID)
	assert.NotEqual(t, first.Certificates[0].SerialNumber, renewed.Certificates[0].SerialNumber)

	// The old SVID still works until the next renewal...
	_, err = a.client.SignJWTSVID(t.Context(), "x", []string{"db"})
	assert.Equal(t, codes.PermissionDenied, status.Code(err))
	assert.ErrorContains(t, err, "not authorized", "authenticated, then refused for the entry")

	// ...and after a second renewal it is refused.
	_, err = a.client.RenewAgent(t.Context(), newKey(t))
	require.NoError(t, err)
	_, err = a.client.SignJWTSVID(t.Context(), "x", []string{"db"})
	assert.Equal(t, codes.PermissionDenied, status.Code(err))
	assert.ErrorContains(t, err, "no longer current")
}

func TestCallsWithoutAgentSVIDAreRefused(t *testing.T) {
	e := newEnv(t, nil)
	// A client whose SVID comes from another CA fails the handshake.
	other := newEnv(t, nil)
	o := other.attest(t, "node1")
	c, err := nodeapi.Dial(e.clientConfig(), o)
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	_, err = c.SignJWTSVID(ctx, "x", []string{"db"})
	// The server refuses the certificate in the handshake: the client sees
	// the server's alert or the connection it closed, and no answer.
	assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	assert.False(t, nodeapi.IsRefused(err), "no call got as far as being refused: %v", err)

	// The same call with an SVID of the server's CA is answered.
	mine := e.attest(t, "node1")
	_, err = mine.client.SignJWTSVID(ctx, "x", []string{"db"})
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	assert.ErrorContains(t, err, "not authorized")
}

// TestRenewalDoesNotWriteOverABan: a ban written by another server (this
// server's cache has not seen it yet) is neither lost nor bypassed by a
// renewal.
func TestRenewalDoesNotWriteOverABan(t *testing.T) {
	e, a := bannedBehindCache(t)

	_, err := a.client.RenewAgent(t.Context(), newKey(t))
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	rec, err := e.store.GetAgent(t.Context(), a.svid.ID)
	require.NoError(t, err)
	assert.True(t, rec.Banned, "the ban is still recorded")
}
