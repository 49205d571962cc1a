package restore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"slices"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	td    = spiffeid.RequireTrustDomainFromString("example.org")
	webID = spiffeid.RequireFromPath(td, "/web")
	dbID  = spiffeid.RequireFromPath(td, "/db")
)

func entries(es ...registry.Entry) map[string]registry.Entry {
	m := make(map[string]registry.Entry)
	for _, e := range es {
		m[e.ID] = e
	}
	return m
}

// savedX509 returns an X509-SVID of root for id, as saved.
func savedX509(t *testing.T, root *testca.CA, entry string, id spiffeid.ID) *X509SVID {
	t.Helper()
	certs, key := root.NewLeaf(t, id)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return &X509SVID{EntryID: entry, Revision: 1, Certificates: [][]byte{certs[0].Raw, root.Cert().Raw}, PrivateKey: pkcs8,
		NotBefore: certs[0].NotBefore, NotAfter: certs[0].NotAfter, MintedAt: time.Now().Add(-time.Minute)}
}

func TestX509(t *testing.T) {
	root, other := testca.New(t, td), testca.New(t, td)
	web, db := registry.Entry{ID: "web", SPIFFEID: webID, Revision: 1, Hint: "h"}, registry.Entry{ID: "db", SPIFFEID: dbID, Revision: 1}
	v := View{
		Entries: entries(web, db), Now: time.Now(),
		Bundle:  spiffebundle.FromX509Authorities(td, []*x509.Certificate{root.Cert(), other.Cert()}),
		Tainted: map[string]bool{string(other.Cert().Raw): true},
	}
	good, good2 := savedX509(t, root, "web", webID), savedX509(t, root, "db", dbID)
	stale := savedX509(t, root, "gone", webID)
	oldRev := savedX509(t, root, "web", webID)
	oldRev.Revision = 0
	expired := savedX509(t, root, "web", webID)
	expired.NotAfter = v.Now.Add(-time.Second)
	expired.NotBefore = v.Now.Add(-time.Hour)
	tainted := savedX509(t, other, "db", dbID)
	kept, res, err := X509s(v, slices.Values([]*X509SVID{good, good2, stale, oldRev, expired, tainted}))
	require.NoError(t, err)
	require.Equal(t, Result{Stale: 2, Expired: 1, Tainted: 1}, res)
	require.Len(t, kept, 2)
	require.Equal(t, "web", kept[0].ID)
	m := kept[0].SVID
	require.Equal(t, good.Certificates, m.SVID.Certificates)
	require.Equal(t, webID, m.SVID.ID)
	require.Equal(t, "h", m.SVID.Hint)
	require.Equal(t, good.NotAfter, m.NotAfter)
	// Due at half its life from when it was minted.
	require.Equal(t, good.MintedAt.Add(good.NotAfter.Sub(good.MintedAt)/2), m.RefreshAt)

	// One that fails a check fails the call.
	for name, s := range map[string]*X509SVID{
		"no CA":     {EntryID: "web", Revision: 1, Certificates: good.Certificates[:1], PrivateKey: good.PrivateKey, NotBefore: good.NotBefore, NotAfter: good.NotAfter},
		"no key":    {EntryID: "web", Revision: 1, Certificates: good.Certificates, NotBefore: good.NotBefore, NotAfter: good.NotAfter},
		"no dates":  {EntryID: "web", Revision: 1, Certificates: good.Certificates, PrivateKey: good.PrivateKey},
		"another's": {EntryID: "db", Revision: 1, Certificates: good.Certificates, PrivateKey: good.PrivateKey, NotBefore: good.NotBefore, NotAfter: good.NotAfter},
	} {
		_, _, err := X509s(v, slices.Values([]*X509SVID{s}))
		require.ErrorContains(t, err, "issuer: restoring the X509-SVID of entry", name)
	}
	// The chain above the leaf is checked once: a second SVID of the same
	// CA is checked for its parts only, and taken.
	kept, _, err = X509s(v, slices.Values([]*X509SVID{good, good2}))
	require.NoError(t, err)
	require.Len(t, kept, 2)
	// Stopping early is fine.
	for range slices.Values(kept) {
		break
	}
}

