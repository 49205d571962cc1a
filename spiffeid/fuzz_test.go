package spiffeid_test

import (
	"net/url"
	"testing"

	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/stretchr/testify/require"
)

// FuzzFromString checks that parsing never panics, that an accepted ID is kept
// byte for byte (ID rule 18), and that every way of rebuilding it agrees.
func FuzzFromString(f *testing.F) {
	f.Add("spiffe://example.org/workload")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := spiffeid.FromString(s)
		if err != nil {
			require.True(t, id.IsZero())
			return
		}
		require.Equal(t, s, id.String())

		again, err := spiffeid.FromPath(id.TrustDomain(), id.Path())
		require.NoError(t, err)
		require.Equal(t, id, again)

		fromURI, err := spiffeid.FromURI(id.URL())
		require.NoError(t, err)
		require.Equal(t, id, fromURI)

		td, err := spiffeid.TrustDomainFromString(id.TrustDomain().Name())
		require.NoError(t, err)
		require.Equal(t, id.TrustDomain(), td)

		parsed, err := url.Parse(s)
		require.NoError(t, err, "a valid SPIFFE ID is a valid URI")
		require.Equal(t, "spiffe", parsed.Scheme)
		require.Equal(t, id.TrustDomain().Name(), parsed.Host)
		require.Equal(t, id.Path(), parsed.Path)
	})
}

// FuzzTrustDomainFromString checks that trust domain parsing never panics and
// that an accepted name round-trips through its ID.
func FuzzTrustDomainFromString(f *testing.F) {
	f.Add("example.org")
	f.Fuzz(func(t *testing.T, s string) {
		td, err := spiffeid.TrustDomainFromString(s)
		if err != nil {
			require.True(t, td.IsZero())
			return
		}
		require.LessOrEqual(t, len(td.Name()), 255) // ID rule 8
		again, err := spiffeid.FromString(td.IDString())
		require.NoError(t, err)
		require.Equal(t, td, again.TrustDomain())
	})
}
