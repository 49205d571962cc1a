package crossverify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	gsjwtbundle "github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	gsid "github.com/spiffe/go-spiffe/v2/spiffeid"
	gsjwtsvid "github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
)

var b64 = base64.RawURLEncoding

// signCompact builds a JWS compact token from an arbitrary header and raw
// claims, so rows can carry what no well-behaved library would emit. The
// signature follows header["alg"]; unknown algs get an empty signature.
func signCompact(t *testing.T, key any, header map[string]any, claims string) string {
	t.Helper()
	h, err := json.Marshal(header)
	require.NoError(t, err)
	input := b64.EncodeToString(h) + "." + b64.EncodeToString([]byte(claims))
	var sig []byte
	switch alg, _ := header["alg"].(string); alg {
	case "ES256":
		sum := sha256.Sum256([]byte(input))
		r, s, err := ecdsa.Sign(rand.Reader, key.(*ecdsa.PrivateKey), sum[:])
		require.NoError(t, err)
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	case "HS256":
		m := hmac.New(sha256.New, key.([]byte))
		m.Write([]byte(input))
		sig = m.Sum(nil)
	case "EdDSA":
		sig = ed25519.Sign(key.(ed25519.PrivateKey), []byte(input))
	}
	return input + "." + b64.EncodeToString(sig)
}

func claimsJSON(t *testing.T, c map[string]any) string {
	t.Helper()
	b, err := json.Marshal(c)
	require.NoError(t, err)
	return string(b)
}

// jwtRow is one row of jwt-svid.md section D.
type jwtRow struct {
	name     string
	token    string
	audience []string
	ours, gs verdict
}

