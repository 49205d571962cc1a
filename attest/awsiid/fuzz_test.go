package awsiid

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
)

// FuzzAttest feeds arbitrary payloads to the server: it must never panic,
// and whatever it admits it admits for the one document a test key
// signed, whatever the payload's other bytes say. Seeds: that document in
// both forms, with another document beside it, and broken ones.
func FuzzAttest(f *testing.F) {
	aws := newSigner(f, 0, 1)
	doc := document(testAccount, testRegion, testInstance)
	other := document(testAccount, testRegion, "i-0fedcba9876543210")
	seed := func(p Payload) {
		b, err := json.Marshal(p)
		require.NoError(f, err)
		f.Add(b)
	}
	seed(Payload{Document: doc, Signature: aws.Signature(f, doc), RSA2048: aws.PKCS7(f, doc)})
	seed(Payload{RSA2048: aws.PKCS7(f, doc)})
	seed(Payload{Document: doc, Signature: aws.Signature(f, doc)})
	seed(Payload{Document: other, RSA2048: aws.PKCS7(f, doc)})
	seed(Payload{Document: other, Signature: aws.Signature(f, doc)})
	seed(Payload{RSA2048: "MIAGCSqGSIb3DQEHAqCAMIACAQExDzANBglghkgBZQMEAgEFADCABgkqhkiG9w0BBwGggCSABA=="})
	f.Add([]byte(`{"document":"{}","signature":"AAAA"}`))
	f.Add([]byte(`{"rsa2048":""}`))
	f.Add([]byte(`null`))

	srv, err := NewServer(ServerConfig{
		AccountIDs:            []string{testAccount},
		RSA2048Certificates:   certsOf(testRegion, aws),
		SignatureCertificates: certsOf(testRegion, aws),
	})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, payload []byte) {
		res, err := srv.Attest(t.Context(), td, payload, nil)
		if err != nil {
			require.ErrorIs(t, err, attest.ErrNodeRejected)
			return
		}
		require.Equal(t, "/spiffekit/agent/aws_iid/123456789012/us-east-1/i-0123456789abcdef0", res.AgentID.Path())
		require.True(t, res.Selectors.Contains(attest.Selector{Type: Type, Value: "instance:id:" + testInstance}))
	})
}

// FuzzParseDocument feeds arbitrary documents to the parser: no panic, and
// what it accepts has an agent ID's worth of well-formed fields.
func FuzzParseDocument(f *testing.F) {
	f.Add([]byte(document(testAccount, testRegion, testInstance)))
	f.Add([]byte(`{"accountId":"123456789012","region":"us-east-1","instanceId":"i-01234567"}`))
	f.Add([]byte(`{"accountId":123}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := parseDocument(b)
		if err != nil {
			return
		}
		require.Regexp(t, accountRE, doc.AccountID)
		require.Regexp(t, regionRE, doc.Region)
		require.Regexp(t, instanceRE, doc.InstanceID)
		selectors(doc) // never panics
	})
}
