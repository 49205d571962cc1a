package publickey_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/publickey"
)

func TestEqual(t *testing.T) {
	a, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	b, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ed, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	tests := []struct {
		name string
		a, b crypto.PublicKey
		want bool
	}{
		{"the same key", a.Public(), a.Public(), true},
		{"a copy of it", a.Public(), &ecdsa.PublicKey{Curve: a.Curve, X: a.X, Y: a.Y}, true},
		{"another key", a.Public(), b.Public(), false},
		{"another kind of key", a.Public(), ed, false},
		{"ed25519", ed, ed, true},
		{"nil", nil, a.Public(), false},
		{"a value that is no key", "key", "key", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, publickey.Equal(tt.a, tt.b))
		})
	}
}
