package x509store

import (
	"crypto"
	"crypto/x509"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// svid returns an SVID whose chain holds the CA certificates cas, each in
// a buffer of its own.
func svid(cas ...string) *SVID {
	chain := [][]byte{[]byte("leaf")}
	for _, c := range cas {
		chain = append(chain, []byte(c))
	}
	return &SVID{SVID: &endpoint.RawX509SVID{Certificates: chain}}
}

// The SVIDs a CA signed share one copy of it, kept while one holds it;
// every change counts.
func TestStoreSharesTheCACopies(t *testing.T) {
	var s Store
	require.Nil(t, s.Get("a"))
	require.Zero(t, s.Len())
	s.Drop("a") // nothing to drop
	require.Zero(t, s.Version())

	a, b := svid("ca1", "root"), svid("ca1", "root")
	s.Set("a", a)
	s.Set("b", b)
	require.Same(t, a, s.Get("a"))
	require.Equal(t, 2, s.Len())
	require.Equal(t, map[string]int{"ca1": 2, "root": 2}, s.CARefs())
	require.Same(t, &a.SVID.Certificates[1][0], &b.SVID.Certificates[1][0], "one copy of ca1")
	require.EqualValues(t, 2, s.Version())

	// A replacement signed by another CA releases the old one's copy.
	s.Set("a", svid("ca2", "root"))
	require.Equal(t, map[string]int{"ca1": 1, "ca2": 1, "root": 2}, s.CARefs())
	s.Drop("b")
	require.Equal(t, map[string]int{"ca2": 1, "root": 1}, s.CARefs())
	require.Nil(t, s.Get("b"))
	require.EqualValues(t, 5, s.Version()) // set, set, replaced (drop and set), dropped
}

func TestStoreAll(t *testing.T) {
	var s Store
	for _, id := range []string{"a", "b", "c"} {
		s.Set(id, svid("ca"))
	}
	// The loop may drop what it is given.
	for id := range s.All() {
		if id != "b" {
			s.Drop(id)
		}
	}
	require.Equal(t, []string{"b"}, slices.Collect(maps.Keys(maps.Collect(s.All()))))
	for range s.All() {
		break // stopping early is fine
	}
}

func TestUsable(t *testing.T) {
	now := time.Now()
	e := registry.Entry{ID: "e", Revision: 2}
	m := &SVID{Revision: 2, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour), MintedAt: now.Add(-time.Minute)}
	require.True(t, m.Usable(e, now))
	require.False(t, (*SVID)(nil).Usable(e, now), "none")
	require.False(t, m.Usable(registry.Entry{ID: "e", Revision: 3}, now), "another revision")
	require.False(t, m.Usable(e, m.NotAfter), "expired")

	// Minted in what is now the future, and not valid yet: the clock was
	// stepped back.
	future := &SVID{Revision: 2, NotBefore: now.Add(time.Minute), NotAfter: now.Add(time.Hour), MintedAt: now.Add(time.Minute)}
	require.False(t, future.Usable(e, now))
	// Not valid yet only because the signer's clock is ahead: still usable.
	ahead := &SVID{Revision: 2, NotBefore: now.Add(time.Minute), NotAfter: now.Add(time.Hour), MintedAt: now.Add(-time.Second)}
	require.True(t, ahead.Usable(e, now))
}

// opaque is a signer whose key cannot be encoded, as a key of a hardware
// module's.
type opaque struct{ crypto.Signer }

// Raw keeps a copy of the leaf's DER, the CA certificates' as they are
// (Set replaces them with the store's copy), and the key as PKCS#8.
func TestRaw(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	root := testca.New(t, td)
	id := spiffeid.RequireFromPath(td, "/web")
	certs, key := root.NewLeaf(t, id)
	certs = append(certs, root.Cert())
	e := registry.Entry{ID: "web", SPIFFEID: id, Hint: "h"}
	raw, err := Raw(e, key, certs)
	require.NoError(t, err)
	require.Equal(t, id, raw.ID)
	require.Equal(t, "h", raw.Hint)
	require.Equal(t, [][]byte{certs[0].Raw, root.Cert().Raw}, raw.Certificates)
	require.NotSame(t, &certs[0].Raw[0], &raw.Certificates[0][0], "the leaf is copied")
	parsed, err := x509.ParsePKCS8PrivateKey(raw.PrivateKey)
	require.NoError(t, err)
	require.True(t, parsed.(crypto.Signer).Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()))

	_, err = Raw(e, opaque{key}, certs)
	require.ErrorContains(t, err, "encoding the key")
}
