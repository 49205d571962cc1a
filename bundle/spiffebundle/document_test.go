package spiffebundle_test

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
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

func newRoot(t *testing.T) *x509.Certificate {
	t.Helper()
	return testca.New(t, td).Cert()
}

// jwk encodes one key the way a producer would, as a map a test can change.
func jwk(t *testing.T, k jose.JSONWebKey) map[string]any {
	t.Helper()
	b, err := json.Marshal(k)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

func x509JWK(t *testing.T, cert *x509.Certificate) map[string]any {
	return jwk(t, jose.JSONWebKey{Key: cert.PublicKey, Certificates: []*x509.Certificate{cert}, Use: "x509-svid"})
}

func jwtJWK(t *testing.T, pub crypto.PublicKey, kid string) map[string]any {
	return jwk(t, jose.JSONWebKey{Key: pub, KeyID: kid, Use: "jwt-svid"})
}

func witJWK(t *testing.T, pub crypto.PublicKey, kid string) map[string]any {
	return jwk(t, jose.JSONWebKey{Key: pub, KeyID: kid, Use: "wit-svid"})
}

// with copies m, sets the given members and deletes those set to nil.
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

// doc builds a document from top-level members and keys.
func doc(t *testing.T, top map[string]any, keys ...map[string]any) []byte {
	t.Helper()
	m := with(top, "keys", keys)
	if keys == nil {
		m["keys"] = []any{}
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

func TestParseExampleDocument(t *testing.T) {
	// The example of bundle.md section F.
	b, err := spiffebundle.Load(td, filepath.Join("testdata", "example.org.json"))
	require.NoError(t, err)

	assert.Equal(t, td, b.TrustDomain())
	require.Len(t, b.X509Authorities(), 1)
	assert.Equal(t, "spiffe://example.org", b.X509Authorities()[0].URIs[0].String())
	assert.Len(t, b.JWTAuthorities(), 1)
	assert.True(t, b.HasJWTAuthority("jwt-2026-11-a"))
	assert.Empty(t, b.WITAuthorities())

	seq, ok := b.SequenceNumber()
	assert.True(t, ok)
	assert.Equal(t, uint64(42), seq)
	hint, ok := b.RefreshHint()
	assert.True(t, ok)
	assert.Equal(t, 300*time.Second, hint)
}

func TestParse(t *testing.T) {
	root, root2 := newRoot(t), newRoot(t)
	jwtKey, witKey := ecKey(t), ecKey(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)

	x509Entry := x509JWK(t, root)
	jwtEntry := jwtJWK(t, jwtKey.Public(), "j1")
	witEntry := witJWK(t, witKey.Public(), "w1")
	rootB64 := base64.StdEncoding.EncodeToString(root.Raw)
	otherB64 := base64.StdEncoding.EncodeToString(root2.Raw)
	tooMany := make([]map[string]any, spiffebundle.MaxKeys+1)
	for i := range tooMany {
		tooMany[i] = x509Entry
	}

	type want struct {
		x509     []*x509.Certificate
		jwt, wit []string
		seq      *uint64
		hint     *time.Duration
	}
	u64 := func(v uint64) *uint64 { return &v }
	dur := func(v time.Duration) *time.Duration { return &v }

	tests := []struct {
		name    string
		doc     []byte
		want    want
		wantErr string
	}{
		{name: "all three uses", doc: doc(t, nil, x509Entry, jwtEntry, witEntry), want: want{x509: []*x509.Certificate{root}, jwt: []string{"j1"}, wit: []string{"w1"}}},
		{name: "RSA JWT key", doc: doc(t, nil, jwtJWK(t, rsaKey.Public(), "r")), want: want{jwt: []string{"r"}}},
		// Bundle rule 7: "keys" may be empty (all keys revoked).
		{name: "empty keys", doc: []byte(`{"keys":[]}`)},
		{name: "keys absent", doc: []byte(`{"spiffe_sequence":1}`), wantErr: "spiffebundle: no authorities found"},
		{name: "keys null", doc: []byte(`{"keys":null}`), wantErr: "spiffebundle: no authorities found"},
		{name: "keys not an array", doc: []byte(`{"keys":"x"}`), wantErr: "spiffebundle: unable to parse JWKS: keys: "},
		{name: "not JSON", doc: []byte(`[`), wantErr: "spiffebundle: unable to parse JWKS: "},
		{name: "JSON array", doc: []byte(`[]`), wantErr: "spiffebundle: unable to parse JWKS: "},
		// Bundle rule 8.
		{name: "sequence", doc: doc(t, map[string]any{"spiffe_sequence": uint64(math.MaxUint64)}), want: want{seq: u64(math.MaxUint64)}},
		{name: "sequence zero", doc: doc(t, map[string]any{"spiffe_sequence": 0}), want: want{seq: u64(0)}},
		{name: "sequence null is absent", doc: []byte(`{"keys":[],"spiffe_sequence":null}`)},
		{name: "negative sequence", doc: []byte(`{"keys":[],"spiffe_sequence":-1}`), wantErr: "spiffebundle: unable to parse JWKS: invalid spiffe_sequence: "},
		{name: "string sequence", doc: []byte(`{"keys":[],"spiffe_sequence":"1"}`), wantErr: "invalid spiffe_sequence"},
		// Bundle rule 9; "[ours]" rejects hints <= 0.
		{name: "refresh hint", doc: []byte(`{"keys":[],"spiffe_refresh_hint":300}`), want: want{hint: dur(300 * time.Second)}},
		{name: "refresh hint null is absent", doc: []byte(`{"keys":[],"spiffe_refresh_hint":null}`)},
		{name: "negative refresh hint", doc: []byte(`{"keys":[],"spiffe_refresh_hint":-5}`), wantErr: "spiffebundle: spiffe_refresh_hint must be positive; got -5"},
		{name: "zero refresh hint", doc: []byte(`{"keys":[],"spiffe_refresh_hint":0}`), wantErr: "spiffebundle: spiffe_refresh_hint must be positive; got 0"},
		{name: "float refresh hint", doc: []byte(`{"keys":[],"spiffe_refresh_hint":1.5}`), wantErr: "spiffebundle: unable to parse JWKS: invalid spiffe_refresh_hint: "},
		{name: "string refresh hint", doc: []byte(`{"keys":[],"spiffe_refresh_hint":"300"}`), wantErr: "invalid spiffe_refresh_hint"},
		{name: "refresh hint overflows a Duration", doc: []byte(`{"keys":[],"spiffe_refresh_hint":9223372036854775807}`), wantErr: "spiffebundle: spiffe_refresh_hint is too large"},
		// Bundle rule 10.
		{name: "unknown top-level member", doc: doc(t, map[string]any{"spiffe_future": true}, jwtEntry), want: want{jwt: []string{"j1"}}},
		// Member names are case-sensitive: "Keys" is not "keys".
		{name: "keys in wrong case", doc: []byte(`{"Keys":[]}`), wantErr: "spiffebundle: no authorities found"},
		// Bundle rule 12: the element is ignored, not the document (go-spiffe fails it).
		{name: "unknown kty ignored", doc: doc(t, nil, with(jwtEntry, "kty", "PQ", "kid", "pq"), jwtEntry), want: want{jwt: []string{"j1"}}},
		{name: "missing kty ignored", doc: doc(t, nil, with(x509Entry, "kty", nil), jwtEntry), want: want{jwt: []string{"j1"}}},
		{name: "unsupported curve ignored", doc: doc(t, nil, map[string]any{"use": "jwt-svid", "kid": "x", "kty": "OKP", "crv": "X25519", "x": base64.RawURLEncoding.EncodeToString(x25519.PublicKey().Bytes())}), want: want{}},
		// Bundle rule 13.
		{name: "missing use ignored", doc: doc(t, nil, with(jwtEntry, "use", nil)), want: want{}},
		{name: "unknown use ignored", doc: doc(t, nil, with(jwtEntry, "use", "JWT-SVID")), want: want{}},
		// Bundle rule 14 [ours]: private members and symmetric keys reject the document.
		{name: "private member d", doc: doc(t, nil, with(jwtEntry, "d", "AAAA")), wantErr: `spiffebundle: key 0 carries private key member "d"`},
		{name: "private member dq", doc: doc(t, nil, with(x509Entry, "dq", "AAAA")), wantErr: `private key member "dq"`},
		{name: "private member with unknown use", doc: doc(t, nil, with(jwtEntry, "use", "other", "q", "AAAA")), wantErr: `private key member "q"`},
		{name: "oct key", doc: doc(t, nil, map[string]any{"use": "jwt-svid", "kty": "oct", "kid": "h"}), wantErr: "spiffebundle: key 0 is a symmetric (oct) key"},
		// Bundle rule 15, X509 rule 25: no or empty x5c is ignored; x5c[0] is used.
		{name: "x509 without x5c ignored", doc: doc(t, nil, with(x509Entry, "x5c", nil), jwtEntry), want: want{jwt: []string{"j1"}}},
		{name: "x509 with empty x5c ignored", doc: doc(t, nil, with(x509Entry, "x5c", []string{}), jwtEntry), want: want{jwt: []string{"j1"}}},
		{name: "x509 with two x5c uses the first", doc: doc(t, nil, with(x509Entry, "x5c", []string{rootB64, otherB64})), want: want{x509: []*x509.Certificate{root}}},
		{name: "x509 with bad second x5c uses the first", doc: doc(t, nil, with(x509Entry, "x5c", []string{rootB64, "!!"})), want: want{x509: []*x509.Certificate{root}}},
		{name: "x509 with kid tolerated", doc: doc(t, nil, with(x509Entry, "kid", "r")), want: want{x509: []*x509.Certificate{root}}},
		{name: "x509 duplicate certificate kept once", doc: doc(t, nil, x509Entry, x509Entry), want: want{x509: []*x509.Certificate{root}}},
		{name: "x509 key does not match x5c", doc: doc(t, nil, with(x509Entry, "x5c", []string{otherB64})), wantErr: "spiffebundle: error adding authority 0 of JWKS: "},
		{name: "x509 x5c not base64", doc: doc(t, nil, with(x509Entry, "x5c", []string{"!!"})), wantErr: "spiffebundle: error adding authority 0 of JWKS: "},
		{name: "x509 x5c not strings", doc: doc(t, nil, with(x509Entry, "x5c", []int{1})), wantErr: `"x5c" must be an array of strings`},
		// Bundle rule 16: jwt-svid keys need a kid; duplicates are rejected [ours].
		{name: "jwt without kid", doc: doc(t, nil, with(jwtEntry, "kid", nil)), wantErr: "spiffebundle: error adding authority 0 of JWKS: keyID cannot be empty"},
		{name: "jwt with empty kid", doc: doc(t, nil, x509Entry, with(jwtEntry, "kid", "")), wantErr: "spiffebundle: error adding authority 1 of JWKS: keyID cannot be empty"},
		{name: "jwt duplicate kid", doc: doc(t, nil, jwtEntry, jwtJWK(t, witKey.Public(), "j1")), wantErr: `spiffebundle: error adding authority 1 of JWKS: duplicate key ID "j1"`},
		{name: "jwt bad key", doc: doc(t, nil, with(jwtEntry, "x", "AAAA")), wantErr: "spiffebundle: error adding authority 0 of JWKS: "},
		// Bundle rule 17, WIT rule 16: wit-svid keys need a kid unique across the bundle.
		{name: "wit without kid", doc: doc(t, nil, with(witEntry, "kid", nil)), wantErr: "spiffebundle: error adding WIT authority 0 of JWKS: keyID cannot be empty"},
		{name: "wit kid shared with jwt", doc: doc(t, nil, jwtEntry, with(witEntry, "kid", "j1")), wantErr: `spiffebundle: error adding WIT authority 1 of JWKS: duplicate key ID "j1"`},
		{name: "jwt kid shared with wit", doc: doc(t, nil, witEntry, with(jwtEntry, "kid", "w1")), wantErr: `spiffebundle: error adding authority 1 of JWKS: duplicate key ID "w1"`},
		{name: "wit bad key", doc: doc(t, nil, with(witEntry, "y", "AAAA")), wantErr: "spiffebundle: error adding WIT authority 0 of JWKS: "},
		// Size limits.
		{name: "too many keys", doc: doc(t, nil, tooMany...), wantErr: fmt.Sprintf("spiffebundle: JWKS has %d keys; at most %d are allowed", spiffebundle.MaxKeys+1, spiffebundle.MaxKeys)},
		{name: "oversized", doc: bytes.Repeat([]byte(" "), spiffebundle.MaxBundleSize+1), wantErr: "spiffebundle: document exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := spiffebundle.Parse(td, tt.doc)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.Nil(t, b)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, td, b.TrustDomain())
			assert.Equal(t, tt.want.x509, b.X509Authorities())
			assert.ElementsMatch(t, tt.want.jwt, keys(b.JWTAuthorities()))
			assert.ElementsMatch(t, tt.want.wit, keys(b.WITAuthorities()))
			seq, ok := b.SequenceNumber()
			assert.Equal(t, tt.want.seq != nil, ok)
			if ok {
				assert.Equal(t, *tt.want.seq, seq)
			}
			hint, ok := b.RefreshHint()
			assert.Equal(t, tt.want.hint != nil, ok)
			if ok {
				assert.Equal(t, *tt.want.hint, hint)
			}
		})
	}
}

func keys(m map[string]crypto.PublicKey) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestParsedKeysAreTheKeys(t *testing.T) {
	root := newRoot(t)
	jwtKey, witKey := ecKey(t), ecKey(t)
	b, err := spiffebundle.Parse(td, doc(t, nil, x509JWK(t, root), jwtJWK(t, jwtKey.Public(), "j"), witJWK(t, witKey.Public(), "w")))
	require.NoError(t, err)

	assert.True(t, b.X509Authorities()[0].Equal(root))
	got, ok := b.FindJWTAuthority("j")
	require.True(t, ok)
	assert.True(t, jwtKey.PublicKey.Equal(got))
	got, ok = b.FindWITAuthority("w")
	require.True(t, ok)
	assert.True(t, witKey.PublicKey.Equal(got))
}

func TestMarshal(t *testing.T) {
	root1, root2 := newRoot(t), newRoot(t)
	k1, k2, k3 := ecKey(t), ecKey(t), ecKey(t)

	b := spiffebundle.New(td)
	require.NoError(t, b.AddWITAuthority("w", k3.Public()))
	require.NoError(t, b.AddJWTAuthority("jb", k2.Public()))
	require.NoError(t, b.AddJWTAuthority("ja", k1.Public()))
	b.AddX509Authority(root1)
	b.AddX509Authority(root2)
	b.SetSequenceNumber(7)
	b.SetRefreshHint(1500 * time.Millisecond)

	out, err := b.Marshal()
	require.NoError(t, err)

	var got struct {
		Keys        []map[string]any `json:"keys"`
		Sequence    *uint64          `json:"spiffe_sequence"`
		RefreshHint *int64           `json:"spiffe_refresh_hint"`
	}
	require.NoError(t, json.Unmarshal(out, &got))

	// Bundle section D: x509-svid first, then jwt-svid, then wit-svid; "use"
	// on every entry; no "kid" on X.509 entries (Bundle rule 15).
	require.Len(t, got.Keys, 5)
	wantUse := []string{"x509-svid", "x509-svid", "jwt-svid", "jwt-svid", "wit-svid"}
	wantKid := []any{nil, nil, "ja", "jb", "w"}
	for i, k := range got.Keys {
		assert.Equal(t, wantUse[i], k["use"], "key %d", i)
		assert.Equal(t, wantKid[i], k["kid"], "key %d", i)
		for _, priv := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			assert.NotContains(t, k, priv)
		}
	}
	assert.Equal(t, []any{base64.StdEncoding.EncodeToString(root1.Raw)}, got.Keys[0]["x5c"])
	assert.NotContains(t, got.Keys[2], "x5c")
	require.NotNil(t, got.Sequence)
	assert.Equal(t, uint64(7), *got.Sequence)
	// The hint is rounded up to whole seconds.
	require.NotNil(t, got.RefreshHint)
	assert.Equal(t, int64(2), *got.RefreshHint)

	// It is a JWK Set that go-jose reads as a whole, as go-spiffe does.
	var set jose.JSONWebKeySet
	require.NoError(t, json.Unmarshal(out, &set))
	assert.Len(t, set.Keys, 5)

	again, err := spiffebundle.Parse(td, out)
	require.NoError(t, err)
	b.SetRefreshHint(2 * time.Second)
	assert.True(t, b.Equal(again))
}

func TestMarshalOptionalMembers(t *testing.T) {
	out, err := spiffebundle.New(td).Marshal()
	require.NoError(t, err)
	// Bundle rule 7: "keys" is always there; the SPIFFE members only when set.
	assert.JSONEq(t, `{"keys":[]}`, string(out))

	b := spiffebundle.New(td)
	b.SetSequenceNumber(0)
	b.SetRefreshHint(time.Second)
	out, err = b.Marshal()
	require.NoError(t, err)
	assert.JSONEq(t, `{"keys":[],"spiffe_sequence":0,"spiffe_refresh_hint":1}`, string(out))
}

func TestMarshalErrors(t *testing.T) {
	k := ecKey(t)
	tests := []struct {
		name    string
		setup   func(b *spiffebundle.Bundle)
		wantErr string
	}{
		// Bundle rule 9 [ours]: never write a hint Parse would reject.
		{"zero refresh hint", func(b *spiffebundle.Bundle) { b.SetRefreshHint(0) }, "spiffebundle: refresh hint must be positive; got 0s"},
		{"negative refresh hint", func(b *spiffebundle.Bundle) { b.SetRefreshHint(-time.Second) }, "spiffebundle: refresh hint must be positive; got -1s"},
		// WIT rule 16: a kid is unique across JWT and WIT keys.
		{"kid clash", func(b *spiffebundle.Bundle) {
			b.SetJWTAuthorities(map[string]crypto.PublicKey{"k": k.Public()})
			b.SetWITAuthorities(map[string]crypto.PublicKey{"k": k.Public()})
		}, `spiffebundle: key ID "k" is used by both a JWT and a WIT authority`},
		// Bundle rule 14: never publish private keys.
		{"private JWT key", func(b *spiffebundle.Bundle) {
			b.SetJWTAuthorities(map[string]crypto.PublicKey{"k": k})
		}, `spiffebundle: key "k": authority must be a public key`},
		{"unsupported WIT key", func(b *spiffebundle.Bundle) {
			b.SetWITAuthorities(map[string]crypto.PublicKey{"k": 42})
		}, `spiffebundle: key "k": `},
		{"certificate with unsupported key", func(b *spiffebundle.Bundle) {
			b.AddX509Authority(&x509.Certificate{Raw: []byte{1}, PublicKey: 42})
		}, "spiffebundle: X.509 authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := spiffebundle.New(td)
			tt.setup(b)
			_, err := b.Marshal()
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestLoadAndRead(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("testdata", "example.org.json"))
	require.NoError(t, err)

	b, err := spiffebundle.Read(td, bytes.NewReader(example))
	require.NoError(t, err)
	assert.Len(t, b.X509Authorities(), 1)

	_, err = spiffebundle.Read(td, strings.NewReader(strings.Repeat(" ", spiffebundle.MaxBundleSize+1)))
	require.ErrorContains(t, err, "spiffebundle: unable to read: document exceeds")

	_, err = spiffebundle.Load(td, filepath.Join(t.TempDir(), "missing.json"))
	require.ErrorIs(t, err, os.ErrNotExist)
	require.ErrorContains(t, err, "spiffebundle: unable to read SPIFFE bundle: ")

	big := filepath.Join(t.TempDir(), "big.json")
	require.NoError(t, os.WriteFile(big, bytes.Repeat([]byte(" "), spiffebundle.MaxBundleSize+1), 0o600))
	_, err = spiffebundle.Load(td, big)
	require.ErrorContains(t, err, "spiffebundle: unable to read SPIFFE bundle: document exceeds")
}
