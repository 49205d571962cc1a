package admin

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
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

// FuzzCheckSelector feeds arbitrary selectors to the shape check of the
// built-in attestors' selectors: no panic, and a unix uid or gid it
// accepts is exactly what the unix attestor writes for some id.
func FuzzCheckSelector(f *testing.F) {
	for _, s := range [][2]string{
		{"unix", "uid:1000"}, {"unix", "gid:0"}, {"unix", "uid:01"}, {"UNIX", "uid:0"},
		{"unix", "sha256:" + strings.Repeat("a", 64)}, {"unix", "path:/usr/bin/x"},
		{"x509pop", "serialnumber:1f"}, {"join_token", "id:abc"}, {"k8s", "ns:prod"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, typ, value string) {
		err := checkSelector(attest.Selector{Type: typ, Value: value})
		if err != nil || typ != "unix" {
			return
		}
		for _, kind := range []string{"uid:", "gid:"} {
			if id, ok := strings.CutPrefix(value, kind); ok {
				n, perr := strconv.ParseUint(id, 10, 32)
				require.NoError(t, perr, "accepted %s%s", kind, id)
				require.Equal(t, strconv.FormatUint(n, 10), id, "accepted a non-canonical id")
			}
		}
	})
}
