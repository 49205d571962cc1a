package wire

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FuzzDecodeFilter feeds arbitrary query strings to the list filter
// decoder: no panic, and a decoded filter survives a round trip.
func FuzzDecodeFilter(f *testing.F) {
	f.Add("spiffe_id=spiffe://example.org/web&selector=unix:uid:1&selector_match=any")
	f.Add("federates_with=a.org&federates_with_match=superset&hint=h")
	f.Fuzz(func(t *testing.T, query string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		filter, err := DecodeFilter(q)
		if err != nil {
			return // rejected input is fine; a panic is not
		}
		again, err := DecodeFilter(EncodeFilter(filter))
		require.NoError(t, err)
		require.Equal(t, filter, again)
	})
}

// FuzzEntryJSON feeds arbitrary bodies to the entry decoder: no panic, and
// a decoded entry survives a round trip through its wire form.
func FuzzEntryJSON(f *testing.F) {
	f.Add([]byte(`{"spiffe_id":"spiffe://example.org/web","parent_id":"spiffe://example.org/agent","selectors":[{"type":"unix","value":"uid:1"}],"x509_svid_ttl":"1h","federates_with":["other.org"]}`))
	f.Add([]byte(`{"created_at":"2024-01-01T00:00:00Z","revision":3}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var j Entry
		if json.Unmarshal(body, &j) != nil {
			return
		}
		e, err := EntryFromJSON(j)
		if err != nil {
			return
		}
		data, err := json.Marshal(EntryToJSON(e))
		if err != nil {
			return // a time outside years 0-9999 has no JSON form
		}
		var j2 Entry
		require.NoError(t, json.Unmarshal(data, &j2))
		again, err := EntryFromJSON(j2)
		require.NoError(t, err)
		require.Equal(t, e.Clone(), again.Clone())
	})
}

// FuzzRelationshipJSON feeds arbitrary bodies to the federation
// relationship decoder: no panic, and a decoded relationship survives a
// round trip through its wire form.
func FuzzRelationshipJSON(f *testing.F) {
	f.Add([]byte(`{"trust_domain":"b.test","bundle_endpoint_url":"https://b.test/","bundle_endpoint_profile":"https_spiffe","endpoint_spiffe_id":"spiffe://b.test/s","trust_domain_bundle":"e30="}`))
	f.Add([]byte(`{"trust_domain":"b.test","configured":true,"created_at":"2030-01-01T00:00:00Z","updated_at":"2030-01-01T00:00:01Z"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var j Relationship
		if json.Unmarshal(body, &j) != nil {
			return
		}
		r, configured, err := RelationshipFromJSON(j)
		if err != nil {
			return
		}
		data, err := json.Marshal(RelationshipToJSON(r, configured))
		if err != nil {
			return // a time outside years 0-9999 has no JSON form
		}
		var j2 Relationship
		require.NoError(t, json.Unmarshal(data, &j2))
		again, againConfigured, err := RelationshipFromJSON(j2)
		require.NoError(t, err)
		if r.CreatedAt.IsZero() {
			r.UpdatedAt = time.Time{} // the wire carries the times together
		}
		if len(r.TrustDomainBundle) == 0 {
			r.TrustDomainBundle = nil
		}
		require.Equal(t, r.TrustDomain, again.TrustDomain)
		require.Equal(t, r.EndpointSPIFFEID, again.EndpointSPIFFEID)
		require.Equal(t, r.BundleEndpointURL, again.BundleEndpointURL)
		require.Equal(t, r.BundleEndpointProfile, again.BundleEndpointProfile)
		require.Equal(t, r.TrustDomainBundle, again.TrustDomainBundle)
		require.Equal(t, configured, againConfigured)
		require.True(t, r.CreatedAt.Equal(again.CreatedAt) && r.UpdatedAt.Equal(again.UpdatedAt), "%v %v", r, again)
	})
}
