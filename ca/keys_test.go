package ca_test

import (
	"strings"
	"testing"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/stretchr/testify/require"
)

func TestValidateKeyID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"x509-0123abcdef", true},
		{"jwt_A.b-9", true},
		{strings.Repeat("k", ca.MaxKeyIDLen), true},
		{"", false},
		{strings.Repeat("k", ca.MaxKeyIDLen+1), false},
		{".hidden", false},
		{"../escape", false},
		{"a/b", false},
		{`a\b`, false},
		{"sp ace", false},
		{"nul\x00", false},
		{"é", false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			err := ca.ValidateKeyID(tt.id)
			if tt.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, "ca: invalid key ID")
		})
	}
}
