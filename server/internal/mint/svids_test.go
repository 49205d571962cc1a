package mint

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// noAuthority is a CA that has no active authority yet.
type noAuthority struct{ ca.Authority }

func (noAuthority) X509Authority() *ca.X509Authority { return nil }
func (noAuthority) JWTAuthority() *ca.JWTAuthority   { return nil }

// Property: an SVID asked for without a lifetime gets the server's, one
// asked for with a lifetime gets that; JWT-SVIDs carry the server's
// claims; what the CA refuses to sign is the caller's mistake, unless the
// caller gave up; nothing is signed without an active authority.
func TestSVIDs(t *testing.T) {
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	svids := SVIDs{Authority: m, X509SVIDTTL: 10 * time.Minute, JWTSVIDTTL: 2 * time.Minute, JWTSVIDJTI: true, JWTIssuer: "https://oidc.example.org"}
	id := spiffeid.RequireFromPath(td, "/job")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ctx := t.Context()

	chain, err := svids.MintX509SVID(ctx, id, key.Public(), []string{"job.example.org"}, 0)
	require.NoError(t, err)
	assert.Equal(t, []string{"job.example.org"}, chain[0].DNSNames)
	assert.WithinDuration(t, time.Now().Add(10*time.Minute), chain[0].NotAfter, time.Minute, "the server's lifetime")
	chain, err = svids.MintX509SVID(ctx, id, key.Public(), nil, 3*time.Minute)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(3*time.Minute), chain[0].NotAfter, time.Minute, "the lifetime asked for")
	_, err = svids.MintX509SVID(ctx, id, key.Public(), []string{"not a name"}, 0)
	require.ErrorIs(t, err, registry.ErrInvalid, "a DNS name the CA refuses")

	token, err := svids.MintJWTSVID(ctx, id, []string{"aud"}, 0)
	require.NoError(t, err)
	svid, err := jwtsvid.ParseInsecure(token, []string{"aud"})
	require.NoError(t, err)
	assert.Equal(t, id, svid.ID)
	assert.WithinDuration(t, time.Now().Add(2*time.Minute), svid.Expiry, time.Minute)
	assert.Equal(t, "https://oidc.example.org", svid.Claims["iss"])
	assert.NotEmpty(t, svid.Claims["jti"])
	_, err = svids.MintJWTSVID(ctx, id, nil, 0)
	require.ErrorIs(t, err, registry.ErrInvalid, "no audience")

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = svids.MintJWTSVID(canceled, id, nil, 0)
	require.Error(t, err)
	assert.NotErrorIs(t, err, registry.ErrInvalid, "the caller gave up: not its mistake")

	none := SVIDs{Authority: noAuthority{}}
	_, err = none.MintX509SVID(ctx, id, key.Public(), nil, 0)
	require.ErrorIs(t, err, errNoAuthority)
	_, err = none.MintJWTSVID(ctx, id, []string{"aud"}, 0)
	require.ErrorIs(t, err, errNoAuthority)
}

// Property: a JWT issuer is an http or https URL with a host and nothing
// an OpenID Connect issuer identifier may not have.
func TestCheckIssuer(t *testing.T) {
	for _, ok := range []string{"https://oidc.example.org", "https://oidc.example.org/tenant", "http://127.0.0.1:8080"} {
		assert.NoError(t, CheckIssuer(ok), ok)
	}
	for bad, want := range map[string]string{
		"https://" + strings.Repeat("a", 2048): "longer than 2048 bytes",
		"https://a b/":                         "not a URL",
		"ftp://oidc.example.org":               "is not an http or https URL",
		"https:///path":                        "must be a URL with a host",
		"https://u@oidc.example.org":           "must be a URL with a host",
		"https://oidc.example.org?x=1":         "must be a URL with a host",
		"https://oidc.example.org#":            "must be a URL with a host",
	} {
		assert.ErrorContains(t, CheckIssuer(bad), want, bad)
	}
}
