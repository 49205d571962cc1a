package jwtbundle_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestSet(t *testing.T) {
	b1 := jwtbundle.New(td)
	b2 := jwtbundle.New(td2)
	s := jwtbundle.NewSet(b1, nil)
	assert.Equal(t, 1, s.Len())
	assert.True(t, s.Has(td))
	assert.False(t, s.Has(td2))

	s.Add(b2)
	s.Add(nil)
	assert.Equal(t, 2, s.Len())
	// Sorted by trust domain name: example.com before example.org.
	assert.Equal(t, []*jwtbundle.Bundle{b2, b1}, s.Bundles())

	got, ok := s.Get(td2)
	assert.True(t, ok)
	assert.Same(t, b2, got)

	// Bundle rule 3: a new bundle replaces the old one of its trust domain.
	b1b := jwtbundle.New(td)
	s.Add(b1b)
	got, ok = s.Get(td)
	require.True(t, ok)
	assert.Same(t, b1b, got)

	s.Remove(td2)
	s.Remove(td2)
	got, ok = s.Get(td2)
	assert.False(t, ok)
	assert.Nil(t, got)
	assert.Equal(t, 1, s.Len())
}

func TestSetSource(t *testing.T) {
	b := jwtbundle.New(td)
	var source jwtbundle.Source = jwtbundle.NewSet(b)

	got, err := source.GetJWTBundleForTrustDomain(td)
	require.NoError(t, err)
	assert.Same(t, b, got)

	_, err = source.GetJWTBundleForTrustDomain(td2)
	require.EqualError(t, err, `jwtbundle: no JWT bundle for trust domain "example.com"`)
}

func TestSetZeroValue(t *testing.T) {
	var s jwtbundle.Set
	assert.Equal(t, 0, s.Len())
	assert.Empty(t, s.Bundles())
	s.Add(jwtbundle.New(td))
	assert.True(t, s.Has(td))
}

func TestSetConcurrentUse(t *testing.T) {
	s := jwtbundle.NewSet()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			d := spiffeid.RequireTrustDomainFromString([]string{"a.test", "b.test", "c.test", "d.test"}[i])
			for range 100 {
				s.Add(jwtbundle.New(d))
				_, _ = s.Get(td)
				_ = s.Bundles()
				_, _ = s.GetJWTBundleForTrustDomain(d)
				_ = s.Has(d)
				_ = s.Len()
				s.Remove(d)
			}
		})
	}
	wg.Wait()
}
