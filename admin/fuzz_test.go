package admin

import (
	"encoding/json"
	"net/url"
	"testing"

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
		filter, err := decodeFilter(q)
		if err != nil {
			return // rejected input is fine; a panic is not
		}
		again, err := decodeFilter(encodeFilter(filter))
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
		var j entryJSON
		if json.Unmarshal(body, &j) != nil {
			return
		}
		e, err := entryFromJSON(j)
		if err != nil {
			return
		}
		data, err := json.Marshal(entryToJSON(e))
		if err != nil {
			return // a time outside years 0-9999 has no JSON form
		}
		var j2 entryJSON
		require.NoError(t, json.Unmarshal(data, &j2))
		again, err := entryFromJSON(j2)
		require.NoError(t, err)
		require.Equal(t, e.Clone(), again.Clone())
	})
}
