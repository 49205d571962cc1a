package kit_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/conformance/kit"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
)

// TestJWTMustRejectTable runs jwt-svid.md section D through the kit (the
// expected audience is "svc"): each token must fail, or deviate on, exactly
// the rules it breaks.
func TestJWTMustRejectTable(t *testing.T) {
	key := testca.NewECKey(t)
	keys := map[string][]jose.JSONWebKey{"example.org": {{Key: key.Public(), KeyID: "k1", Algorithm: "ES256"}}}
	exp := time.Now().Add(5 * time.Minute).Unix()
	claims := func(change func(map[string]any)) map[string]any {
		c := map[string]any{"sub": "spiffe://example.org/workload", "aud": []string{"svc"}, "exp": exp}
		if change != nil {
			change(c)
		}
		return c
	}
	header := func(change func(map[string]any)) map[string]any {
		h := map[string]any{"alg": "ES256", "kid": "k1", "typ": "JWT"}
		if change != nil {
			change(h)
		}
		return h
	}
	sign := func(h, c func(map[string]any)) string { return testca.SignJWT(t, key, header(h), claims(c)) }
	good := sign(nil, nil)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	parts := strings.Split(good, ".")

	for _, row := range []struct {
		name       string
		token      string
		failed     []string
		deviations []string
	}{
		{name: "well-formed", token: good},
		{name: "typ JOSE", token: sign(func(h map[string]any) { h["typ"] = "JOSE" }, nil)},
		{name: "no typ", token: sign(func(h map[string]any) { delete(h, "typ") }, nil)},
		{name: "typ at+jwt", token: sign(func(h map[string]any) { h["typ"] = "at+jwt" }, nil), failed: []string{"JWT rule 5"}},
		{name: "typ jwt", token: sign(func(h map[string]any) { h["typ"] = "jwt" }, nil), failed: []string{"JWT rule 5"}},
		{name: "no kid", token: sign(func(h map[string]any) { delete(h, "kid") }, nil), deviations: []string{"JWT rule 4"}},
		{name: "unknown kid", token: sign(func(h map[string]any) { h["kid"] = "k2" }, nil), failed: []string{"JWT step S7"}},
		{name: "extra header", token: sign(func(h map[string]any) { h["x-foo"] = "1" }, nil), failed: []string{"JWT rule 2"}},
		{name: "crit header", token: sign(func(h map[string]any) { h["crit"] = []string{"x-foo"}; h["x-foo"] = 1 }, nil), failed: []string{"JWT rule 2", "JWT step S7"}},
		{name: "aud a string", token: sign(nil, func(c map[string]any) { c["aud"] = "svc" })},
		{name: "two audiences", token: sign(nil, func(c map[string]any) { c["aud"] = []string{"a", "svc"} }), deviations: []string{"JWT rule 7b"}},
		{name: "other audience", token: sign(nil, func(c map[string]any) { c["aud"] = []string{"other"} }), failed: []string{"JWT rule 7a"}},
		{name: "aud missing", token: sign(nil, func(c map[string]any) { delete(c, "aud") }), failed: []string{"JWT rule 7a"}},
		{name: "aud not strings", token: sign(nil, func(c map[string]any) { c["aud"] = []any{1} }), failed: []string{"JWT rule 7a"}},
		{name: "exp missing", token: sign(nil, func(c map[string]any) { delete(c, "exp") }), failed: []string{"JWT rule 8"}},
		{name: "exp 90 s ago", token: sign(nil, func(c map[string]any) { c["exp"] = time.Now().Add(-90 * time.Second).Unix() }), failed: []string{"JWT rule 8"}},
		{name: "exp a string", token: sign(nil, func(c map[string]any) { c["exp"] = "2000000000" }), failed: []string{"JWT rule 8"}},
		{name: "sub missing", token: sign(nil, func(c map[string]any) { delete(c, "sub") }), failed: []string{"JWT rule 6"}},
		{name: "sub not a SPIFFE ID", token: sign(nil, func(c map[string]any) { c["sub"] = "not-a-spiffe-id" }), failed: []string{"JWT rule 6"}},
		{name: "sub in a trust domain without keys", token: sign(nil, func(c map[string]any) { c["sub"] = "spiffe://other.org/w" }), failed: []string{"JWT step S7"}},
		{name: "alg none", token: testca.SignJWT(t, nil, header(func(h map[string]any) { h["alg"] = "none" }), claims(nil)), failed: []string{"JWT rule 3"}},
		{name: "alg HS256", token: testca.SignJWT(t, []byte("secret"), header(func(h map[string]any) { h["alg"] = "HS256" }), claims(nil)), failed: []string{"JWT rule 3"}},
		{name: "alg EdDSA", token: testca.SignJWT(t, edKey, header(func(h map[string]any) { h["alg"] = "EdDSA" }), claims(nil)), failed: []string{"JWT rule 3"}},
		{name: "signature of another token", token: parts[0] + "." + parts[1] + "." + strings.Split(sign(nil, func(c map[string]any) { c["aud"] = "x" }), ".")[2], failed: []string{"JWT step S7"}},
		{name: "JWS JSON serialization", token: `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`, failed: []string{"JWT rule 1"}},
		{name: "padded base64", token: parts[0] + "=." + parts[1] + "." + parts[2], failed: []string{"JWT rule 1"}},
		{name: "header not an object", token: base64.RawURLEncoding.EncodeToString([]byte("[]")) + "." + parts[1] + "." + parts[2], failed: []string{"JWT rule 1"}},
		{name: "payload not an object", token: parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte("null")) + "." + parts[2], failed: []string{"JWT rule 1"}},
		{name: "payload with trailing data", token: parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte("{} {}")) + "." + parts[2], failed: []string{"JWT rule 1"}},
		{name: "too long", token: strings.Repeat("a", 70<<10), failed: []string{"JWT rule 1"}},
	} {
		t.Run(row.name, func(t *testing.T) {
			r := kit.NewReport(kit.ModeJWT, row.name)
			r.CheckJWTSVID(kit.JWTSVID{Token: row.token, Keys: keys, Audience: "svc"}, time.Now())
			assert.Equal(t, row.failed, r.FailedRules(), "%s", text(t, r))
			assert.Equal(t, row.deviations, deviations(r), "%s", text(t, r))
		})
	}

	r := kit.NewReport(kit.ModeJWT, "no keys")
	got := r.CheckJWTSVID(kit.JWTSVID{Token: good}, time.Now())
	assert.Equal(t, "spiffe://example.org/workload", got["sub"])
	assert.Equal(t, kit.NotApplicable, r.Verdicts()["JWT step S7"])
	assert.False(t, r.Failed())
}

func TestParseJWKSet(t *testing.T) {
	doc := sectionF(t)
	keys, err := kit.ParseJWKSet(marshal(t, doc))
	require.NoError(t, err)
	require.Len(t, keys, 1, "only the jwt-svid key")
	assert.Equal(t, "jwt-2026-11-a", keys[0].KeyID)
	_, err = kit.ParseJWKSet([]byte("["))
	assert.ErrorContains(t, err, "not a JWK Set")
}
