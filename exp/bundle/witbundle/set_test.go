package witbundle_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
)

// The set mechanism is tested in internal/bundleset; this checks that every
// method reaches it and the Source method's error.
func TestSet(t *testing.T) {
	org, com := witbundle.New(td), witbundle.New(td2)
	var zero witbundle.Set // the zero Set is usable
	zero.Add(org)
	zero.Add(nil)
	assert.Equal(t, 1, zero.Len())

	s := witbundle.NewSet(com, org)
	assert.Equal(t, []*witbundle.Bundle{com, org}, s.Bundles())
	assert.True(t, s.Has(td2))

	// Bundle rule 3: the last bundle of a trust domain wins.
	newer := witbundle.New(td2)
	s.Add(newer)
	got, ok := s.Get(td2)
	require.True(t, ok)
	assert.Same(t, newer, got)

	var source witbundle.Source = s
	got, err := source.GetWITBundleForTrustDomain(td)
	require.NoError(t, err)
	assert.Same(t, org, got)

	s.Remove(td)
	assert.False(t, s.Has(td))
	_, err = source.GetWITBundleForTrustDomain(td)
	require.EqualError(t, err, `witbundle: no WIT bundle for trust domain "example.org"`)
}