func jwtTable(t *testing.T, key *ecdsa.PrivateKey, kid string) []jwtRow {
	now := time.Now()
	hdr := func(mod func(map[string]any)) map[string]any {
		h := map[string]any{"alg": "ES256", "kid": kid, "typ": "JWT"}
		if mod != nil {
			mod(h)
		}
		return h
	}
	cl := func(mod func(map[string]any)) string {
		c := map[string]any{"sub": "spiffe://example.org/workload", "aud": []string{"svc"}, "exp": now.Add(5 * time.Minute).Unix()}
		if mod != nil {
			mod(c)
		}
		return claimsJSON(t, c)
	}
	tok := func(h func(map[string]any), c func(map[string]any)) string { return signCompact(t, key, hdr(h), cl(c)) }
	svc := []string{"svc"}
	row := func(name, token string, ours, gs verdict) jwtRow {
		return jwtRow{name: name, token: token, audience: svc, ours: ours, gs: gs}
	}

	valid := tok(nil, nil)
	parts := strings.Split(valid, ".")
	jsonSerialization, err := json.Marshal(map[string]string{"protected": parts[0], "payload": parts[1], "signature": parts[2]})
	require.NoError(t, err)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)

	rows := []jwtRow{
		row("well-formed ES256", valid, accept, accept),
		row("typ JOSE", tok(func(h map[string]any) { h["typ"] = "JOSE" }, nil), accept, accept),                               // JWT rule 5
		row("no typ", tok(func(h map[string]any) { delete(h, "typ") }, nil), accept, accept),                                  // JWT rule 5
		row("typ at+jwt", tok(func(h map[string]any) { h["typ"] = "at+jwt" }, nil), reject, reject),                           // JWT rule 5
		row("typ jwt lowercase", tok(func(h map[string]any) { h["typ"] = "jwt" }, nil), reject, reject),                       // JWT rule 5
		row("no kid", tok(func(h map[string]any) { delete(h, "kid") }, nil), reject, reject),                                  // JWT rule 4 (parity)
		row("unknown kid", tok(func(h map[string]any) { h["kid"] = "nope" }, nil), reject, reject),                            // JWT step S6
		row("extra header x-foo", tok(func(h map[string]any) { h["x-foo"] = "bar" }, nil), accept, accept),                    // JWT rule 2
		row("crit x-foo", tok(func(h map[string]any) { h["crit"] = []string{"x-foo"}; h["x-foo"] = 1 }, nil), reject, reject), // JWT rule 2
		row("aud as a string", tok(nil, func(c map[string]any) { c["aud"] = "svc" }), accept, accept),                         // JWT rule 7
		row("aud with two values", tok(nil, func(c map[string]any) { c["aud"] = []string{"a", "svc"} }), accept, accept),
		row("aud other", tok(nil, func(c map[string]any) { c["aud"] = []string{"other"} }), reject, reject), // JWT rule 7
		row("aud missing", tok(nil, func(c map[string]any) { delete(c, "aud") }), reject, reject),           // JWT rule 7
		{ // JWT rule 7: stricter than go-spiffe (documented difference).
			name: "aud missing, caller expects nothing", token: tok(nil, func(c map[string]any) { delete(c, "aud") }),
			audience: nil, ours: reject, gs: accept,
		},
		row("exp missing", tok(nil, func(c map[string]any) { delete(c, "exp") }), reject, reject), // JWT rule 8
		row("exp 30 s ago", tok(nil, func(c map[string]any) { c["exp"] = now.Add(-30 * time.Second).Unix() }), accept, accept),
		row("exp 90 s ago", tok(nil, func(c map[string]any) { c["exp"] = now.Add(-90 * time.Second).Unix() }), reject, reject),
		row("exp as a string", tok(nil, func(c map[string]any) { c["exp"] = "1999999999" }), reject, reject),
		row("nbf in 5 min", tok(nil, func(c map[string]any) { c["nbf"] = now.Add(5 * time.Minute).Unix() }), reject, reject), // JWT rule 9
		row("iat in 5 min", tok(nil, func(c map[string]any) { c["iat"] = now.Add(5 * time.Minute).Unix() }), reject, reject), // JWT rule 9
		row("sub missing", tok(nil, func(c map[string]any) { delete(c, "sub") }), reject, reject),                            // JWT rule 6
		row("sub not a SPIFFE ID", tok(nil, func(c map[string]any) { c["sub"] = "not-a-spiffe-id" }), reject, reject),
		row("sub in a trust domain without bundle", tok(nil, func(c map[string]any) { c["sub"] = "spiffe://other.org/w" }), reject, reject), // JWT step S5
		row("alg none", signCompact(t, nil, hdr(func(h map[string]any) { h["alg"] = "none" }), cl(nil)), reject, reject),                    // JWT rule 3
		row("alg HS256", signCompact(t, []byte("secret"), hdr(func(h map[string]any) { h["alg"] = "HS256" }), cl(nil)), reject, reject),
		row("alg EdDSA", signCompact(t, edKey, hdr(func(h map[string]any) { h["alg"] = "EdDSA" }), cl(nil)), reject, reject),
		row("JWS JSON serialization", string(jsonSerialization), reject, reject), // JWT rule 1
		row("bad signature", valid[:len(valid)-4]+"AAAA", reject, reject),        // JWT step S7
	}
	return rows
}

// TestJWTMustRejectTable runs jwt-svid.md section D through both libraries.
func TestJWTMustRejectTable(t *testing.T) {
	key := newECKey(t)
	const kid = "key-1"
	td := spiffeid.RequireTrustDomainFromString("example.org")
	ours := jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{kid: key.Public()})
	theirs := gsjwtbundle.FromJWTAuthorities(gsid.RequireTrustDomainFromString("example.org"), map[string]crypto.PublicKey{kid: key.Public()})

	for _, row := range jwtTable(t, key, kid) {
		t.Run(row.name, func(t *testing.T) {
			ourSVID, ourErr := jwtsvid.ParseAndValidate(row.token, ours, row.audience)
			gsSVID, gsErr := gsjwtsvid.ParseAndValidate(row.token, theirs, row.audience)
			assert.Equal(t, row.ours, verdictOf(ourErr), "spiffekit: %v", ourErr)
			assert.Equal(t, row.gs, verdictOf(gsErr), "go-spiffe: %v", gsErr)
			if ourErr != nil {
				assert.True(t, strings.HasPrefix(ourErr.Error(), "jwtsvid: "), "error prefix: %v", ourErr)
			}
			if ourErr == nil && gsErr == nil {
				assertSameJWTSVID(t, gsSVID, ourSVID)
			}
		})
	}
}

