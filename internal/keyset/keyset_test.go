package keyset

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/jwkutil"
)

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

func TestCheck(t *testing.T) {
	k := ecKey(t)
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)

	tests := []struct {
		name    string
		kid     string
		key     crypto.PublicKey
		wantErr string
	}{
		{name: "EC public key", kid: "k", key: k.Public()},
		{name: "Ed25519 public key", kid: "k", key: edPub},
		// Bundle rule 16, WIT rule 16: a key is found by its key ID.
		{name: "empty key ID", kid: "", key: k.Public(), wantErr: "keyID cannot be empty"},
		{name: "nil key", kid: "k", key: nil, wantErr: "authority cannot be nil"},
		// Bundle rule 14: a bundle is published; a private key in it would leak.
		{name: "EC private key", kid: "k", key: k, wantErr: "authority must be a public key; got *ecdsa.PrivateKey"},
		{name: "Ed25519 private key", kid: "k", key: edPriv, wantErr: "authority must be a public key; got ed25519.PrivateKey"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.kid, tt.key)
			var s Set
			addErr := s.Add(tt.kid, tt.key)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.NoError(t, addErr)
				assert.True(t, s.Has(tt.kid))
				return
			}
			require.EqualError(t, err, tt.wantErr)
			// Add applies the same rules and leaves the set unchanged.
			require.EqualError(t, addErr, tt.wantErr)
			assert.Zero(t, s.Len())
		})
	}
}

func TestOperations(t *testing.T) {
	k1, k2 := ecKey(t).Public(), ecKey(t).Public()

	var s Set // the zero value is ready to use
	assert.Zero(t, s.Len())
	assert.Equal(t, map[string]crypto.PublicKey{}, s.All())
	key, ok := s.Find("k1")
	assert.False(t, ok)
	assert.Nil(t, key)
	s.Remove("k1")

	require.NoError(t, s.Add("k1", k1))
	require.NoError(t, s.Add("k2", k2))
	assert.Equal(t, 2, s.Len())
	assert.True(t, s.Has("k1"))
	assert.False(t, s.Has("k3"))
	key, ok = s.Find("k2")
	assert.True(t, ok)
	assert.Equal(t, k2, key)

	// A key ID is replaced, not duplicated.
	require.NoError(t, s.Add("k1", k2))
	key, _ = s.Find("k1")
	assert.Equal(t, k2, key)
	assert.Equal(t, 2, s.Len())

	// All returns a copy.
	all := s.All()
	delete(all, "k1")
	assert.True(t, s.Has("k1"))

	s.Remove("k1")
	s.Remove("absent")
	assert.Equal(t, map[string]crypto.PublicKey{"k2": k2}, s.All())

	// Replace copies its input and does not validate it (go-spiffe's setters
	// accept any value; Marshal refuses it later).
	in := map[string]crypto.PublicKey{"a": k1, "bad": "not a key"}
	s.Replace(in)
	in["b"] = k2
	assert.Equal(t, map[string]crypto.PublicKey{"a": k1, "bad": "not a key"}, s.All())

	s.Replace(nil)
	assert.Zero(t, s.Len())
	assert.NotNil(t, s.All())
}

func TestEqual(t *testing.T) {
	k1, k2 := ecKey(t), ecKey(t)
	set := func(keys map[string]crypto.PublicKey) *Set {
		var s Set
		s.Replace(keys)
		return &s
	}
	a := set(map[string]crypto.PublicKey{"k": k1.Public()})
	// A key parsed back from JSON is another pointer but the same key.
	doc, err := a.Marshal()
	require.NoError(t, err)
	parsed, err := jwkutil.ParseAuthorities(doc)
	require.NoError(t, err)

	tests := []struct {
		name  string
		a, b  *Set
		equal bool
	}{
		{"same set", a, a, true},
		{"parsed copy", a, set(parsed), true},
		{"zero and empty", &Set{}, set(map[string]crypto.PublicKey{}), true},
		{"other key", a, set(map[string]crypto.PublicKey{"k": k2.Public()}), false},
		{"other key ID", a, set(map[string]crypto.PublicKey{"j": k1.Public()}), false},
		{"more keys", a, set(map[string]crypto.PublicKey{"k": k1.Public(), "j": k2.Public()}), false},
		{"empty", a, &Set{}, false},
		{"key without Equal", set(map[string]crypto.PublicKey{"k": "x"}), set(map[string]crypto.PublicKey{"k": "x"}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.equal, tt.a.Equal(tt.b))
			assert.Equal(t, tt.equal, tt.b.Equal(tt.a))
		})
	}
}

func TestMarshal(t *testing.T) {
	k1, k2 := ecKey(t), ecKey(t)
	var s Set
	s.Replace(map[string]crypto.PublicKey{"b": k2.Public(), "a": k1.Public()})
	out, err := s.Marshal()
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

	back, err := jwkutil.ParseAuthorities(out)
	require.NoError(t, err)
	assert.True(t, jwkutil.KeysEqual(s.All(), back))

	out, err = new(Set).Marshal()
	require.NoError(t, err)
	assert.JSONEq(t, `{"keys":[]}`, string(out))
}

func TestMarshalRefusesBadKeys(t *testing.T) {
	tests := []struct {
		name    string
		key     crypto.PublicKey
		wantErr string
	}{
		// Bundle rule 14: never publish private key material, even when
		// Replace let it in.
		{"private key", ecKey(t), `key "k": authority must be a public key; got *ecdsa.PrivateKey`},
		{"unsupported type", "not a key", `key "k": `},
		{"nil", nil, `key "k": authority cannot be nil`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Set
			s.Replace(map[string]crypto.PublicKey{"k": tt.key})
			_, err := s.Marshal()
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// TestConcurrentUse is meant for -race: every method runs against writers.
func TestConcurrentUse(t *testing.T) {
	keys := []crypto.PublicKey{ecKey(t).Public(), ecKey(t).Public(), ecKey(t).Public()}
	var s, other Set
	require.NoError(t, other.Add("0", keys[0]))
	var wg sync.WaitGroup
	for i, key := range keys {
		wg.Go(func() {
			kid := fmt.Sprint(i)
			for range 50 {
				_ = s.Add(kid, key)
				_, _ = s.Find("0")
				_ = s.Has("1")
				_ = s.All()
				_ = s.Len()
				_ = s.Equal(&other)
				_ = other.Equal(&s)
				_ = s.Equal(&s)
				_, _ = s.Marshal()
				s.Remove(kid)
				s.Replace(map[string]crypto.PublicKey{kid: key})
				other.Replace(map[string]crypto.PublicKey{kid: key})
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 1, s.Len())
}
