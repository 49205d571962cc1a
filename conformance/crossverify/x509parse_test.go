package crossverify

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"testing"

	gsx509svid "github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// TestX509SVIDParseAgrees feeds well-formed and malformed PEM inputs to both
// libraries' x509svid.Parse.
func TestX509SVIDParseAgrees(t *testing.T) {
	root := newRoot(t, "example.org")
	inter := root.intermediate(t, caTemplate(t, "intermediate", "spiffe://example.org"))
	leaf, key := inter.leaf(t, leafTemplate(t, "spiffe://example.org/workload"))
	_, otherKey := root.leaf(t, leafTemplate(t, "spiffe://example.org/other"))

	certPEM := func(cs ...*x509.Certificate) []byte {
		var out []byte
		for _, c := range cs {
			out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		return out
	}
	keyPEM := func(k any) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8(t, k)})
	}
	sec1, err := x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	require.NoError(t, err)
	sec1PEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})

	for _, tc := range []struct {
		name        string
		certs, keys []byte
	}{
		{"leaf and key", certPEM(leaf), keyPEM(key)},
		{"leaf, intermediate and key", certPEM(leaf, inter.cert), keyPEM(key)},
		{"leaf, intermediate, root", certPEM(leaf, inter.cert, root.cert), keyPEM(key)},
		{"intermediate first", certPEM(inter.cert, leaf), keyPEM(key)},
		{"key of another leaf", certPEM(leaf), keyPEM(otherKey)},
		{"SEC 1 key block", certPEM(leaf), sec1PEM},
		{"no certificates", nil, keyPEM(key)},
		{"no key", certPEM(leaf), nil},
		{"key in certificate input", append(certPEM(leaf), keyPEM(key)...), keyPEM(key)},
		{"certificate in key input", certPEM(leaf), append(certPEM(leaf), keyPEM(key)...)},
		{"two keys", certPEM(leaf), append(keyPEM(key), keyPEM(otherKey)...)},
		{"garbage", []byte("hello"), []byte("world")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours, oErr := x509svid.Parse(tc.certs, tc.keys)
			gs, gErr := gsx509svid.Parse(tc.certs, tc.keys)
			if assert.Equal(t, verdictOf(gErr), verdictOf(oErr), "ours %v, go-spiffe %v", oErr, gErr) && gErr == nil {
				assert.Equal(t, gs.ID.String(), ours.ID.String())
				assert.Equal(t, rawCerts(gs.Certificates), rawCerts(ours.Certificates))
			}
		})
	}
}
