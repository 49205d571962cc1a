package x509svid_test

import (
	"testing"

	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// BenchmarkParseAndVerify measures the TLS-callback path for a two-certificate
// chain (leaf and intermediate) whose root is in the bundle.
func BenchmarkParseAndVerify(b *testing.B) {
	root := testca.New(b, td)
	chain, _ := root.NewIntermediate(b).NewLeaf(b, leafID)
	raw := [][]byte{chain[0].Raw, chain[1].Raw}
	bundle := root.X509Bundle()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := x509svid.ParseAndVerify(raw, bundle); err != nil {
			b.Fatal(err)
		}
	}
}
