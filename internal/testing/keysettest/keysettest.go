// Package keysettest checks that a bundle package built on [keyset.Set]
// (bundle/jwtbundle, exp/bundle/witbundle) reaches it from every function and
// method, under its own names and error prefix. The rules behind those
// methods are tested once, in package keyset and in package jwkutil; this
// suite only checks the wiring, in the manner of testing/fstest.
//
//	func TestBundle(t *testing.T) {
//		keysettest.Run(t, keysettest.Package[jwtbundle.Bundle]{
//			Name: "jwtbundle", Kind: "JWT",
//			New: jwtbundle.New, FromAuthorities: jwtbundle.FromJWTAuthorities,
//			Load: jwtbundle.Load, Read: jwtbundle.Read, Parse: jwtbundle.Parse,
//		})
//	}
package keysettest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/jwkutil"
	"github.com/spiffekit/spiffekit/internal/keyset"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Package describes a bundle package: its name, the kind of authority it
// holds ("JWT" or "WIT") and its package-level functions, T being its Bundle
// type. Every field is required. The methods of *T are found by name from
// Kind, as in Find<Kind>Authority; [Run] fails when one is missing or has
// another signature.
type Package[T any] struct {
	// Name is the package name that starts every error message.
	Name string
	// Kind names the authorities in method names and messages.
	Kind string

	New             func(spiffeid.TrustDomain) *T
	FromAuthorities func(spiffeid.TrustDomain, map[string]crypto.PublicKey) *T
	Load            func(spiffeid.TrustDomain, string) (*T, error)
	Read            func(spiffeid.TrustDomain, io.Reader) (*T, error)
	Parse           func(spiffeid.TrustDomain, []byte) (*T, error)
}

// api holds the functions and methods of a bundle package, the methods as
// functions taking the receiver first.
type api[T any] struct {
	Package[T]
	TrustDomain       func(*T) spiffeid.TrustDomain
	Authorities       func(*T) map[string]crypto.PublicKey
	Find              func(*T, string) (crypto.PublicKey, bool)
	Has               func(*T, string) bool
	Add               func(*T, string, crypto.PublicKey) error
	Remove            func(*T, string)
	Set               func(*T, map[string]crypto.PublicKey)
	Empty             func(*T) bool
	Marshal           func(*T) ([]byte, error)
	Equal             func(*T, *T) bool
	Clone             func(*T) *T
	GetForTrustDomain func(*T, spiffeid.TrustDomain) (*T, error)
}

// method sets *dst to the method of *T called name.
func method[T, F any](t *testing.T, dst *F, name string) {
	t.Helper()
	m, ok := reflect.TypeFor[*T]().MethodByName(name)
	require.True(t, ok, "%s has no method %s", reflect.TypeFor[*T](), name)
	f, ok := m.Func.Interface().(F)
	require.True(t, ok, "%s.%s has type %s, want %s", reflect.TypeFor[*T](), name, m.Func.Type(), reflect.TypeFor[F]())
	*dst = f
}

var (
	td  = spiffeid.RequireTrustDomainFromString("example.org")
	td2 = spiffeid.RequireTrustDomainFromString("example.com")
)

// Run runs the suite against the package p describes, as subtests of t.
func Run[T any](t *testing.T, p Package[T]) {
	api := api[T]{Package: p}
	k := p.Kind
	method[T](t, &api.TrustDomain, "TrustDomain")
	method[T](t, &api.Authorities, k+"Authorities")
	method[T](t, &api.Find, "Find"+k+"Authority")
	method[T](t, &api.Has, "Has"+k+"Authority")
	method[T](t, &api.Add, "Add"+k+"Authority")
	method[T](t, &api.Remove, "Remove"+k+"Authority")
	method[T](t, &api.Set, "Set"+k+"Authorities")
	method[T](t, &api.Empty, "Empty")
	method[T](t, &api.Marshal, "Marshal")
	method[T](t, &api.Equal, "Equal")
	method[T](t, &api.Clone, "Clone")
	method[T](t, &api.GetForTrustDomain, "Get"+k+"BundleForTrustDomain")

	t.Run("Authorities", func(t *testing.T) { testAuthorities(t, api) })
	t.Run("Add", func(t *testing.T) { testAdd(t, api) })
	t.Run("Encoding", func(t *testing.T) { testEncoding(t, api) })
	t.Run("Load", func(t *testing.T) { testLoad(t, api) })
	t.Run("EqualClone", func(t *testing.T) { testEqualClone(t, api) })
	t.Run("Source", func(t *testing.T) { testSource(t, api) })
	t.Run("ZeroValue", func(t *testing.T) { testZeroValue(t, api) })
}

