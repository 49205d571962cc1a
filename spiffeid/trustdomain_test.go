package spiffeid_test

import (
	"strings"
	"testing"

	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTrustDomainFromString(t *testing.T) {
	// The measured go-spiffe table of shared/spec/spiffe-id.md, with our verdict
	// on the 256-byte name (ID rule 8).
	tests := []struct {
		in   string
		want string // "" means an error
		rule string
	}{
		{"example.org", "example.org", "bare name"},
		{"spiffe://example.org", "example.org", "trust domain ID"},
		{"spiffe://example.org/foo", "example.org", "ID reduced to its trust domain"},
		{"Example.org", "", "ID rule 4"},
		{"example.org:80", "", "ID rule 3"},
		{"example.org/foo", "", "ID rule 4"},
		{"", "", "ID rule 2"},
		{"spiffe://example.org/", "", "ID rule 14"},
		{"spiffe:/example.org", "", "ID rule 1"},
		{strings.Repeat("a", 255), strings.Repeat("a", 255), "ID rule 8: at the limit"},
		{strings.Repeat("a", 256), "", "ID rule 8: over the limit (stricter than go-spiffe)"},
		{"192.168.0.1", "192.168.0.1", "ID rule 7"},
		{"example.org.", "example.org.", "ID rule 7: trailing dot kept"},
		{"xn--bcher-kva.example", "xn--bcher-kva.example", "ID rule 4: punycode is plain ASCII"},
		{"exämple.org", "", "ID rule 4: no IDN"},
		{"ex%61mple.org", "", "ID rule 6"},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			td, err := spiffeid.TrustDomainFromString(tt.in)
			if tt.want == "" {
				require.Error(t, err, "%q must be rejected", tt.in)
				assert.True(t, td.IsZero())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, td.Name())
			assert.Equal(t, tt.want, td.String())
			assert.Equal(t, "spiffe://"+tt.want, td.IDString())
			assert.Equal(t, "spiffe://"+tt.want, td.ID().String())
			assert.Equal(t, td, td.ID().TrustDomain())
		})
	}
	_, err := spiffeid.TrustDomainFromString("")
	require.EqualError(t, err, "spiffeid: trust domain is missing")
}

func TestTrustDomainZero(t *testing.T) {
	var td spiffeid.TrustDomain
	assert.True(t, td.IsZero())
	assert.True(t, td.ID().IsZero())
	assert.Equal(t, "", td.IDString())
	text, err := td.MarshalText()
	require.NoError(t, err)
	assert.Nil(t, text)
}

func TestTrustDomainCompare(t *testing.T) {
	a := spiffeid.RequireTrustDomainFromString("a.org")
	b := spiffeid.RequireTrustDomainFromString("b.org")
	assert.Equal(t, -1, a.Compare(b))
	assert.Equal(t, 1, b.Compare(a))
	assert.Equal(t, 0, a.Compare(spiffeid.RequireTrustDomainFromString("a.org")))
}

func TestTrustDomainText(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	text, err := td.MarshalText()
	require.NoError(t, err)
	assert.Equal(t, "example.org", string(text))

	var got spiffeid.TrustDomain
	require.NoError(t, got.UnmarshalText(text))
	assert.Equal(t, td, got)
	require.NoError(t, got.UnmarshalText([]byte("spiffe://example.org/w")))
	assert.Equal(t, td, got)
	require.NoError(t, got.UnmarshalText(nil))
	assert.True(t, got.IsZero())

	got = td
	require.Error(t, got.UnmarshalText([]byte("EXAMPLE")))
	assert.Equal(t, td, got, "a failed unmarshal leaves the value alone")
}
