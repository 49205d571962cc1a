package jwtbundle_test

import (
	"crypto"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/internal/testing/keysettest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// The decoding rules are tested in internal/jwkutil and the authority map in
// internal/keyset; here the shared suite checks that every function and method
// reaches them, with JWT names and the "jwtbundle: " prefix.

var (
	td  = spiffeid.RequireTrustDomainFromString("example.org")
	td2 = spiffeid.RequireTrustDomainFromString("example.com")
)

func TestBundle(t *testing.T) {
	keysettest.Run(t, keysettest.Package[jwtbundle.Bundle]{
		Name: "jwtbundle", Kind: "JWT",
		New: jwtbundle.New, FromAuthorities: jwtbundle.FromJWTAuthorities,
		Load: jwtbundle.Load, Read: jwtbundle.Read, Parse: jwtbundle.Parse,
	})
}

// TestParseWorkloadAPIBundle checks the JWT-SVID rules on the Workload API's
// JWT bundles.
func TestParseWorkloadAPIBundle(t *testing.T) {
	k := keysettest.PublicKey(t)

	// JWT rule 14: the bundle carries no "use"; any value is ignored.
	b, err := jwtbundle.Parse(td, []byte(`{"keys":[`+keysettest.JWK(t, k, "k", map[string]any{"use": "x509-svid"})+`]}`))
	require.NoError(t, err)
	assert.True(t, jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{"k": k}).Equal(b))

	// JWT rule 14, Bundle rule 16: every key needs a kid.
	_, err = jwtbundle.Parse(td, []byte(`{"keys":[`+keysettest.JWK(t, k, "", nil)+`]}`))
	require.EqualError(t, err, "jwtbundle: error adding authority 0 of JWKS: keyID cannot be empty")
}
