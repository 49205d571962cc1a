package nodeserver_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/broadcast"
	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// secret is what the server's dependencies put in their errors and no peer
// may read: addresses, credentials, key handles.
const secret = "SECRET db=10.0.0.7:5432 password=hunter2 slot=3"

// The messages the peer gets for failures it must learn nothing about.
const (
	msgUnavailable = "nodeserver: the server cannot answer now; try again later"
	msgInternal    = "nodeserver: internal error"
	msgRefused     = "nodeserver: node attestation refused"
)

// faultyAgents is an agent store whose reads or writes fail, once told to,
// with an error full of the secret.
type faultyAgents struct {
	registry.AgentStore
	failGet, failPut atomic.Bool
}

func (f *faultyAgents) GetAgent(ctx context.Context, id spiffeid.ID) (registry.Agent, error) {
	if f.failGet.Load() {
		return registry.Agent{}, errors.New("pq: connection refused: " + secret)
	}
	return f.AgentStore.GetAgent(ctx, id)
}

func (f *faultyAgents) PutAgent(ctx context.Context, a registry.Agent) (registry.Agent, error) {
	if f.failPut.Load() {
		return registry.Agent{}, errors.New("pq: connection reset: " + secret)
	}
	return f.AgentStore.PutAgent(ctx, a)
}

// faultySigner is a CA key that fails to sign, once told to, as a remote
// key manager would.
type faultySigner struct {
	crypto.Signer
	fail *atomic.Bool
}

func (s faultySigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if s.fail.Load() {
		return nil, errors.New("pkcs11: " + secret)
	}
	return s.Signer.Sign(r, digest, opts)
}

// faultyCA is a ca.Authority whose keys are faultySigners.
type faultyCA struct {
	broadcast.Hub // Subscribe
	fail          atomic.Bool
	x509          *ca.X509Authority
	jwt           *ca.JWTAuthority
	bundle        *spiffebundle.Bundle
}

var _ ca.Authority = (*faultyCA)(nil)

func newFaultyCA(t testing.TB) *faultyCA {
	t.Helper()
	root := testca.New(t, td)
	f := &faultyCA{}
	var err error
	f.x509, err = ca.NewX509Authority(ca.X509AuthorityConfig{Signer: faultySigner{root.Key(), &f.fail}, Certificate: root.Cert()})
	require.NoError(t, err)
	f.jwt, err = ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: faultySigner{newKey(t), &f.fail}, TrustDomain: td})
	require.NoError(t, err)
	f.bundle = spiffebundle.FromX509Authorities(td, []*x509.Certificate{root.Root()})
	require.NoError(t, f.bundle.AddJWTAuthority(f.jwt.KeyID(), f.jwt.PublicKey()))
	return f
}

func (f *faultyCA) X509Authority() *ca.X509Authority    { return f.x509 }
func (f *faultyCA) JWTAuthority() *ca.JWTAuthority      { return f.jwt }
func (f *faultyCA) Bundle() *spiffebundle.Bundle        { return f.bundle }
func (f *faultyCA) TaintedX509CAs() []*x509.Certificate { return nil }

// leakyAttestor is a node attestor whose failures name the secret: node
// "refuse" is rejected, node "break" fails; node "foreign" gets an ID of
// another trust domain; others are echoAttestor's.
type leakyAttestor struct{ echoAttestor }

func (l leakyAttestor) Attest(ctx context.Context, td spiffeid.TrustDomain, payload []byte, ch attest.Challenger) (attest.NodeResult, error) {
	switch string(payload) {
	case "refuse":
		return attest.NodeResult{}, fmt.Errorf("%w: token %s expired", attest.ErrNodeRejected, secret)
	case "break":
		return attest.NodeResult{}, errors.New("datastore: " + secret)
	case "foreign":
		return attest.NodeResult{AgentID: spiffeid.RequireFromString("spiffe://other.example/agent")}, nil
	}
	return l.echoAttestor.Attest(ctx, td, payload, ch)
}

