package jwkutil

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testca"
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

func TestParseAuthoritiesErrors(t *testing.T) {
	k := marshalJWK(t, jose.JSONWebKey{Key: ecKey(t).Public(), KeyID: "k"})
	tests := []struct{ name, doc, wantErr string }{
		{"not JSON", `{`, "unable to parse JWKS: "},
		{"no keys", `{}`, `unable to parse JWKS: missing "keys" member`},
		// Bundle rule 16.
		{"no kid", `{"keys":[{"kty":"EC"}]}`, "error adding authority 0 of JWKS: keyID cannot be empty"},
		{"duplicate kid", `{"keys":[` + k + `,` + k + `]}`, `error adding authority 1 of JWKS: duplicate key ID "k"`},
		{"bad key", `{"keys":[{"kty":"EC","kid":"k","crv":"P-256"}]}`, "error adding authority 0 of JWKS: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseAuthorities([]byte(tt.doc))
			require.ErrorContains(t, err, tt.wantErr)
		})
	}

	// RFC 7517 §5: an unsupported key is skipped.
	keys, err := ParseAuthorities([]byte(`{"keys":[{"kty":"OKP","crv":"X25519","kid":"x","x":"AAAA"}]}`))
	require.NoError(t, err)
	assert.Empty(t, keys)
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
