package x509bundle_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
)

// The set mechanism is tested in internal/bundleset; this checks that every
// method reaches it and the Source method's error.
func TestSet(t *testing.T) {
	cases := map[string]*x509bundle.Set{
		"NewSet":     x509bundle.NewSet(x509bundle.New(td2), nil),
		"zero value": new(x509bundle.Set),
	}
	for name, s := range cases {
		t.Run(name, func(t *testing.T) {
			b := x509bundle.New(td)
			s.Add(b)
			s.Add(x509bundle.New(td2))
			assert.Equal(t, 2, s.Len())
			assert.True(t, s.Has(td))
			// Sorted by trust domain name: example.com before example.org.
			bundles := s.Bundles()
			require.Len(t, bundles, 2)
			assert.Same(t, b, bundles[1])

			// Bundle rule 3: a new bundle replaces the old one of its trust domain.
			newer := x509bundle.FromX509Authorities(td, newRoots(t, 1))
			s.Add(newer)
			got, ok := s.Get(td)
			require.True(t, ok)
			assert.Same(t, newer, got)

			var source x509bundle.Source = s
			got, err := source.GetX509BundleForTrustDomain(td)
			require.NoError(t, err)
			assert.Same(t, newer, got)

			s.Remove(td)
			got, ok = s.Get(td)
			assert.False(t, ok)
			assert.Nil(t, got)
			_, err = source.GetX509BundleForTrustDomain(td)
			require.EqualError(t, err, `x509bundle: no X.509 bundle for trust domain "example.org"`)
		})
	}
}
