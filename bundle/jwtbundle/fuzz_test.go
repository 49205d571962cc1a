package jwtbundle_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
)

// FuzzParse feeds JWK Set documents to Parse. Seeds live in
// testdata/fuzz/FuzzParse. It asserts that Parse never panics and that Marshal
// of a parsed bundle parses back to an equal bundle.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := jwtbundle.Parse(td, data)
		if err != nil {
			return
		}
		out, err := b.Marshal()
		require.NoError(t, err)
		again, err := jwtbundle.Parse(td, out)
		require.NoError(t, err)
		require.True(t, b.Equal(again))
	})
}
