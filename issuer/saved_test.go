package issuer_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// downSigner signs nothing: its server is away.
type downSigner struct{}

func (downSigner) SignX509SVIDs(context.Context, []issuer.X509SVIDRequest) ([]issuer.X509SVIDResult, error) {
	return nil, errors.New("the server is away")
}

func (downSigner) SignJWTSVID(context.Context, issuer.JWTSVIDRequest) (string, error) {
	return "", errors.New("the server is away")
}

// savedFrom runs an issuer with n entries of ours pre-minted, and returns
// it with what X509SVIDs returns once every SVID is there.
func savedFrom(t testing.TB, n int) (*env, []issuer.SavedX509SVID) {
	t.Helper()
	e := newEnv(t, issuer.Config{PreMint: true})
	for k := range n {
		e.register(t, entryFor(k))
	}
	var saved []issuer.SavedX509SVID
	require.Eventually(t, func() bool {
		saved, _ = e.iss.X509SVIDs()
		return len(saved) == n
	}, 30*time.Second, 10*time.Millisecond)
	return e, saved
}

// restoredIssuer is a new issuer over the registry and CA of from, whose
// Signer is away, not running.
func restoredIssuer(t testing.TB, from *env, cfg issuer.Config) *env {
	t.Helper()
	cfg.Registry = from.store.(*memstore.Store)
	cfg.Trust = issuer.TrustFromAuthority(from.ca)
	cfg.Signer = downSigner{}
	return newIdleEnv(t, cfg)
}

func serials(t testing.TB, e *env) map[spiffeid.ID]string {
	t.Helper()
	sub, err := e.iss.Subscribe(t.Context(), self())
	require.NoError(t, err)
	defer sub.Close()
	out := map[spiffeid.ID]string{}
	for _, s := range sub.Snapshot().RawX509SVIDs {
		out[s.ID] = rawLeaf(t, s).SerialNumber.Text(16)
	}
	return out
}

// Property: an issuer given the SVIDs another held for the same entries
// serves them as they are, with no Signer.
func TestRestoreServesSavedSVIDs(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // registered first, so it runs after every other cleanup
	from, saved := savedFrom(t, 3)
	want := serials(t, from)
	to := restoredIssuer(t, from, issuer.Config{PreMint: true})
	before := to.iss.X509SVIDsVersion()
	res, err := to.iss.Restore(saved)
	require.NoError(t, err)
	assert.Equal(t, issuer.RestoreResult{Restored: 3}, res)
	assert.NotEqual(t, before, to.iss.X509SVIDsVersion())
	assert.Equal(t, want, serials(t, to))
	again, _ := to.iss.X509SVIDs()
	assert.ElementsMatch(t, saved, again)
	assert.Len(t, to.iss.Entries(), 3)

	// Given again, they are taken once: the issuer holds an SVID for each.
	res, err = to.iss.Restore(saved)
	require.NoError(t, err)
	assert.Equal(t, issuer.RestoreResult{Stale: 3}, res)
}

// Property: an SVID of an entry that is gone or changed since, or that has
// expired, is left out and counted.
func TestRestoreLeavesOutStaleAndExpiredSVIDs(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	from, saved := savedFrom(t, 3)
	entries, _, err := from.store.List(t.Context(), registry.Filter{}, registry.Page{})
	require.NoError(t, err)
	slices.SortFunc(entries, func(a, b registry.Entry) int { return strings.Compare(a.SPIFFEID.String(), b.SPIFFEID.String()) })
	_, err = from.store.Delete(t.Context(), entries[0].ID, entries[0].Revision)
	require.NoError(t, err)
	changed := entries[1]
	changed.Hint = "changed"
	_, err = from.store.Update(t.Context(), changed)
	require.NoError(t, err)

	to := restoredIssuer(t, from, issuer.Config{})
	res, err := to.iss.Restore(saved)
	require.NoError(t, err)
	assert.Equal(t, issuer.RestoreResult{Restored: 1, Stale: 2}, res)
	got, _ := to.iss.X509SVIDs()
	require.Len(t, got, 1)
	assert.Equal(t, entries[2].ID, got[0].EntryID)

	later := restoredIssuer(t, from, issuer.Config{Now: func() time.Time { return time.Now().Add(2 * time.Hour) }})
	res, err = later.iss.Restore(saved)
	require.NoError(t, err)
	assert.Equal(t, issuer.RestoreResult{Expired: 1, Stale: 2}, res)
	got, _ = later.iss.X509SVIDs()
	assert.Empty(t, got)
}

