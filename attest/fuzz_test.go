package attest_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
)

// FuzzParseSelector checks that ParseSelector never panics and that a parsed
// selector survives a round trip through String.
func FuzzParseSelector(f *testing.F) {
	f.Add("unix:uid:0")
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := attest.ParseSelector(s)
		if err != nil {
			return // rejected input is fine; a panic is not
		}
		require.NoError(t, sel.Validate())
		require.Equal(t, s, sel.String())
		again, err := attest.ParseSelector(sel.String())
		require.NoError(t, err)
		require.Equal(t, sel, again)
		require.True(t, attest.NewSelectors(sel, sel).Contains(again))
	})
}