// Property: whatever fails inside the server (the agent store, the CA's
// key, a node attestor), the peer gets a fixed message per code and none
// of the failure's text, on every RPC; the text goes to the server's log.
func TestInternalFailuresAreNotToldToPeers(t *testing.T) {
	store := memstore.New(memstore.Config{})
	agents := &faultyAgents{AgentStore: store}
	authority := newFaultyCA(t)
	var logs logtest.Buffer
	setup := func(c *nodeserver.Config) {
		c.Authority, c.Registry, c.Agents = authority, store, agents
		c.Attestors = []attest.NodeAttestor{leakyAttestor{}}
		c.PollInterval = time.Hour
		c.Logger = logs.Logger()
	}
	e := newEnv(t, setup)
	// other shares the stores, but its cache has no agent record: it
	// reads the store on every call of an agent attested through e.
	other := newEnv(t, setup)
	a := e.attest(t, "node1")
	entry, err := store.Create(t.Context(), registry.Entry{
		SPIFFEID: spiffeid.RequireFromPath(td, "/web"), ParentID: a.svid.ID,
		Selectors: []attest.Selector{{Type: "unix", Value: "uid:1000"}},
	})
	require.NoError(t, err)
	waitIndexed(t, e.srv, store)
	waitIndexed(t, other.srv, store)
	viaOther, err := nodeapi.Dial(other.clientConfig(), a)
	require.NoError(t, err)
	t.Cleanup(func() { viaOther.Close() })
	csr, err := nodeapi.NewCSR(newKey(t), entry.SPIFFEID)
	require.NoError(t, err)

	attestAs := func(name string) error {
		_, err := nodeapi.Attest(t.Context(), e.clientConfig(), echoClient{name}, newKey(t))
		return err
	}
	signX509 := func(c *nodeapi.Client) func() error {
		return func() error {
			res, err := c.SignX509SVIDs(t.Context(), []nodeapi.X509SVIDRequest{{EntryID: entry.ID, CSR: csr}})
			if err != nil {
				return err
			}
			return res[0].Err
		}
	}
	signJWT := func(c *nodeapi.Client) func() error {
		return func() error { _, err := c.SignJWTSVID(t.Context(), entry.ID, []string{"db"}); return err }
	}
	for _, tt := range []struct {
		name  string
		fault *atomic.Bool
		call  func() error
		code  codes.Code // zero: a result of a batch, which has no code
		msg   string
	}{
		{"Attest, the store fails to read", &agents.failGet, func() error { return attestAs("node2") }, codes.Unavailable, msgUnavailable},
		{"Attest, the store fails to write", &agents.failPut, func() error { return attestAs("node2") }, codes.Unavailable, msgUnavailable},
		{"Attest, the attestor fails", nil, func() error { return attestAs("break") }, codes.Unavailable, msgUnavailable},
		{"Attest, the CA key fails", &authority.fail, func() error { return attestAs("node2") }, codes.Internal, msgInternal},
		{"RenewAgent, the store fails to read", &agents.failGet, func() error { _, err := a.client.RenewAgent(t.Context(), newKey(t)); return err }, codes.Unavailable, msgUnavailable},
		{"RenewAgent, the CA key fails", &authority.fail, func() error { _, err := a.client.RenewAgent(t.Context(), newKey(t)); return err }, codes.Internal, msgInternal},
		{"SignX509SVIDs, the store fails", &agents.failGet, signX509(viaOther), codes.Unavailable, msgUnavailable},
		{"SignX509SVIDs, the CA key fails", &authority.fail, signX509(a.client), 0, "internal error"},
		{"SignJWTSVID, the store fails", &agents.failGet, signJWT(viaOther), codes.Unavailable, msgUnavailable},
		{"SignJWTSVID, the CA key fails", &authority.fail, signJWT(a.client), codes.Internal, msgInternal},
		{"Sync, the store fails", &agents.failGet, func() error {
			return viaOther.Sync(t.Context(), nil, func(nodeapi.Update) error { return errors.New("no update expected") })
		}, codes.Unavailable, msgUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fault != nil {
				tt.fault.Store(true)
				defer tt.fault.Store(false)
			}
			before := len(logs.String())
			err := tt.call()
			require.Error(t, err)
			assert.NotContains(t, err.Error(), "SECRET")
			assert.NotContains(t, err.Error(), "hunter2")
			if tt.code != 0 {
				st := status.Convert(err)
				assert.Equal(t, tt.code, st.Code(), "%v", err)
				assert.Equal(t, tt.msg, st.Message())
			} else {
				assert.Equal(t, fmt.Sprintf("nodeapi: entry %s: %s", entry.ID, tt.msg), err.Error())
			}
			assert.Contains(t, logs.String()[before:], secret, "the details are logged")
		})
	}

	// With the faults gone, the same calls succeed: the failures above were
	// the injected ones.
	require.NoError(t, signX509(viaOther)())
	require.NoError(t, signJWT(a.client)())
}

