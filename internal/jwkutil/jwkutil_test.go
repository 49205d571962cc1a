package jwkutil

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

func marshalJWK(t *testing.T, k jose.JSONWebKey) string {
	t.Helper()
	b, err := json.Marshal(k)
	require.NoError(t, err)
	return string(b)
}

func TestDecode(t *testing.T) {
	k := ecKey(t)
	ec := marshalJWK(t, jose.JSONWebKey{Key: k.Public(), KeyID: "k", Use: "jwt-svid"})

	set, err := Decode([]byte(`{"keys":[` + ec + `,{"kty":"PQ"},{"use":"x"}],"spiffe_sequence":1}`))
	require.NoError(t, err)
	assert.True(t, set.HasKeys)
	assert.Contains(t, set.Members, "spiffe_sequence")
	// Bundle rule 12: unknown and missing kty are dropped at this stage.
	require.Len(t, set.Keys, 1)
	e := set.Keys[0]
	assert.Equal(t, 0, e.Index)
	assert.Equal(t, "EC", e.Kty)
	assert.Equal(t, "jwt-svid", e.Use)
	assert.Equal(t, "k", e.KeyID)
	assert.Nil(t, e.X5C)

	pub, err := e.PublicKey()
	require.NoError(t, err)
	assert.True(t, k.PublicKey.Equal(pub))

	// Certificate needs an x5c value.
	_, err = e.Certificate()
	require.EqualError(t, err, "no x5c certificate")

	set, err = Decode([]byte(`{"other":1}`))
	require.NoError(t, err)
	assert.False(t, set.HasKeys)

	// Member names are exact: "Use" and "KTY" are not "use" and "kty".
	set, err = Decode([]byte(`{"keys":[{"KTY":"EC","Use":"jwt-svid"}]}`))
	require.NoError(t, err)
	assert.Empty(t, set.Keys)
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, doc, wantErr string
	}{
		{"not JSON", `x`, "unable to parse JWKS: "},
		{"null", `null`, "unable to parse JWKS: document is null"},
		{"keys not array", `{"keys":1}`, "unable to parse JWKS: keys: "},
		{"element not object", `{"keys":["a"]}`, "unable to parse JWKS: key 0 is not a JSON object"},
		{"kty not string", `{"keys":[{"kty":1}]}`, `unable to parse JWKS: key 0: "kty" must be a string`},
		{"use not string", `{"keys":[{"kty":"EC","use":{}}]}`, `"use" must be a string`},
		{"x5c not array", `{"keys":[{"kty":"EC","x5c":"a"}]}`, `"x5c" must be an array of strings`},
		// Bundle rule 14.
		{"oth member", `{"keys":[{"kty":"RSA","oth":[]}]}`, `key 0 carries private key member "oth"`},
		{"k member", `{"keys":[{"kty":"PQ","k":"AA"}]}`, `key 0 carries private key member "k"`},
		{"oct", `{"keys":[{"kty":"oct"}]}`, "key 0 is a symmetric (oct) key"},
		{"too many keys", `{"keys":[` + strings.Repeat(`{},`, MaxKeys) + `{}]}`, "JWKS has 1025 keys; at most 1024 are allowed"},
		{"too large", strings.Repeat(" ", MaxDocumentSize+1), "document exceeds 1048576 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.doc))
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestEntryCertificate(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	root, other := testca.New(t, td).Cert(), testca.New(t, td).Cert()
	doc := marshalJWK(t, jose.JSONWebKey{Key: root.PublicKey, Certificates: []*x509.Certificate{root, other}, Use: "x509-svid"})

	set, err := Decode([]byte(`{"keys":[` + doc + `]}`))
	require.NoError(t, err)
	require.Len(t, set.Keys, 1)
	require.Len(t, set.Keys[0].X5C, 2)
	// X509 rule 25: only x5c[0] counts.
	cert, err := set.Keys[0].Certificate()
	require.NoError(t, err)
	assert.True(t, cert.Equal(root))
}

func TestEntryPublicKeyErrors(t *testing.T) {
	tests := []struct {
		name, key   string
		unsupported bool
	}{
		{"X25519 unsupported", `{"kty":"OKP","crv":"X25519","x":"AAAA"}`, true},
		{"bad EC point", `{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}`, false},
		{"RSA without modulus", `{"kty":"RSA","e":"AQAB"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := Decode([]byte(`{"keys":[` + tt.key + `]}`))
			require.NoError(t, err)
			require.Len(t, set.Keys, 1)
			_, err = set.Keys[0].PublicKey()
			require.Error(t, err)
			assert.Equal(t, tt.unsupported, errors.Is(err, ErrUnsupportedKey))
		})
	}
}

func TestReadAll(t *testing.T) {
	b, err := ReadAll(strings.NewReader(`{"keys":[]}`))
	require.NoError(t, err)
	assert.Equal(t, `{"keys":[]}`, string(b))

	_, err = ReadAll(bytes.NewReader(make([]byte, MaxDocumentSize+1)))
	require.EqualError(t, err, "document exceeds 1048576 bytes")

	_, err = ReadAll(failingReader{})
	require.ErrorIs(t, err, errFail)
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bundle.jwks")
	require.NoError(t, os.WriteFile(path, []byte(`{"keys":[]}`), 0o600))
	b, err := ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, `{"keys":[]}`, string(b))

	_, err = ReadFile(filepath.Join(dir, "missing"))
	require.ErrorIs(t, err, os.ErrNotExist)

	big := filepath.Join(dir, "big")
	require.NoError(t, os.WriteFile(big, make([]byte, MaxDocumentSize+1), 0o600))
	_, err = ReadFile(big)
	require.EqualError(t, err, "document exceeds 1048576 bytes")
}

var errFail = errors.New("read failed")

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errFail }

func TestCheckPublicKey(t *testing.T) {
	k := ecKey(t)
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)

	require.NoError(t, CheckPublicKey(k.Public()))
	require.NoError(t, CheckPublicKey(edPub))
	require.EqualError(t, CheckPublicKey(nil), "authority cannot be nil")
	require.EqualError(t, CheckPublicKey(k), "authority must be a public key; got *ecdsa.PrivateKey")
	require.EqualError(t, CheckPublicKey(edPriv), "authority must be a public key; got ed25519.PrivateKey")
}

func TestMarshalKey(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	root := testca.New(t, td).Cert()

	b, err := MarshalKey(nil, "", "x509-svid", root)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	assert.Equal(t, "x509-svid", m["use"])
	assert.NotContains(t, m, "kid")
	assert.Len(t, m["x5c"], 1)

	_, err = MarshalKey(ecKey(t), "k", "", nil)
	require.EqualError(t, err, "authority must be a public key; got *ecdsa.PrivateKey")

	_, err = MarshalKey(struct{}{}, "k", "", nil)
	require.Error(t, err)
}

func TestAuthoritiesRoundTrip(t *testing.T) {
	k1, k2 := ecKey(t), ecKey(t)
	keys := map[string]crypto.PublicKey{"b": k2.Public(), "a": k1.Public()}
	out, err := MarshalAuthorities(keys)
	require.NoError(t, err)
	assert.Less(t, strings.Index(string(out), `"kid":"a"`), strings.Index(string(out), `"kid":"b"`))
	assert.NotContains(t, string(out), `"use"`)

	back, err := ParseAuthorities(out)
	require.NoError(t, err)
	assert.True(t, KeysEqual(keys, back))

	_, err = MarshalAuthorities(map[string]crypto.PublicKey{"k": nil})
	require.EqualError(t, err, `key "k": authority cannot be nil`)
}

// jwk returns the JWK members of pub, with kid when not empty.
func jwk(t *testing.T, pub crypto.PublicKey, kid string) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(marshalJWK(t, jose.JSONWebKey{Key: pub, KeyID: kid})), &m))
	return m
}

// jwks returns a JWK Set document holding keys.
func jwks(t *testing.T, keys ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	require.NoError(t, err)
	return b
}

// with returns a copy of m with the members kv (name, value, ...) set, or
// removed where the value is nil.
func with(m map[string]any, kv ...any) map[string]any {
	out := maps.Clone(m)
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// TestParseAuthorities holds the decoding rules of the plain JWK Sets of
// jwtbundle and witbundle; those packages only add their error prefix.
func TestParseAuthorities(t *testing.T) {
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
	tooMany := make([]map[string]any, MaxKeys+1)
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
			// JWT rule 14, WIT rule 17: Workload API bundles carry no "use";
			// any value is ignored.
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
			doc:  jwks(t, ecJWK, map[string]any{"kty": "OKP", "crv": "X25519", "kid": "x", "x": base64.RawURLEncoding.EncodeToString(x25519.PublicKey().Bytes())}),
			want: map[string]crypto.PublicKey{"ec": ec.Public()},
		},
		{
			name: "unknown members ignored",
			doc:  jwks(t, with(ecJWK, "alg", "ES256", "spiffe_extra", 1)),
			want: map[string]crypto.PublicKey{"ec": ec.Public()},
		},
		// Bundle rule 16, JWT rule 14, WIT rule 16: every key needs a kid.
		{name: "missing kid", doc: jwks(t, with(ecJWK, "kid", nil)), wantErr: "error adding authority 0 of JWKS: keyID cannot be empty"},
		{name: "empty kid", doc: jwks(t, ecJWK, with(ecJWK, "kid", "")), wantErr: "error adding authority 1 of JWKS: keyID cannot be empty"},
		// Member names are case-sensitive: "KID" is not "kid".
		{name: "kid in wrong case", doc: jwks(t, with(ecJWK, "kid", nil, "KID", "ec")), wantErr: "keyID cannot be empty"},
		{name: "kid not a string", doc: jwks(t, with(ecJWK, "kid", 7)), wantErr: `"kid" must be a string`},
		// Ours: go-spiffe keeps the last of two keys with one kid.
		{name: "duplicate kid", doc: jwks(t, ecJWK, jwk(t, ecKey(t).Public(), "ec")), wantErr: `error adding authority 1 of JWKS: duplicate key ID "ec"`},
		// Bundle rule 14: no private members, no symmetric keys.
		{name: "private member d", doc: jwks(t, privJWK("d")), wantErr: `key 0 carries private key member "d"`},
		{name: "private member p", doc: jwks(t, privJWK("p")), wantErr: `private key member "p"`},
		{name: "private member qi", doc: jwks(t, privJWK("qi")), wantErr: `private key member "qi"`},
		{name: "private member in unknown kty", doc: jwks(t, with(privJWK("d"), "kty", "PQ")), wantErr: `private key member "d"`},
		{name: "oct key", doc: jwks(t, map[string]any{"kty": "oct", "kid": "hmac"}), wantErr: "key 0 is a symmetric (oct) key"},
		// RFC 7517 §5: "keys" is required.
		{name: "keys absent", doc: []byte(`{}`), wantErr: `unable to parse JWKS: missing "keys" member`},
		{name: "keys null", doc: []byte(`{"keys":null}`), wantErr: `missing "keys" member`},
		{name: "keys not an array", doc: []byte(`{"keys":{}}`), wantErr: "unable to parse JWKS: keys: "},
		{name: "key not an object", doc: []byte(`{"keys":[1]}`), wantErr: "unable to parse JWKS: key 0 is not a JSON object"},
		{name: "key null", doc: []byte(`{"keys":[null]}`), wantErr: "key 0 is not a JSON object"},
		{name: "not JSON", doc: []byte(`{`), wantErr: "unable to parse JWKS: "},
		{name: "document null", doc: []byte(`null`), wantErr: "unable to parse JWKS: document is null"},
		{name: "trailing data", doc: append(jwks(t, ecJWK), '{'), wantErr: "unable to parse JWKS: "},
		{name: "x5c not an array", doc: jwks(t, with(ecJWK, "x5c", "abc")), wantErr: `"x5c" must be an array of strings`},
		{name: "point not on curve", doc: jwks(t, with(ecJWK, "x", jwk(t, ecKey(t).Public(), "")["x"])), wantErr: "error adding authority 0 of JWKS: "},
		{name: "bad RSA modulus", doc: jwks(t, with(jwk(t, rsaKey.Public(), "rsa"), "n", "!!")), wantErr: "error adding authority 0 of JWKS: "},
		{name: "EC key without coordinates", doc: []byte(`{"keys":[{"kty":"EC","kid":"k","crv":"P-256"}]}`), wantErr: "error adding authority 0 of JWKS: "},
		// Size limits bound the work an untrusted document can cause.
		{name: "too many keys", doc: jwks(t, tooMany...), wantErr: fmt.Sprintf("JWKS has %d keys; at most %d are allowed", MaxKeys+1, MaxKeys)},
		{name: "oversized", doc: bytes.Repeat([]byte(" "), MaxDocumentSize+1), wantErr: fmt.Sprintf("document exceeds %d bytes", MaxDocumentSize)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := ParseAuthorities(tt.doc)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.Nil(t, keys)
				return
			}
			require.NoError(t, err)
			assert.True(t, KeysEqual(tt.want, keys), "got %v", keys)
		})
	}
}

func TestKeysEqual(t *testing.T) {
	k1, k2 := ecKey(t), ecKey(t)
	a := map[string]crypto.PublicKey{"k": k1.Public()}
	assert.True(t, KeysEqual(a, map[string]crypto.PublicKey{"k": k1.Public()}))
	assert.False(t, KeysEqual(a, map[string]crypto.PublicKey{"k": k2.Public()}))
	assert.False(t, KeysEqual(a, map[string]crypto.PublicKey{"j": k1.Public()}))
	assert.False(t, KeysEqual(a, nil))
	assert.True(t, KeysEqual(nil, map[string]crypto.PublicKey{}))
	assert.False(t, KeysEqual(map[string]crypto.PublicKey{"k": 1}, map[string]crypto.PublicKey{"k": 1}))
}

// FuzzParseAuthorities checks that ParseAuthorities never panics and that
// what it accepts survives MarshalAuthorities. Seeds live in
// testdata/fuzz/FuzzParseAuthorities.
func FuzzParseAuthorities(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseAuthorities(data)
		if err != nil {
			return
		}
		out, err := MarshalAuthorities(keys)
		require.NoError(t, err)
		again, err := ParseAuthorities(out)
		require.NoError(t, err)
		require.True(t, KeysEqual(keys, again))
	})
}
