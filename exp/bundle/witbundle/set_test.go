package witbundle_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestSet(t *testing.T) {
	b1 := witbundle.New(td)
	b2 := witbundle.New(td2)
	s := witbundle.NewSet(b1, nil)
	assert.Equal(t, 1, s.Len())
	assert.True(t, s.Has(td))
	assert.False(t, s.Has(td2))

	s.Add(b2)
	s.Add(nil)
	assert.Equal(t, 2, s.Len())
	// Sorted by trust domain name: example.com before example.org.
	assert.Equal(t, []*witbundle.Bundle{b2, b1}, s.Bundles())

	got, ok := s.Get(td2)
	assert.True(t, ok)
	assert.Same(t, b2, got)

	// Bundle rule 3: a new bundle replaces the old one of its trust domain.
	b1b := witbundle.New(td)
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
	b := witbundle.New(td)
	var source witbundle.Source = witbundle.NewSet(b)

	got, err := source.GetWITBundleForTrustDomain(td)
	require.NoError(t, err)
	assert.Same(t, b, got)

	_, err = source.GetWITBundleForTrustDomain(td2)
	require.EqualError(t, err, `witbundle: no WIT bundle for trust domain "example.com"`)
}

func TestSetZeroValue(t *testing.T) {
	var s witbundle.Set
	assert.Equal(t, 0, s.Len())
	assert.Empty(t, s.Bundles())
	s.Add(witbundle.New(td))
	assert.True(t, s.Has(td))
}

func TestSetConcurrentUse(t *testing.T) {
	s := witbundle.NewSet()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			d := spiffeid.RequireTrustDomainFromString([]string{"a.test", "b.test", "c.test", "d.test"}[i])
			for range 100 {
				s.Add(witbundle.New(d))
				_, _ = s.Get(td)
				_ = s.Bundles()
				_, _ = s.GetWITBundleForTrustDomain(d)
				_ = s.Has(d)
				_ = s.Len()
				s.Remove(d)
			}
		})
	}
	wg.Wait()
}
