package witbundle_test

import (
	"crypto"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/internal/testing/keysettest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// The decoding rules are tested in internal/jwkutil and the authority map in
// internal/keyset; here the shared suite checks that every function and method
// reaches them, with WIT names and the "witbundle: " prefix.

var (
	td  = spiffeid.RequireTrustDomainFromString("example.org")
	td2 = spiffeid.RequireTrustDomainFromString("example.com")
)

func TestBundle(t *testing.T) {
	keysettest.Run(t, keysettest.Package[witbundle.Bundle]{
		Name: "witbundle", Kind: "WIT",
		New: witbundle.New, FromAuthorities: witbundle.FromWITAuthorities,
		Load: witbundle.Load, Read: witbundle.Read, Parse: witbundle.Parse,
	})
}

// TestParseKeyIDs checks the WIT-SVID rules on the Workload API's WIT
// bundles.
func TestParseKeyIDs(t *testing.T) {
	k := keysettest.PublicKey(t)
	tests := []struct {
		name    string
		keys    string
		wantErr string
	}{
		// WIT rule 17: the bundle carries no "use"; any value is ignored.
		{name: "use ignored", keys: keysettest.JWK(t, k, "k", map[string]any{"use": "jwt-svid"})},
		// WIT rule 16: every key has a non-empty key ID, unique in the bundle.
		{name: "no kid", keys: keysettest.JWK(t, k, "", nil), wantErr: "witbundle: error adding authority 0 of JWKS: keyID cannot be empty"},
		{name: "empty kid", keys: keysettest.JWK(t, k, "", map[string]any{"kid": ""}), wantErr: "witbundle: error adding authority 0 of JWKS: keyID cannot be empty"},
		{name: "duplicate kid", keys: keysettest.JWK(t, k, "k", nil) + "," + keysettest.JWK(t, keysettest.PublicKey(t), "k", nil), wantErr: `witbundle: error adding authority 1 of JWKS: duplicate key ID "k"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := witbundle.Parse(td, []byte(`{"keys":[`+tt.keys+`]}`))
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.True(t, witbundle.FromWITAuthorities(td, map[string]crypto.PublicKey{"k": k}).Equal(b))
		})
	}
}
