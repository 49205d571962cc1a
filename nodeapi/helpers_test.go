package nodeapi_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// echoClient is the client of a node attestor for tests of the protocol:
// the payload names the node, which answers a challenge with the challenge
// followed by its name.
type echoClient struct{ name string }

func (echoClient) Type() string                              { return "echo" }
func (c echoClient) Payload(context.Context) ([]byte, error) { return []byte(c.name), nil }
func (c echoClient) Respond(_ context.Context, ch []byte) ([]byte, error) {
	return append(bytes.Clone(ch), c.name...), nil
}

// agent is an agent's key and SVID, its x509svid.Source.
type agent struct {
	key  crypto.Signer
	svid *nodeapi.AgentSVID
}

func (a *agent) GetX509SVID() (*x509svid.SVID, error) {
	return &x509svid.SVID{ID: a.svid.ID, Certificates: a.svid.Certificates, PrivateKey: a.key}, nil
}

func newKey(t testing.TB) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}
