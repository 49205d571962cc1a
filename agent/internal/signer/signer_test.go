package signer_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/agent/internal/signer"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// connect attests to s as a new agent and returns its ID and a client of
// s presenting its SVID.
func connect(t *testing.T, s *nodetest.NodeServer) (spiffeid.ID, *nodeapi.Client) {
	t.Helper()
	cfg := nodeapi.ClientConfig{Servers: []string{s.Addr}, TrustDomain: nodetest.TrustDomain, Bundle: s.CA.Bundle().X509Bundle()}
	key := testca.NewECKey(t)
	svid, err := nodeapi.Attest(t.Context(), cfg, jointoken.NewClient(s.Token(t)), key)
	require.NoError(t, err)
	cli, err := nodeapi.Dial(cfg, testca.NewX509Source(&x509svid.SVID{ID: svid.ID, Certificates: svid.Certificates, PrivateKey: key}))
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	return svid.ID, cli
}

// remoteOf starts a node server of cfg and returns a Remote of an agent
// attested to it, logging to logs, with an entry of the agent and one of
// another.
func remoteOf(t *testing.T, cfg nodetest.NodeConfig) (r signer.Remote, mine, theirs registry.Entry, logs *logtest.Buffer) {
	t.Helper()
	s := nodetest.StartNodeServer(t, cfg)
	id, cli := connect(t, s)
	mine = s.Register(t, id, "/mine")
	theirs = s.Register(t, spiffeid.RequireFromPath(nodetest.TrustDomain, "/other-agent"), "/theirs")
	logs = &logtest.Buffer{}
	return signer.New(func() *nodeapi.Client { return cli }, logs.Logger()), mine, theirs, logs
}

// The server signs what the agent asks for its entries: an X509-SVID
// for the key the issuer generated, which the signer checks, and a
// JWT-SVID; it refuses an entry of another agent, and a WIT-SVID when it
// has no WIT key.
func TestRemoteSigns(t *testing.T) {
	r, mine, theirs, logs := remoteOf(t, nodetest.NodeConfig{})
	ctx, cancel := context.WithTimeout(t.Context(), nodetest.Timeout)
	defer cancel()

	k1, k2 := testca.NewECKey(t), testca.NewECKey(t)
	res, err := r.SignX509SVIDs(ctx, []issuer.X509SVIDRequest{{Entry: mine, Key: k1}, {Entry: theirs, Key: k2}})
	require.NoError(t, err)
	require.Len(t, res, 2)
	require.NoError(t, res[0].Err)
	got, err := x509svid.IDFromCert(res[0].Certificates[0])
	require.NoError(t, err)
	assert.Equal(t, mine.SPIFFEID, got)
	assert.True(t, k1.PublicKey.Equal(res[0].Certificates[0].PublicKey), "the key the issuer generated")
	assert.Error(t, res[1].Err, "not this agent's entry")

	token, err := r.SignJWTSVID(ctx, issuer.JWTSVIDRequest{Entry: mine, Audience: []string{"db"}})
	require.NoError(t, err)
	assert.NotEmpty(t, token)
	_, err = r.SignJWTSVID(ctx, issuer.JWTSVIDRequest{Entry: theirs, Audience: []string{"db"}})
	require.ErrorIs(t, err, endpoint.ErrUnavailable, "the workload is told to retry")
	assert.ErrorContains(t, err, "the server refused")
	assert.True(t, logs.Contains(`msg="the server refused to sign a JWT-SVID" entry=`+theirs.ID), "%s", logs)

	_, err = r.SignWITSVID(ctx, issuer.WITSVIDRequest{Entry: mine, Key: k1, KeyAlgorithm: "ES256"})
	require.ErrorIs(t, err, endpoint.ErrUnimplemented)
	require.ErrorIs(t, err, nodeapi.ErrNoWITSVIDs)
}

// A server whose CA keeps a WIT key signs WIT-SVIDs of the agent's
// entries, and refuses those of others.
func TestRemoteSignsWITSVIDs(t *testing.T) {
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: nodetest.TrustDomain, WITKeys: true})
	require.NoError(t, err)
	r, mine, theirs, logs := remoteOf(t, nodetest.NodeConfig{CA: m})
	ctx, cancel := context.WithTimeout(t.Context(), nodetest.Timeout)
	defer cancel()

	key := testca.NewECKey(t)
	token, err := r.SignWITSVID(ctx, issuer.WITSVIDRequest{Entry: mine, Key: key, KeyAlgorithm: "ES256"})
	require.NoError(t, err)
	assert.NotEmpty(t, token)
	_, err = r.SignWITSVID(ctx, issuer.WITSVIDRequest{Entry: theirs, Key: key, KeyAlgorithm: "ES256"})
	require.ErrorIs(t, err, endpoint.ErrUnavailable)
	assert.ErrorContains(t, err, "the server refused")
	assert.True(t, logs.Contains(`msg="the server refused to sign a WIT-SVID" entry=`+theirs.ID), "%s", logs)
}

// Without a client, and when the server cannot be reached, every request
// fails as unavailable: the workload is told to retry.
func TestRemoteUnavailable(t *testing.T) {
	none := signer.New(func() *nodeapi.Client { return nil }, nil)
	ctx := t.Context()
	_, err := none.SignX509SVIDs(ctx, []issuer.X509SVIDRequest{{Key: testca.NewECKey(t)}})
	require.ErrorIs(t, err, endpoint.ErrUnavailable)
	assert.ErrorContains(t, err, "not connected to a server")
	_, err = none.SignJWTSVID(ctx, issuer.JWTSVIDRequest{})
	require.ErrorIs(t, err, endpoint.ErrUnavailable)
	_, err = none.SignWITSVID(ctx, issuer.WITSVIDRequest{Key: testca.NewECKey(t)})
	require.ErrorIs(t, err, endpoint.ErrUnavailable)

	s := nodetest.StartNodeServer(t, nodetest.NodeConfig{})
	id, cli := connect(t, s)
	mine := s.Register(t, id, "/mine")
	s.Stop()
	logs := &logtest.Buffer{}
	r := signer.New(func() *nodeapi.Client { return cli }, logs.Logger())
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err = r.SignX509SVIDs(short, []issuer.X509SVIDRequest{{Entry: mine, Key: testca.NewECKey(t)}})
	require.ErrorIs(t, err, endpoint.ErrUnavailable)
	assert.True(t, logs.Contains(`msg="the server did not sign X509-SVIDs" count=1`), "%s", logs)
	_, err = r.SignJWTSVID(short, issuer.JWTSVIDRequest{Entry: mine, Audience: []string{"db"}})
	require.ErrorIs(t, err, endpoint.ErrUnavailable)
	_, err = r.SignWITSVID(short, issuer.WITSVIDRequest{Entry: mine, Key: testca.NewECKey(t), KeyAlgorithm: "ES256"})
	require.ErrorIs(t, err, endpoint.ErrUnavailable)
	assert.False(t, errors.Is(err, endpoint.ErrUnimplemented))
}