// document encodes keys the way a Workload API bundle carries them.
func document(t *testing.T, keys map[string]crypto.PublicKey) []byte {
	t.Helper()
	var s keyset.Set
	s.Replace(keys)
	doc, err := s.Marshal()
	require.NoError(t, err)
	return doc
}

func testAuthorities[T any](t *testing.T, api api[T]) {
	k1, k2 := PublicKey(t), PublicKey(t)
	b := api.New(td)
	assert.Equal(t, td, api.TrustDomain(b))
	assert.True(t, api.Empty(b))

	require.NoError(t, api.Add(b, "k1", k1))
	require.NoError(t, api.Add(b, "k2", k2))
	assert.False(t, api.Empty(b))
	assert.True(t, api.Has(b, "k1"))
	assert.False(t, api.Has(b, "k3"))
	key, ok := api.Find(b, "k2")
	assert.True(t, ok)
	assert.Equal(t, k2, key)

	api.Remove(b, "k1")
	assert.Equal(t, map[string]crypto.PublicKey{"k2": k2}, api.Authorities(b))

	// Inputs are copied: the bundle keeps its own map.
	in := map[string]crypto.PublicKey{"a": k1}
	api.Set(b, in)
	from := api.FromAuthorities(td2, in)
	in["b"] = k2
	assert.Equal(t, map[string]crypto.PublicKey{"a": k1}, api.Authorities(b))
	assert.Equal(t, map[string]crypto.PublicKey{"a": k1}, api.Authorities(from))
	assert.Equal(t, td2, api.TrustDomain(from))
}

func testAdd[T any](t *testing.T, api api[T]) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tests := []struct {
		name    string
		kid     string
		key     crypto.PublicKey
		wantErr string
	}{
		{"empty key ID", "", priv.Public(), "keyID cannot be empty"},
		{"nil key", "k", nil, "authority cannot be nil"},
		// Bundle rule 14: a bundle is published; a private key in it would leak.
		{"private key", "k", priv, "authority must be a public key; got *ecdsa.PrivateKey"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := api.New(td)
			require.EqualError(t, api.Add(b, tt.kid, tt.key), api.Name+": "+tt.wantErr)
			assert.True(t, api.Empty(b))
		})
	}
}

func testEncoding[T any](t *testing.T, api api[T]) {
	k := PublicKey(t)
	b, err := api.Parse(td, document(t, map[string]crypto.PublicKey{"k": k, "j": PublicKey(t)}))
	require.NoError(t, err)
	assert.Equal(t, td, api.TrustDomain(b))
	found, _ := api.Find(b, "k")
	assert.Equal(t, k, found)

	out, err := api.Marshal(b)
	require.NoError(t, err)
	again, err := api.Parse(td, out)
	require.NoError(t, err)
	assert.True(t, api.Equal(b, again))

	// The rules are jwkutil's; the prefix is the package's.
	_, err = api.Parse(td, []byte(`{}`))
	require.EqualError(t, err, api.Name+`: unable to parse JWKS: missing "keys" member`)
	_, err = api.Parse(td, bytes.Repeat([]byte(" "), jwkutil.MaxDocumentSize+1))
	require.EqualError(t, err, fmt.Sprintf("%s: document exceeds %d bytes", api.Name, jwkutil.MaxDocumentSize))

	// Bundle rule 14: Set does not validate (as in go-spiffe), Marshal
	// refuses to publish a private key.
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	api.Set(b, map[string]crypto.PublicKey{"k": priv})
	_, err = api.Marshal(b)
	require.EqualError(t, err, api.Name+`: key "k": authority must be a public key; got *ecdsa.PrivateKey`)
}

