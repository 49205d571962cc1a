package azureimds

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/azuretest"
)

// FuzzAttest feeds arbitrary answers to the server: it must never panic,
// and never admit, since no answer can carry the signed document of a
// nonce drawn after it was made. Seeds: genuine answers for other nonces,
// signer-bag forgeries and broken ones.
func FuzzAttest(f *testing.F) {
	ca := azuretest.NewCA(f, "metadata.azure.com")
	seed := func(sig string) {
		b, err := json.Marshal(Response{Document: Document{Encoding: "pkcs7", Signature: sig}, Metadata: Metadata{AgentDomain: testTenant}})
		require.NoError(f, err)
		f.Add(b)
	}
	seed(ca.Sign(f, azuretest.Document(f, "ABC", testVM, testSub)))
	seed(azuretest.SignWith(f, azuretest.Document(f, "ABC", testVM, testSub), ca.Intermediate, ca.IntKey, ca.Leaf))
	f.Add([]byte(`{"document":{"encoding":"pkcs7","signature":"MIAGCSqGSIb3DQEHAqCAMIACAQExDzANBglghkgBZQMEAgEFADCABgkqhkiG9w0BBwGggCSABA=="}}`))
	f.Add([]byte(`null`))
	srv := serverFor(f, ca, func(c *ServerConfig) {
		c.IssuerHosts = []string{}
		c.Intermediates = []*x509.Certificate{ca.Intermediate}
	})
	f.Fuzz(func(t *testing.T, answer []byte) {
		_, err := srv.Attest(t.Context(), td, nil, func(context.Context, []byte) ([]byte, error) { return answer, nil })
		require.ErrorIs(t, err, attest.ErrNodeRejected)
	})
}

// FuzzParseContent: no panic, and what it accepts has the GUIDs the agent
// ID is made of.
func FuzzParseContent(f *testing.F) {
	f.Add(azuretest.Document(f, "ABC", testVM, testSub))
	f.Add([]byte(`{"vmId":"x"}`))
	now := time.Now()
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseContent(b, now, Leeway)
		if err != nil {
			return
		}
		require.Regexp(t, guidRE, c.VMID)
		require.Regexp(t, guidRE, c.SubscriptionID)
	})
}
