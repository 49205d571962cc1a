package keysettest_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/internal/testing/keysettest"
)

// TestRun runs the suite against a package known to keep the contract.
func TestRun(t *testing.T) {
	keysettest.Run(t, keysettest.Package[witbundle.Bundle]{
		Name: "witbundle", Kind: "WIT",
		New: witbundle.New, FromAuthorities: witbundle.FromWITAuthorities,
		Load: witbundle.Load, Read: witbundle.Read, Parse: witbundle.Parse,
	})
}

func TestJWK(t *testing.T) {
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(keysettest.JWK(t, keysettest.PublicKey(t), "k", map[string]any{"use": "x"})), &m))
	assert.Equal(t, "EC", m["kty"])
	assert.Equal(t, "k", m["kid"])
	assert.Equal(t, "x", m["use"])

	var bare map[string]any
	require.NoError(t, json.Unmarshal([]byte(keysettest.JWK(t, keysettest.PublicKey(t), "", nil)), &bare))
	assert.NotContains(t, bare, "kid")
}
