package jwtbundle_test

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	td  = spiffeid.RequireTrustDomainFromString("example.org")
	td2 = spiffeid.RequireTrustDomainFromString("example.com")
)

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

// jwk returns the JWK members of pub, with kid when not empty.
func jwk(t *testing.T, pub crypto.PublicKey, kid string) map[string]any {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: pub, KeyID: kid})
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

func jwks(t *testing.T, keys ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	require.NoError(t, err)
	return b
}

func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func TestParse(t *testing.T) {
	ec := ecKey(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)

	ecJWK := jwk(t, ec.Public(), "ec")
	privJWK := func(member string) map[string]any {
		return with(ecJWK, member, "AAAA")
	}
	tooMany := make([]map[string]any, jwtbundle.MaxKeys+1)
	for i := range tooMany {
		tooMany[i] = with(ecJWK, "kid", fmt.Sprint(i))
	}

	tests := []struct {
		name    string
		doc     []byte
		want    map[string]crypto.PublicKey
		wantErr string
	}{
		{
			name: "EC, RSA and Ed25519 keys",
			doc:  jwks(t, ecJWK, jwk(t, rsaKey.Public(), "rsa"), jwk(t, edPub, "ed")),
			want: map[string]crypto.PublicKey{"ec": ec.Public(), "rsa": rsaKey.Public(), "ed": edPub},
		},
		{
			// JWT rule 14: Workload API JWT bundles carry no "use"; any value is ignored.
			name: "use is ignored",
			doc:  jwks(t, with(ecJWK, "use", "x509-svid")),
			want: map[string]crypto.PublicKey{"ec": ec.Public()},
		},
		{
			name: "empty keys",
			doc:  []byte(`{"keys":[]}`),
			want: map[string]crypto.PublicKey{},
		},
		{
			// Bundle rule 12: an unknown kty drops the element, not the document.
			name: "unknown kty skipped",
			doc:  jwks(t, ecJWK, with(ecJWK, "kty", "PQ", "kid", "pq")),
			want: map[string]crypto.PublicKey{"ec": ec.Public()},
		},
		{
			name: "missing kty skipped",
			doc:  jwks(t, ecJWK, with(ecJWK, "kty", nil, "kid", "none")),
			want: map[string]crypto.PublicKey{"ec": ec.Public()},
		},
		{
			// RFC 7517 §5: key types the implementation cannot use are ignored.
			name: "unsupported OKP curve skipped",
			doc:  jwks(t, ecJWK, map[string]any{"kty": "OKP", "crv": "X25519", "kid": "x", "x": b64(x25519.PublicKey().Bytes())}),
			want: map[string]crypto.PublicKey{"ec": ec.Public()},
		},
		{
			name: "unknown members ignored",
			doc:  jwks(t, with(ecJWK, "alg", "ES256", "spiffe_extra", 1)),
			want: map[string]crypto.PublicKey{"ec": ec.Public()},
		},
		// Bundle rule 16, JWT rule 14: every key needs a kid.
		{name: "missing kid", doc: jwks(t, with(ecJWK, "kid", nil)), wantErr: "jwtbundle: error adding authority 0 of JWKS: keyID cannot be empty"},
		{name: "empty kid", doc: jwks(t, ecJWK, with(ecJWK, "kid", "")), wantErr: "jwtbundle: error adding authority 1 of JWKS: keyID cannot be empty"},
		// Member names are case-sensitive: "KID" is not "kid".
		{name: "kid in wrong case", doc: jwks(t, with(ecJWK, "kid", nil, "KID", "ec")), wantErr: "keyID cannot be empty"},
		{name: "kid not a string", doc: jwks(t, with(ecJWK, "kid", 7)), wantErr: `"kid" must be a string`},
		// Ours: go-spiffe keeps the last of two keys with one kid.
		{name: "duplicate kid", doc: jwks(t, ecJWK, jwk(t, ecKey(t).Public(), "ec")), wantErr: `jwtbundle: error adding authority 1 of JWKS: duplicate key ID "ec"`},
		// Bundle rule 14: no private members, no symmetric keys.
		{name: "private member d", doc: jwks(t, privJWK("d")), wantErr: `jwtbundle: key 0 carries private key member "d"`},
		{name: "private member p", doc: jwks(t, privJWK("p")), wantErr: `private key member "p"`},
		{name: "private member qi", doc: jwks(t, privJWK("qi")), wantErr: `private key member "qi"`},
		{name: "private member in unknown kty", doc: jwks(t, with(privJWK("d"), "kty", "PQ")), wantErr: `private key member "d"`},
		{name: "oct key", doc: jwks(t, map[string]any{"kty": "oct", "kid": "hmac"}), wantErr: "jwtbundle: key 0 is a symmetric (oct) key"},
		// RFC 7517 §5: "keys" is required.
		{name: "keys absent", doc: []byte(`{}`), wantErr: `jwtbundle: unable to parse JWKS: missing "keys" member`},
		{name: "keys null", doc: []byte(`{"keys":null}`), wantErr: `missing "keys" member`},
		{name: "keys not an array", doc: []byte(`{"keys":{}}`), wantErr: "jwtbundle: unable to parse JWKS: keys: "},
		{name: "key not an object", doc: []byte(`{"keys":[1]}`), wantErr: "jwtbundle: unable to parse JWKS: key 0 is not a JSON object"},
		{name: "key null", doc: []byte(`{"keys":[null]}`), wantErr: "key 0 is not a JSON object"},
		{name: "not JSON", doc: []byte(`{`), wantErr: "jwtbundle: unable to parse JWKS: "},
		{name: "document null", doc: []byte(`null`), wantErr: "jwtbundle: unable to parse JWKS: document is null"},
		{name: "trailing data", doc: append(jwks(t, ecJWK), '{'), wantErr: "jwtbundle: unable to parse JWKS: "},
		{name: "x5c not an array", doc: jwks(t, with(ecJWK, "x5c", "abc")), wantErr: `"x5c" must be an array of strings`},
		{name: "point not on curve", doc: jwks(t, with(ecJWK, "x", jwk(t, ecKey(t).Public(), "")["x"])), wantErr: "jwtbundle: error adding authority 0 of JWKS: "},
		{name: "bad RSA modulus", doc: jwks(t, with(jwk(t, rsaKey.Public(), "rsa"), "n", "!!")), wantErr: "jwtbundle: error adding authority 0 of JWKS: "},
		// Size limits bound the work an untrusted document can cause.
		{name: "too many keys", doc: jwks(t, tooMany...), wantErr: fmt.Sprintf("jwtbundle: JWKS has %d keys; at most %d are allowed", jwtbundle.MaxKeys+1, jwtbundle.MaxKeys)},
		{name: "oversized", doc: bytes.Repeat([]byte(" "), jwtbundle.MaxBundleSize+1), wantErr: fmt.Sprintf("jwtbundle: document exceeds %d bytes", jwtbundle.MaxBundleSize)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := jwtbundle.Parse(td, tt.doc)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.Nil(t, b)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, td, b.TrustDomain())
			assert.True(t, jwtbundle.FromJWTAuthorities(td, tt.want).Equal(b), "got %v", b.JWTAuthorities())
		})
	}
}

