package k8spsat

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzParsePayload feeds arbitrary payloads to the server's decoder: it
// must never panic, a payload it accepts has a valid cluster name and a
// token, and it encodes back to a payload that decodes to the same.
func FuzzParsePayload(f *testing.F) {
	// testdata/fuzz/FuzzParsePayload holds SPIRE's payload and broken ones.
	f.Add([]byte(`{"cluster":"production","token":"eyJhbGciOiJSUzI1NiJ9.e30.c2ln"}`))
	f.Add([]byte(`{"cluster":"a/b","token":"t"}`))
	f.Add([]byte(`{"cluster":"c","token":"t"} x`))
	f.Add([]byte(`{"cluster":"c","token":"t","extra":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePayload(b)
		if err != nil {
			return // rejected input is fine; a panic is not
		}
		require.NoError(t, ValidateClusterName(p.Cluster))
		require.NotEmpty(t, p.Token)
		again, err := ParsePayload(p.Marshal())
		require.NoError(t, err)
		require.Equal(t, p, again)
	})
}
