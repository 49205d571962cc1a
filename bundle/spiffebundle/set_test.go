package spiffebundle_test

import (
	"crypto"
	"crypto/x509"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestSet(t *testing.T) {
	b1 := spiffebundle.New(td)
	b2 := spiffebundle.New(td2)
	s := spiffebundle.NewSet(b1, nil)
	assert.Equal(t, 1, s.Len())
	assert.True(t, s.Has(td))

	s.Add(b2)
	s.Add(nil)
	assert.Equal(t, []*spiffebundle.Bundle{b2, b1}, s.Bundles())

	// Bundle rule 3: the newest bundle replaces the old one.
	b1b := spiffebundle.New(td)
	s.Add(b1b)
	got, ok := s.Get(td)
	require.True(t, ok)
	assert.Same(t, b1b, got)

	s.Remove(td2)
	assert.False(t, s.Has(td2))
	got, ok = s.Get(td2)
	assert.False(t, ok)
	assert.Nil(t, got)

	var zero spiffebundle.Set
	zero.Add(b1)
	assert.Equal(t, 1, zero.Len())
}

func TestSetSources(t *testing.T) {
	root := newRoot(t)
	k := ecKey(t)
	b := spiffebundle.FromX509Authorities(td, []*x509.Certificate{root})
	require.NoError(t, b.AddJWTAuthority("j", k.Public()))
	require.NoError(t, b.AddWITAuthority("w", k.Public()))
	set := spiffebundle.NewSet(b)

	var (
		source     spiffebundle.Source = set
		x509Source x509bundle.Source   = set
		jwtSource  jwtbundle.Source    = set
		witSource  witbundle.Source    = set
	)
	got, err := source.GetBundleForTrustDomain(td)
	require.NoError(t, err)
	assert.Same(t, b, got)

	xb, err := x509Source.GetX509BundleForTrustDomain(td)
	require.NoError(t, err)
	assert.Equal(t, []*x509.Certificate{root}, xb.X509Authorities())
	jb, err := jwtSource.GetJWTBundleForTrustDomain(td)
	require.NoError(t, err)
	assert.Equal(t, map[string]crypto.PublicKey{"j": k.Public()}, jb.JWTAuthorities())
	wb, err := witSource.GetWITBundleForTrustDomain(td)
	require.NoError(t, err)
	assert.Equal(t, map[string]crypto.PublicKey{"w": k.Public()}, wb.WITAuthorities())

	_, err = source.GetBundleForTrustDomain(td2)
	assert.EqualError(t, err, `spiffebundle: no SPIFFE bundle for trust domain "example.com"`)
	_, err = x509Source.GetX509BundleForTrustDomain(td2)
	assert.EqualError(t, err, `spiffebundle: no X.509 bundle for trust domain "example.com"`)
	_, err = jwtSource.GetJWTBundleForTrustDomain(td2)
	assert.EqualError(t, err, `spiffebundle: no JWT bundle for trust domain "example.com"`)
	_, err = witSource.GetWITBundleForTrustDomain(td2)
	assert.EqualError(t, err, `spiffebundle: no WIT bundle for trust domain "example.com"`)
}

func TestSetConcurrentUse(t *testing.T) {
	s := spiffebundle.NewSet()
	var wg sync.WaitGroup
	for _, name := range []string{"a.test", "b.test", "c.test"} {
		wg.Go(func() {
			d := spiffeid.RequireTrustDomainFromString(name)
			for range 100 {
				s.Add(spiffebundle.New(d))
				_ = s.Bundles()
				_, _ = s.GetX509BundleForTrustDomain(d)
				_, _ = s.GetJWTBundleForTrustDomain(d)
				_, _ = s.GetWITBundleForTrustDomain(d)
				_ = s.Len()
				s.Remove(d)
			}
		})
	}
	wg.Wait()
}
