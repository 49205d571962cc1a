package spiffebundle_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
)

// FuzzParse feeds bundle documents to Parse. Seeds live in
// testdata/fuzz/FuzzParse and include the example document of bundle.md
// section F. It asserts that Parse never panics and that Marshal of a parsed
// bundle parses back to an equal bundle.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := spiffebundle.Parse(td, data)
		if err != nil {
			return
		}
		out, err := b.Marshal()
		require.NoError(t, err)
		again, err := spiffebundle.Parse(td, out)
		require.NoError(t, err, "output: %s", out)
		require.True(t, b.Equal(again), "output: %s", out)
	})
}