// Property: SVIDs that do not check out are refused all together: whatever
// held them cannot be trusted. No error shows the key. Restore checks the
// first SVID of each chain in full (s[0] below), and that every other has
// a leaf, a key and dates.
func TestRestoreRefusesSVIDsThatDoNotCheckOut(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	from, saved := savedFrom(t, 2)
	edit := func(f func(s []issuer.SavedX509SVID)) []issuer.SavedX509SVID {
		out := slices.Clone(saved)
		for k := range out {
			out[k].Certificates = slices.Clone(out[k].Certificates)
		}
		f(out)
		return out
	}
	for _, tc := range []struct {
		name  string
		svids []issuer.SavedX509SVID
		want  string
	}{
		{"keys swapped", edit(func(s []issuer.SavedX509SVID) { s[0].PrivateKey, s[1].PrivateKey = s[1].PrivateKey, s[0].PrivateKey }),
			"a leaf for another key"},
		{"leaves swapped", edit(func(s []issuer.SavedX509SVID) {
			s[0].Certificates[0], s[1].Certificates[0] = s[1].Certificates[0], s[0].Certificates[0]
		}),
			"the signer returned a leaf for"},
		{"a key that does not parse", edit(func(s []issuer.SavedX509SVID) { s[0].PrivateKey = []byte("secret") }),
			"the key does not parse"},
		{"a key that cannot sign", edit(func(s []issuer.SavedX509SVID) { s[0].PrivateKey = x25519PKCS8(t) }),
			"the key cannot sign"},
		{"a certificate that does not parse", edit(func(s []issuer.SavedX509SVID) { s[0].Certificates[0] = []byte("x") }),
			"certificate 0"},
		{"the leaf alone", edit(func(s []issuer.SavedX509SVID) { s[1].Certificates = s[1].Certificates[:1] }),
			"it lacks a certificate, its key or its dates"},
		{"an empty certificate", edit(func(s []issuer.SavedX509SVID) { s[1].Certificates[1] = nil }),
			"it lacks a certificate, its key or its dates"},
		{"no key", edit(func(s []issuer.SavedX509SVID) { s[1].PrivateKey = nil }),
			"it lacks a certificate, its key or its dates"},
		{"no dates", edit(func(s []issuer.SavedX509SVID) { s[1].NotBefore = time.Time{} }),
			"it lacks a certificate, its key or its dates"},
		{"dates the wrong way round", edit(func(s []issuer.SavedX509SVID) { s[1].NotBefore = s[1].NotAfter }),
			"it lacks a certificate, its key or its dates"},
		{"dates that are not the leaf's", edit(func(s []issuer.SavedX509SVID) { s[0].NotAfter = s[0].NotAfter.Add(time.Hour) }),
			"its dates are not the leaf's"},
		{"the leaf as its own CA", edit(func(s []issuer.SavedX509SVID) { s[0].Certificates[1] = s[0].Certificates[0] }),
			"did not sign"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to := restoredIssuer(t, from, issuer.Config{})
			_, err := to.iss.Restore(tc.svids)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), string(saved[0].PrivateKey))
			got, _ := to.iss.X509SVIDs()
			assert.Empty(t, got, "nothing restored")
		})
	}

	// A chain the issuer's bundle does not verify: another CA's.
	other := newIdleEnv(t, issuer.Config{Registry: from.store.(*memstore.Store)})
	_, err := other.iss.Restore(saved)
	assert.ErrorContains(t, err, "its chain does not verify with the bundle")
	got, _ := other.iss.X509SVIDs()
	assert.Empty(t, got)
}

// BenchmarkRestore measures what an agent with 10,000 entries spends
// restoring their saved SVIDs: parsing and checking each, the one
// verification of their CA with the bundle.
func BenchmarkRestore(b *testing.B) {
	const n = 10_000
	store := memstore.New(memstore.Config{})
	for k := range n {
		e := entryFor(k)
		e.ParentID, e.Selectors = parentID, []attest.Selector{{Type: "unix", Value: fmt.Sprintf("uid:%d", k)}}
		_, err := store.Create(b.Context(), e)
		require.NoError(b, err)
	}
	from := newEnv(b, issuer.Config{PreMint: true, Registry: store})
	var saved []issuer.SavedX509SVID
	require.Eventually(b, func() bool {
		saved, _ = from.iss.X509SVIDs()
		return len(saved) == n
	}, 5*time.Minute, 100*time.Millisecond)
	for b.Loop() {
		b.StopTimer()
		to := restoredIssuer(b, from, issuer.Config{})
		b.StartTimer()
		res, err := to.iss.Restore(saved)
		require.NoError(b, err)
		require.Equal(b, n, res.Restored)
	}
}

// x25519PKCS8 is the PKCS#8 of a key that cannot sign.
func x25519PKCS8(t testing.TB) []byte {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	return der
}