// Property: a node attestor's refusal is told to the peer as a bare
// PermissionDenied: why it refused (an unknown or spent join token, a
// certificate that does not chain) would help whoever probes the server.
// The log says why, without the token.
func TestAttestationRefusalIsGeneric(t *testing.T) {
	var logs logtest.Buffer
	e := newEnv(t, func(c *nodeserver.Config) {
		c.Attestors = []attest.NodeAttestor{leakyAttestor{}}
		withJoinToken(t)(c)
		c.Logger = logs.Logger()
	})
	tok, _, err := jointoken.Generate(t.Context(), e.store, jointoken.Params{})
	require.NoError(t, err)
	_, err = nodeapi.Attest(t.Context(), e.clientConfig(), jointoken.NewClient(tok), newKey(t))
	require.NoError(t, err)

	for name, client := range map[string]attest.NodeAttestorClient{
		"spent join token":    jointoken.NewClient(tok),
		"attestor with words": echoClient{"refuse"},
		"wrong answer":        wrongAnswer{},
		"attestor at fault":   echoClient{"foreign"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := nodeapi.Attest(t.Context(), e.clientConfig(), client, newKey(t))
			st := status.Convert(err)
			assert.Equal(t, codes.PermissionDenied, st.Code(), "%v", err)
			assert.Equal(t, msgRefused, st.Message())
			assert.True(t, nodeapi.IsRefused(err))
		})
	}
	log := logs.String()
	assert.Contains(t, log, "request refused")
	assert.Contains(t, log, secret, "the attestor's reason is logged")
	// Each attestation line names the peer and the attestor.
	assert.Regexp(t, `level=INFO msg="agent attested" agent=spiffe://\S+ attestor=join_token peer=127\.0\.0\.1:\d+ `, log)
	refused := regexp.MustCompile(`(?m)^.*msg="request refused".*method=Attest.*$`).FindAllString(log, -1)
	require.Len(t, refused, 4, log)
	for _, line := range refused {
		assert.Regexp(t, ` peer=127\.0\.0\.1:\d+ `, line)
		assert.Regexp(t, ` attestor=(join_token|echo) `, line)
	}
	assert.Regexp(t, `level=ERROR .*spiffe://other.example/agent`, log, "an attestor at fault is an error of the server")
	secretPart := tok[strings.IndexByte(tok, '.')+1:]
	assert.NotContains(t, log, secretPart, "no join token secret in the log")
}

// Property: what the peer gets wrong is told to it, in words about its
// own request.
func TestInvalidRequestsAreExplained(t *testing.T) {
	e := newEnv(t, nil)
	a := e.attest(t, "node1")
	mine := e.entry(t, a.svid.ID, "/web")
	for _, tt := range []struct {
		name     string
		audience []string
		want     string
	}{
		{"no audience", nil, "nodeserver: a JWT-SVID needs an audience"},
		{"empty audience", []string{"db", ""}, "nodeserver: audience values must not be empty"},
		{"too many audiences", make([]string, nodeapi.MaxAudiences+1), "nodeserver: 65 audience values exceed 64"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.client.SignJWTSVID(t.Context(), mine.ID, tt.audience)
			st := status.Convert(err)
			assert.Equal(t, codes.InvalidArgument, st.Code(), "%v", err)
			assert.Equal(t, tt.want, st.Message())
		})
	}

	_, err := e.rawClient(t, a).RenewAgent(t.Context(), &nodepb.RenewAgentRequest{Csr: []byte("not a CSR")})
	assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	assert.Contains(t, status.Convert(err).Message(), "nodeserver: invalid CSR: ")
}