func assertSameJWTSVID(t *testing.T, gs *gsjwtsvid.SVID, ours *jwtsvid.SVID) {
	t.Helper()
	assert.Equal(t, gs.ID.String(), ours.ID.String())
	assert.Equal(t, gs.Audience, ours.Audience)
	assert.True(t, gs.Expiry.Equal(ours.Expiry), "expiry %v vs %v", gs.Expiry, ours.Expiry)
	assert.Equal(t, gs.Claims, ours.Claims)
	assert.Equal(t, gs.Marshal(), ours.Marshal())
}

// TestCAMintedJWTSVIDsValidateWithGoSPIFFE mints tokens with ca.JWTAuthority
// for every supported algorithm and validates them with both libraries.
func TestCAMintedJWTSVIDsValidateWithGoSPIFFE(t *testing.T) {
	ctx := context.Background()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)

	for _, tc := range []struct {
		alg    string
		signer crypto.Signer
	}{
		{ca.ES256, newECKey(t)},
		{ca.ES384, p384},
		{ca.RS256, rsaKey},
		{ca.PS256, rsaKey},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			authority, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: tc.signer, Algorithm: tc.alg, TrustDomain: td})
			require.NoError(t, err)
			id := spiffeid.RequireFromPath(td, "/workload")
			token, err := authority.SignJWTSVID(ctx, ca.JWTSVIDParams{ID: id, Audience: []string{"svc", "spiffe://example.org/reports"}})
			require.NoError(t, err)

			keys := map[string]crypto.PublicKey{authority.KeyID(): authority.PublicKey()}
			gsSVID, err := gsjwtsvid.ParseAndValidate(token, gsjwtbundle.FromJWTAuthorities(gsid.RequireTrustDomainFromString("example.org"), keys), []string{"svc"})
			require.NoError(t, err, "go-spiffe")
			ourSVID, err := jwtsvid.ParseAndValidate(token, jwtbundle.FromJWTAuthorities(td, keys), []string{"svc"})
			require.NoError(t, err, "spiffekit")
			assert.Equal(t, id.String(), gsSVID.ID.String())
			assertSameJWTSVID(t, gsSVID, ourSVID)

			gsInsecure, err := gsjwtsvid.ParseInsecure(token, []string{"spiffe://example.org/reports"})
			require.NoError(t, err)
			ourInsecure, err := jwtsvid.ParseInsecure(token, []string{"spiffe://example.org/reports"})
			require.NoError(t, err)
			assertSameJWTSVID(t, gsInsecure, ourInsecure)
		})
	}
}

// TestGoJoseTokensValidateWithBoth signs tokens with go-jose directly, as
// another issuer would, and validates them with both libraries.
func TestGoJoseTokensValidateWithBoth(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)

	for _, tc := range []struct {
		alg jose.SignatureAlgorithm
		key crypto.Signer
	}{
		{jose.ES256, newECKey(t)}, {jose.ES384, p384}, {jose.RS256, rsaKey}, {jose.PS512, rsaKey},
	} {
		t.Run(string(tc.alg), func(t *testing.T) {
			const kid = "issuer-key"
			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: tc.alg, Key: jose.JSONWebKey{Key: tc.key, KeyID: kid}},
				(&jose.SignerOptions{}).WithType("JWT"))
			require.NoError(t, err)
			now := time.Now()
			token, err := jwt.Signed(signer).Claims(jwt.Claims{
				Subject:  "spiffe://example.org/ns/prod/sa/api",
				Audience: jwt.Audience{"svc"},
				Expiry:   jwt.NewNumericDate(now.Add(5 * time.Minute)),
				IssuedAt: jwt.NewNumericDate(now),
			}).Serialize()
			require.NoError(t, err)

			keys := map[string]crypto.PublicKey{kid: tc.key.Public()}
			gsSVID, err := gsjwtsvid.ParseAndValidate(token, gsjwtbundle.FromJWTAuthorities(gsid.RequireTrustDomainFromString("example.org"), keys), []string{"svc"})
			require.NoError(t, err, "go-spiffe")
			ourSVID, err := jwtsvid.ParseAndValidate(token, jwtbundle.FromJWTAuthorities(td, keys), []string{"svc"})
			require.NoError(t, err, "spiffekit")
			assertSameJWTSVID(t, gsSVID, ourSVID)
		})
	}
}