func testLoad[T any](t *testing.T, api api[T]) {
	dir := t.TempDir()
	doc := document(t, map[string]crypto.PublicKey{"k": PublicKey(t)})
	path := filepath.Join(dir, "bundle.jwks")
	require.NoError(t, os.WriteFile(path, doc, 0o600))

	b, err := api.Load(td, path)
	require.NoError(t, err)
	assert.Equal(t, td, api.TrustDomain(b))
	assert.True(t, api.Has(b, "k"))

	_, err = api.Load(td, filepath.Join(dir, "missing"))
	require.ErrorIs(t, err, os.ErrNotExist)
	require.ErrorContains(t, err, fmt.Sprintf("%s: unable to read %s bundle: ", api.Name, api.Kind))

	bad := filepath.Join(dir, "bad")
	require.NoError(t, os.WriteFile(bad, []byte(`{}`), 0o600))
	_, err = api.Load(td, bad)
	require.EqualError(t, err, api.Name+`: unable to parse JWKS: missing "keys" member`)

	b, err = api.Read(td, bytes.NewReader(doc))
	require.NoError(t, err)
	assert.True(t, api.Has(b, "k"))

	_, err = api.Read(td, strings.NewReader(strings.Repeat(" ", jwkutil.MaxDocumentSize+1)))
	require.EqualError(t, err, fmt.Sprintf("%s: unable to read: document exceeds %d bytes", api.Name, jwkutil.MaxDocumentSize))
}

func testEqualClone[T any](t *testing.T, api api[T]) {
	k1, k2 := PublicKey(t), PublicKey(t)
	a := api.FromAuthorities(td, map[string]crypto.PublicKey{"k": k1})
	var none *T
	tests := []struct {
		name  string
		a, b  *T
		equal bool
	}{
		{"same bundle", a, a, true},
		{"clone", a, api.Clone(a), true},
		{"other key", a, api.FromAuthorities(td, map[string]crypto.PublicKey{"k": k2}), false},
		{"other trust domain", a, api.FromAuthorities(td2, map[string]crypto.PublicKey{"k": k1}), false},
		{"nil and non-nil", a, none, false},
		{"both nil", none, none, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.equal, api.Equal(tt.a, tt.b))
			assert.Equal(t, tt.equal, api.Equal(tt.b, tt.a))
		})
	}

	c := api.Clone(a)
	assert.Equal(t, td, api.TrustDomain(c))
	api.Remove(c, "k")
	assert.True(t, api.Has(a, "k"), "a clone shares no map with its origin")
}

func testSource[T any](t *testing.T, api api[T]) {
	b := api.New(td)
	got, err := api.GetForTrustDomain(b, td)
	require.NoError(t, err)
	assert.True(t, got == b, "the bundle is its own source")

	// Bundle rule 1: a bundle is authoritative for one trust domain only.
	_, err = api.GetForTrustDomain(b, td2)
	require.EqualError(t, err, fmt.Sprintf("%s: no %s bundle for trust domain %q", api.Name, api.Kind, td2))
}

func testZeroValue[T any](t *testing.T, api api[T]) {
	b := new(T) // a Bundle declared with var
	assert.True(t, api.Empty(b))
	assert.Equal(t, spiffeid.TrustDomain{}, api.TrustDomain(b))
	require.NoError(t, api.Add(b, "k", PublicKey(t)))
	assert.True(t, api.Has(b, "k"))
}

// JWK returns key as a JWK object with the key ID kid (omitted when empty) and
// the members of extra, for tests that write documents by hand.
func JWK(t testing.TB, key crypto.PublicKey, kid string, extra map[string]any) string {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: key, KeyID: kid})
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	maps.Copy(m, extra)
	b, err = json.Marshal(m)
	require.NoError(t, err)
	return string(b)
}

// PublicKey returns a new ECDSA P-256 public key.
func PublicKey(t testing.TB) crypto.PublicKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k.Public()
}
