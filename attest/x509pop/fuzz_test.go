package x509pop

import (
	"bytes"
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

// FuzzParseChallenge feeds arbitrary challenges to the agent's decoder: it
// must never panic, a challenge it accepts holds a nonce of NonceSize bytes
// and a server ID of at most maxAudience bytes, and it encodes back to the
// same bytes.
func FuzzParseChallenge(f *testing.F) {
	nonce := make([]byte, NonceSize)
	f.Add(append(bytes.Clone(nonce), "spiffe://example.org/spiffekit/server"...))
	f.Add(append(bytes.Clone(nonce), "spiffe://example.org"...))
	f.Add(bytes.Clone(nonce))
	f.Add(append(bytes.Clone(nonce), "spiffe://EXAMPLE.org/x"...))
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, audience, err := parseChallenge(b)
		if err != nil {
			return // rejected input is fine; a panic is not
		}
		require.Len(t, got, NonceSize)
		require.LessOrEqual(t, len(audience.String()), maxAudience)
		require.Equal(t, b, marshalChallenge(got, audience))
	})
}
