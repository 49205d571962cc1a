package x509pop

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzParsePayload feeds arbitrary payloads to the chain decoder: it must
// never panic, never return more than MaxChainLength certificates, and a
// chain it accepts must encode back to the same bytes.
func FuzzParsePayload(f *testing.F) {
	// testdata/fuzz/FuzzParsePayload holds real chains and broken ones.
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x01})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		chain, err := parsePayload(b)
		if err != nil {
			return // rejected input is fine; a panic is not
		}
		require.NotEmpty(t, chain)
		require.LessOrEqual(t, len(chain), MaxChainLength)
		require.Equal(t, b, marshalPayload(chain))
	})
}
