package jwtbundle_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
)

// The set mechanism is tested in internal/bundleset; this checks that every
// method reaches it and the Source method's error.
func TestSet(t *testing.T) {
	b1, b2 := jwtbundle.New(td), jwtbundle.New(td2)
	s := jwtbundle.NewSet(b1, nil)
	assert.Equal(t, 1, s.Len())

	s.Add(b2)
	assert.True(t, s.Has(td2))
	assert.Equal(t, []*jwtbundle.Bundle{b2, b1}, s.Bundles())

	// Bundle rule 3: a new bundle replaces the old one of its trust domain.
	b1b := jwtbundle.New(td)
	s.Add(b1b)
	got, ok := s.Get(td)
	require.True(t, ok)
	assert.Same(t, b1b, got)

	s.Remove(td2)
	assert.False(t, s.Has(td2))

	var source jwtbundle.Source = s
	got, err := source.GetJWTBundleForTrustDomain(td)
	require.NoError(t, err)
	assert.Same(t, b1b, got)
	_, err = source.GetJWTBundleForTrustDomain(td2)
	require.EqualError(t, err, `jwtbundle: no JWT bundle for trust domain "example.com"`)

	// The zero Set is usable.
	var zero jwtbundle.Set
	zero.Add(b1)
	assert.True(t, zero.Has(td))
}