func b64(b []byte) string {
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestAuthorityMethods(t *testing.T) {
	k1, k2 := ecKey(t), ecKey(t)
	b := jwtbundle.New(td)
	assert.True(t, b.Empty())

	require.NoError(t, b.AddJWTAuthority("k1", k1.Public()))
	require.NoError(t, b.AddJWTAuthority("k2", k2.Public()))
	assert.False(t, b.Empty())
	assert.True(t, b.HasJWTAuthority("k1"))
	assert.False(t, b.HasJWTAuthority("k3"))

	key, ok := b.FindJWTAuthority("k2")
	assert.True(t, ok)
	assert.Equal(t, k2.Public(), key)
	key, ok = b.FindJWTAuthority("k3")
	assert.False(t, ok)
	assert.Nil(t, key)

	// A key ID is replaced, not duplicated.
	require.NoError(t, b.AddJWTAuthority("k1", k2.Public()))
	key, _ = b.FindJWTAuthority("k1")
	assert.Equal(t, k2.Public(), key)

	// The returned map is a copy.
	m := b.JWTAuthorities()
	delete(m, "k1")
	assert.True(t, b.HasJWTAuthority("k1"))

	b.RemoveJWTAuthority("k1")
	b.RemoveJWTAuthority("absent")
	assert.Equal(t, map[string]crypto.PublicKey{"k2": k2.Public()}, b.JWTAuthorities())

	in := map[string]crypto.PublicKey{"a": k1.Public()}
	b.SetJWTAuthorities(in)
	in["b"] = k2.Public() // the bundle keeps its own copy
	assert.Equal(t, map[string]crypto.PublicKey{"a": k1.Public()}, b.JWTAuthorities())

	f := jwtbundle.FromJWTAuthorities(td, in)
	delete(in, "a")
	assert.Len(t, f.JWTAuthorities(), 2)
}

func TestAddJWTAuthorityErrors(t *testing.T) {
	k := ecKey(t)
	tests := []struct {
		name    string
		kid     string
		key     crypto.PublicKey
		wantErr string
	}{
		{"empty key ID", "", k.Public(), "jwtbundle: keyID cannot be empty"},
		{"nil key", "k", nil, "jwtbundle: authority cannot be nil"},
		// A bundle is published; a private key in it would leak.
		{"private key", "k", k, "jwtbundle: authority must be a public key; got *ecdsa.PrivateKey"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := jwtbundle.New(td)
			require.EqualError(t, b.AddJWTAuthority(tt.kid, tt.key), tt.wantErr)
			assert.True(t, b.Empty())
		})
	}
}

