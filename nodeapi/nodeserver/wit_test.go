package nodeserver_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
)

// newWITEnv is newEnv with a CA that keeps a WIT key.
func newWITEnv(t *testing.T) *env {
	t.Helper()
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td, WITKeys: true})
	require.NoError(t, err)
	e := newEnv(t, func(c *nodeserver.Config) { c.Authority = m })
	e.ca = m
	return e
}

func TestSignWITSVID(t *testing.T) {
	e := newWITEnv(t)
	a := e.attest(t, "node1")
	mine := e.entry(t, a.svid.ID, "/web")

	for _, key := range []crypto.Signer{
		newKey(t),
		mustRSA(t, 2048),
	} {
		pub := key.Public()
		token, err := a.client.SignWITSVID(t.Context(), mine.ID, pub, "")
		require.NoError(t, err)
		svid, err := witsvid.ParseAndValidate(token, e.ca.Bundle())
		require.NoError(t, err)
		assert.Equal(t, mine.SPIFFEID, svid.ID, "the entry's SPIFFE ID, whatever the agent asked")
		assert.True(t, pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(svid.PublicKey), "cnf binds the key the agent sent")
		assert.Equal(t, e.ca.WITAuthority().KeyID(), svid.KeyID)
	}
	token, err := a.client.SignWITSVID(t.Context(), mine.ID, newKey(t).Public(), "ES256")
	require.NoError(t, err)
	svid, err := witsvid.ParseAndValidate(token, e.ca.Bundle())
	require.NoError(t, err)
	assert.Equal(t, "ES256", svid.KeyAlgorithm())
}

func mustRSA(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	require.NoError(t, err)
	return k
}

// TestSignWITSVIDAuthorization tries to have WIT-SVIDs signed for entries
// the agent may not obtain: they are refused as X509-SVIDs are.
func TestSignWITSVIDAuthorization(t *testing.T) {
	e := newWITEnv(t)
	a := e.attest(t, "node1")
	b := e.attest(t, "node2")
	e.entry(t, a.svid.ID, "/mine")
	theirs := e.entry(t, b.svid.ID, "/theirs")
	orphan := e.entry(t, e.srv.ID(), "/server-child")

	for _, tt := range []struct{ name, entryID string }{
		{"another agent's entry", theirs.ID},
		{"an entry of no agent of ours", orphan.ID},
		{"an unknown entry", "no-such-entry"},
		{"no entry", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.client.SignWITSVID(t.Context(), tt.entryID, newKey(t).Public(), "")
			assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
			assert.Contains(t, status.Convert(err).Message(), "the entry is not authorized for this agent")
		})
	}
	// The rightful agent gets it.
	_, err := b.client.SignWITSVID(t.Context(), theirs.ID, newKey(t).Public(), "")
	require.NoError(t, err)
}

