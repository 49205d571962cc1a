package wire_test

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin/internal/wire"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

func TestEntryRoundTrip(t *testing.T) {
	e := registry.Entry{
		ID:            "0123456789abcdef0123456789abcdef",
		SPIFFEID:      spiffeid.RequireFromPath(td, "/web"),
		ParentID:      spiffeid.RequireFromPath(td, "/agent"),
		Selectors:     []attest.Selector{{Type: "unix", Value: "uid:1"}},
		X509SVIDTTL:   time.Hour,
		JWTSVIDTTL:    5 * time.Minute,
		DNSNames:      []string{"web.example.org"},
		FederatesWith: []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("other.org")},
		Hint:          "h",
		Downstream:    true,
		ExpiresAt:     time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC),
		Revision:      3,
		CreatedAt:     time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		UpdatedAt:     time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC),
	}
	j := wire.EntryToJSON(e)
	assert.Equal(t, "1h0m0s", j.X509SVIDTTL)
	assert.Equal(t, []string{"other.org"}, j.FederatesWith)
	got, err := wire.EntryFromJSON(j)
	require.NoError(t, err)
	assert.Equal(t, e, got)

	// The zero values travel as absent fields and come back as zero.
	j = wire.EntryToJSON(registry.Entry{DNSNames: []string{}})
	assert.Empty(t, j.SPIFFEID)
	assert.Nil(t, j.ExpiresAt)
	assert.Empty(t, j.X509SVIDTTL)
	got, err = wire.EntryFromJSON(j)
	require.NoError(t, err)
	assert.Nil(t, got.DNSNames, "an empty list is no list")
	assert.True(t, got.ExpiresAt.IsZero())
}

func TestEntryFromJSONErrors(t *testing.T) {
	for _, tt := range []struct {
		j    wire.Entry
		want string
	}{
		{wire.Entry{SPIFFEID: "http://example.org/web"}, "spiffe_id: "},
		{wire.Entry{ParentID: "spiffe://"}, "parent_id: "},
		{wire.Entry{X509SVIDTTL: "an hour"}, "x509_svid_ttl: "},
		{wire.Entry{JWTSVIDTTL: "5"}, "jwt_svid_ttl: "},
		{wire.Entry{FederatesWith: []string{"Not A Domain"}}, "federates_with: "},
	} {
		_, err := wire.EntryFromJSON(tt.j)
		require.Error(t, err, "%+v", tt.j)
		assert.Contains(t, err.Error(), tt.want)
	}
}

func TestAgentRoundTrip(t *testing.T) {
	a := registry.Agent{
		ID:                   spiffeid.RequireFromPath(td, "/spiffekit/agent/join_token/t"),
		AttestorType:         "join_token",
		Selectors:            []attest.Selector{{Type: "join_token", Value: "id:t"}},
		SerialNumber:         "2",
		PreviousSerialNumber: "1",
		ExpiresAt:            time.Date(2030, 1, 3, 0, 0, 0, 0, time.UTC),
		CanReattest:          true,
		Banned:               true,
		CreatedAt:            time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		UpdatedAt:            time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC),
	}
	got, err := wire.AgentFromJSON(wire.AgentToJSON(a))
	require.NoError(t, err)
	assert.Equal(t, a, got)

	_, err = wire.AgentFromJSON(wire.Agent{ID: "not an id"})
	require.ErrorContains(t, err, "agent id: ")
}

func TestBundleRoundTrip(t *testing.T) {
	b := registry.FederatedBundle{
		TrustDomain: spiffeid.RequireTrustDomainFromString("other.org"),
		Document:    []byte(`{"keys":[]}`),
		UpdatedAt:   time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	j, err := wire.BundleToJSON(b)
	require.NoError(t, err)
	data, err := json.Marshal(j)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"document":{"keys":[]}`, "the document travels as JSON")
	got, err := wire.BundleFromJSON(j)
	require.NoError(t, err)
	assert.Equal(t, b, got)

	_, err = wire.BundleToJSON(registry.FederatedBundle{TrustDomain: b.TrustDomain, Document: []byte("not json")})
	require.EqualError(t, err, `admin: stored bundle of "other.org" is not JSON`)
	_, err = wire.BundleFromJSON(wire.Bundle{TrustDomain: "Not A Domain"})
	require.ErrorContains(t, err, "trust domain: ")
}

func TestRelationshipFromJSONErrors(t *testing.T) {
	_, _, err := wire.RelationshipFromJSON(wire.Relationship{TrustDomain: "b.test", EndpointSPIFFEID: "https://b.test/s"})
	require.ErrorContains(t, err, "endpoint_spiffe_id: ")
	_, _, err = wire.RelationshipFromJSON(wire.Relationship{TrustDomain: ""})
	require.ErrorContains(t, err, "trust_domain: ")
}

func TestDecodeFilterErrors(t *testing.T) {
	many := func(name, v string, n int) url.Values {
		q := url.Values{}
		for range n {
			q.Add(name, v)
		}
		return q
	}
	for _, q := range []url.Values{
		{"spiffe_id": {"example.org/web"}},
		{"parent_id": {"spiffe://"}},
		{"selector": {"no-colon"}},
		{"selector": {"unix:uid:1"}, "selector_match": {"some"}},
		{"federates_with": {"Not A Domain"}},
		{"federates_with": {"other.org"}, "federates_with_match": {"all"}},
		many("selector", "unix:uid:1", registry.MaxSelectors+1),
		many("federates_with", "other.org", registry.MaxFederatesWith+1),
	} {
		_, err := wire.DecodeFilter(q)
		require.ErrorIs(t, err, registry.ErrInvalid, "%v", q)
	}
}

func TestParseMatchMode(t *testing.T) {
	for name, want := range map[string]registry.MatchMode{
		"exact": registry.MatchExact, "subset": registry.MatchSubset, "superset": registry.MatchSuperset, "any": registry.MatchAny,
	} {
		got, err := wire.ParseMatchMode(name)
		require.NoError(t, err)
		assert.Equal(t, want, got)
		q := wire.EncodeFilter(registry.Filter{BySelectors: &registry.SelectorFilter{
			Selectors: []attest.Selector{{Type: "unix", Value: "uid:1"}}, Match: want,
		}})
		assert.Equal(t, name, q.Get("selector_match"))
	}
	_, err := wire.ParseMatchMode("Exact")
	require.ErrorIs(t, err, registry.ErrInvalid)
}