func TestWITs(t *testing.T) {
	now := time.Now()
	newAuthority := func(kid string) *ca.WITAuthority {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		a, err := ca.NewWITAuthority(ca.WITAuthorityConfig{Signer: k, KeyID: kid, TrustDomain: td, NotAfter: now.Add(2 * time.Hour)})
		require.NoError(t, err)
		return a
	}
	active, taintedKey, revoked := newAuthority("k1"), newAuthority("k2"), newAuthority("k3")
	bundle := spiffebundle.New(td)
	require.NoError(t, bundle.AddWITAuthority("k1", active.PublicKey()))
	require.NoError(t, bundle.AddWITAuthority("k2", taintedKey.PublicKey()))
	web := registry.Entry{ID: "web", SPIFFEID: webID, Revision: 1}
	v := View{Entries: entries(web), Now: now, Bundle: bundle, TaintedWIT: map[string]bool{"k2": true}}
	saved := func(a *ca.WITAuthority, ttl time.Duration) *WITSVID {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		token, err := a.SignWITSVID(t.Context(), ca.WITSVIDParams{ID: webID, PublicKey: key.Public(), KeyAlgorithm: "ES256", TTL: ttl})
		require.NoError(t, err)
		jwk, err := jose.JSONWebKey{Key: key, Algorithm: "ES256"}.MarshalJSON()
		require.NoError(t, err)
		return &WITSVID{EntryID: "web", Revision: 1, Token: token, PrivateKey: jwk, MintedAt: now.Add(-time.Minute)}
	}
	good := saved(active, time.Hour)
	stale := saved(active, time.Hour)
	stale.Revision = 2
	expired := saved(active, time.Second)
	vLater := v
	vLater.Now = now.Add(time.Minute)
	kept, res, err := WITs(vLater, slices.Values([]*WITSVID{good, stale, expired, saved(taintedKey, time.Hour), saved(revoked, time.Hour)}), 16<<10)
	require.NoError(t, err)
	require.Equal(t, Result{Stale: 1, Expired: 1, Tainted: 1, Untrusted: 1}, res)
	require.Len(t, kept, 1)
	w := kept[0].SVID
	require.Equal(t, "k1", w.Kid)
	require.Equal(t, good.Token, w.Token)
	require.Equal(t, string(good.PrivateKey), w.Key)
	require.Equal(t, int64(1), w.Revision)

	// A time of minting in the future counts from now.
	future := saved(active, time.Hour)
	future.MintedAt = now.Add(time.Hour)
	kept, _, err = WITs(v, slices.Values([]*WITSVID{future}), 16<<10)
	require.NoError(t, err)
	require.Equal(t, now.Add(kept[0].SVID.Expiry.Sub(now)/2), kept[0].SVID.RefreshAt)

	var priv jose.JSONWebKey
	require.NoError(t, priv.UnmarshalJSON(good.PrivateKey))
	pub, err := priv.Public().MarshalJSON()
	require.NoError(t, err)
	forged := *good
	forged.Token = good.Token[:len(good.Token)-4] + "AAAA"
	for name, tc := range map[string]struct {
		s    *WITSVID
		want string
	}{
		"too long":        {&WITSVID{EntryID: "web", Revision: 1, Token: string(make([]byte, 100))}, "longer than 64 bytes"},
		"a bad key":       {&WITSVID{EntryID: "web", Revision: 1, Token: good.Token, PrivateKey: []byte("secret")}, "its key does not parse"},
		"a public key":    {&WITSVID{EntryID: "web", Revision: 1, Token: good.Token, PrivateKey: pub}, "its key is no private key"},
		"another's key":   {&WITSVID{EntryID: "web", Revision: 1, Token: saved(active, time.Hour).Token, PrivateKey: good.PrivateKey}, "binds another key"},
		"a bad signature": {&forged, "its signature does not verify"},
	} {
		_, _, err := WITs(v, slices.Values([]*WITSVID{tc.s}), 64)
		if name != "too long" {
			_, _, err = WITs(v, slices.Values([]*WITSVID{tc.s}), 16<<10)
		}
		require.ErrorContains(t, err, tc.want, name)
		require.NotContains(t, err.Error(), "secret", name)
	}
}
