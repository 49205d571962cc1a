package wpt

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzCredentials parses Authorization values. A value it accepts gives a
// token68 that parses again to itself.
func FuzzCredentials(f *testing.F) {
	for _, seed := range []string{
		"WPT " + draftWPT, "wpt   abc==", "WPT", "WPT ", "Bearer abc", "WPT a b", "WPT =", "WPT a=b", "WPT ~+/-._",
		"WPT\tabc", "WPTabc", "WPT " + strings.Repeat("A", MaxTokenLength+1),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		token, err := credentials(value)
		if err != nil {
			return
		}
		require.True(t, isToken68(token))
		again, err := credentials(Scheme + " " + token)
		require.NoError(t, err)
		require.Equal(t, token, again)
	})
}

// FuzzVerifyToken verifies arbitrary proofs against the draft example's WIT
// and cnf key. Nothing may panic, and a proof accepted is one bound to that
// WIT and target.
func FuzzVerifyToken(f *testing.F) {
	parts := strings.Split(draftWPT, ".")
	for _, seed := range []string{
		draftWPT,
		parts[0] + "." + parts[1] + ".",
		parts[0] + ".." + parts[2],
		"eyJhbGciOiJub25lIn0." + parts[1] + ".",
		draftWPT + ".x",
		strings.Repeat(".", 100),
		"",
		`{"protected":"` + parts[0] + `","payload":"` + parts[1] + `","signature":"` + parts[2] + `"}`,
	} {
		f.Add(seed)
	}
	pub, alg := draftConfirmation(f)
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := verifyToken(token, pub, alg, draftExpectation())
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidProof)
			return
		}
		require.True(t, slices.Contains(claims.Audience, draftAudience))
		require.Equal(t, Hash(draftWIT), claims.WITHash)
		require.NotEmpty(t, claims.ID)
	})
}