func TestMarshal(t *testing.T) {
	k1, k2 := ecKey(t), ecKey(t)
	b := jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{"b": k2.Public(), "a": k1.Public()})
	out, err := b.Marshal()
	require.NoError(t, err)

	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	require.NoError(t, json.Unmarshal(out, &doc))
	require.Len(t, doc.Keys, 2)
	// Sorted by key ID, plain RFC 7517: no "use" and no SPIFFE members.
	assert.Equal(t, "a", doc.Keys[0]["kid"])
	assert.Equal(t, "b", doc.Keys[1]["kid"])
	assert.NotContains(t, doc.Keys[0], "use")
	assert.NotContains(t, string(out), "spiffe_")

	again, err := jwtbundle.Parse(td, out)
	require.NoError(t, err)
	assert.True(t, b.Equal(again))

	out, err = jwtbundle.New(td).Marshal()
	require.NoError(t, err)
	assert.JSONEq(t, `{"keys":[]}`, string(out))
}

func TestMarshalRefusesBadKeys(t *testing.T) {
	tests := []struct {
		name string
		key  crypto.PublicKey
	}{
		// Bundle rule 14: never publish private key material.
		{"private key", ecKey(t)},
		{"unsupported type", "not a key"},
		{"nil", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{"k": tt.key})
			_, err := b.Marshal()
			require.ErrorContains(t, err, `jwtbundle: key "k": `)
		})
	}
}