// TestSignWITSVIDBadKeys sends keys and algorithms the WIT-SVID standard
// does not allow (WIT rules 3 and 6), or that are no keys at all, and
// oversized fields: each is refused with a reason about the request.
func TestSignWITSVIDBadKeys(t *testing.T) {
	e := newWITEnv(t)
	a := e.attest(t, "node1")
	mine := e.entry(t, a.svid.ID, "/web")
	raw := e.rawClient(t, a)

	pkix := func(pub any) []byte {
		der, err := x509.MarshalPKIXPublicKey(pub)
		require.NoError(t, err)
		return der
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	require.NoError(t, err)
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	p256 := pkix(newKey(t).Public())

	for _, tt := range []struct {
		name string
		req  *nodepb.SignWITSVIDRequest
		want string
	}{
		{"no key", &nodepb.SignWITSVIDRequest{EntryId: mine.ID},
			"nodeserver: a WIT-SVID needs a public key of 1 to 2048 bytes"},
		{"oversized key", &nodepb.SignWITSVIDRequest{EntryId: mine.ID, PublicKey: bytes.Repeat([]byte{0x30}, nodeapi.MaxPublicKeySize+1)},
			"nodeserver: a WIT-SVID needs a public key of 1 to 2048 bytes"},
		{"not DER", &nodepb.SignWITSVIDRequest{EntryId: mine.ID, PublicKey: []byte("-----BEGIN PUBLIC KEY-----")},
			"nodeserver: the public key is not a PKIX key: "},
		{"truncated DER", &nodepb.SignWITSVIDRequest{EntryId: mine.ID, PublicKey: p256[:len(p256)-3]},
			"nodeserver: the public key is not a PKIX key: "},
		{"P-224", &nodepb.SignWITSVIDRequest{EntryId: mine.ID, PublicKey: pkix(&p224.PublicKey)},
			"nodeserver: the public key cannot be bound to a WIT-SVID: "},
		{"Ed25519", &nodepb.SignWITSVIDRequest{EntryId: mine.ID, PublicKey: pkix(edPub)},
			"nodeserver: the public key cannot be bound to a WIT-SVID: "},
		{"RSA 1024", &nodepb.SignWITSVIDRequest{EntryId: mine.ID, PublicKey: pkix(mustRSA(t, 1024).Public())},
			"nodeserver: the public key cannot be bound to a WIT-SVID: "},
		{"algorithm not allowed", &nodepb.SignWITSVIDRequest{EntryId: mine.ID, PublicKey: p256, KeyAlgorithm: "HS256"},
			"nodeserver: the public key cannot be bound to a WIT-SVID: "},
		{"algorithm none", &nodepb.SignWITSVIDRequest{EntryId: mine.ID, PublicKey: p256, KeyAlgorithm: "none"},
			"nodeserver: the public key cannot be bound to a WIT-SVID: "},
		{"algorithm of another curve", &nodepb.SignWITSVIDRequest{EntryId: mine.ID, PublicKey: p256, KeyAlgorithm: "ES384"},
			"nodeserver: the public key cannot be bound to a WIT-SVID: "},
		{"RSA algorithm for an EC key", &nodepb.SignWITSVIDRequest{EntryId: mine.ID, PublicKey: p256, KeyAlgorithm: "PS256"},
			"nodeserver: the public key cannot be bound to a WIT-SVID: "},
		{"oversized algorithm", &nodepb.SignWITSVIDRequest{EntryId: mine.ID, PublicKey: p256, KeyAlgorithm: string(make([]byte, 17))},
			"nodeserver: the key algorithm name exceeds 16 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := raw.SignWITSVID(t.Context(), tt.req)
			require.Nil(t, resp)
			st := status.Convert(err)
			assert.Equal(t, codes.InvalidArgument, st.Code(), "%v", err)
			assert.Contains(t, st.Message(), tt.want)
		})
	}
}

// TestSignWITSVIDNotEnabled: a server whose CA keeps no WIT key, or whose
// authority cannot sign WIT-SVIDs at all, answers Unimplemented, as a
// server that predates the call does; the client says so with
// ErrNoWITSVIDs.
func TestSignWITSVIDNotEnabled(t *testing.T) {
	for name, mod := range map[string]func(*nodeserver.Config){
		"no WIT key":   nil,
		"no WITIssuer": func(c *nodeserver.Config) { c.Authority = plainAuthority{c.Authority} },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, mod)
			a := e.attest(t, "node1")
			mine := e.entry(t, a.svid.ID, "/web")
			_, err := a.client.SignWITSVID(t.Context(), mine.ID, newKey(t).Public(), "")
			require.ErrorIs(t, err, nodeapi.ErrNoWITSVIDs)
			assert.Equal(t, codes.Unimplemented, status.Code(err))
			assert.Empty(t, e.auth.Bundle().WITAuthorities())
		})
	}
}

// plainAuthority hides every capability of an Authority but the interface.
type plainAuthority struct{ ca.Authority }

func TestSignWITSVIDClientErrors(t *testing.T) {
	e := newWITEnv(t)
	a := e.attest(t, "node1")
	_, err := a.client.SignWITSVID(t.Context(), "x", struct{}{}, "")
	require.ErrorContains(t, err, "nodeapi: encoding the WIT-SVID key")
}