func TestEqualAndClone(t *testing.T) {
	k1, k2 := ecKey(t), ecKey(t)
	a := jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{"k": k1.Public()})
	// A key parsed back from JSON is another pointer but the same key.
	parsed, err := jwtbundle.Parse(td, jwks(t, jwk(t, k1.Public(), "k")))
	require.NoError(t, err)

	tests := []struct {
		name  string
		a, b  *jwtbundle.Bundle
		equal bool
	}{
		{"same pointer", a, a, true},
		{"clone", a, a.Clone(), true},
		{"parsed copy", a, parsed, true},
		{"other key", a, jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{"k": k2.Public()}), false},
		{"other key ID", a, jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{"j": k1.Public()}), false},
		{"more keys", a, jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{"k": k1.Public(), "j": k2.Public()}), false},
		{"other trust domain", a, jwtbundle.FromJWTAuthorities(td2, map[string]crypto.PublicKey{"k": k1.Public()}), false},
		{"key without Equal", jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{"k": "x"}), jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{"k": "x"}), false},
		{"nil and non-nil", a, nil, false},
		{"both nil", nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.equal, tt.a.Equal(tt.b))
			assert.Equal(t, tt.equal, tt.b.Equal(tt.a))
		})
	}

	c := a.Clone()
	c.RemoveJWTAuthority("k")
	assert.True(t, a.HasJWTAuthority("k"))
}

func TestLoadAndRead(t *testing.T) {
	k := ecKey(t)
	doc := jwks(t, jwk(t, k.Public(), "k"))
	path := filepath.Join(t.TempDir(), "bundle.jwks")
	require.NoError(t, os.WriteFile(path, doc, 0o600))

	b, err := jwtbundle.Load(td, path)
	require.NoError(t, err)
	assert.True(t, b.HasJWTAuthority("k"))

	_, err = jwtbundle.Load(td, filepath.Join(t.TempDir(), "missing"))
	require.ErrorIs(t, err, os.ErrNotExist)
	require.ErrorContains(t, err, "jwtbundle: unable to read JWT bundle: ")

	big := filepath.Join(t.TempDir(), "big")
	require.NoError(t, os.WriteFile(big, bytes.Repeat([]byte(" "), jwtbundle.MaxBundleSize+1), 0o600))
	_, err = jwtbundle.Load(td, big)
	require.ErrorContains(t, err, "exceeds")

	b, err = jwtbundle.Read(td, bytes.NewReader(doc))
	require.NoError(t, err)
	assert.True(t, b.HasJWTAuthority("k"))

	_, err = jwtbundle.Read(td, strings.NewReader(strings.Repeat(" ", jwtbundle.MaxBundleSize+1)))
	require.ErrorContains(t, err, "jwtbundle: unable to read: document exceeds")

	_, err = jwtbundle.Read(td, errReader{})
	require.ErrorIs(t, err, os.ErrClosed)
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, os.ErrClosed }

func TestBundleSource(t *testing.T) {
	b := jwtbundle.New(td)
	got, err := b.GetJWTBundleForTrustDomain(td)
	require.NoError(t, err)
	assert.Same(t, b, got)

	// Bundle rule 1: a bundle is authoritative for one trust domain only.
	_, err = b.GetJWTBundleForTrustDomain(td2)
	require.EqualError(t, err, `jwtbundle: no JWT bundle for trust domain "example.com"`)
}

func TestBundleConcurrentUse(t *testing.T) {
	keys := []*ecdsa.PrivateKey{ecKey(t), ecKey(t), ecKey(t)}
	b := jwtbundle.New(td)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			kid := fmt.Sprint(i)
			for range 50 {
				_ = b.AddJWTAuthority(kid, keys[i].Public())
				_, _ = b.FindJWTAuthority("0")
				_ = b.HasJWTAuthority("1")
				_ = b.JWTAuthorities()
				_ = b.Equal(b.Clone())
				_, _ = b.Marshal()
				_ = b.Empty()
				b.RemoveJWTAuthority(kid)
				b.SetJWTAuthorities(map[string]crypto.PublicKey{kid: keys[i].Public()})
			}
		})
	}
	wg.Wait()
}

func TestZeroBundleAdd(t *testing.T) {
	var b jwtbundle.Bundle
	require.NoError(t, b.AddJWTAuthority("k", ecKey(t).Public()))
	assert.True(t, b.HasJWTAuthority("k"))
}
