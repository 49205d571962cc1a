package sqlstore

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// FuzzDecodeStored feeds the stored form's decoder arbitrary rows, two
// at a time through one decoder as ScanEntries does. Properties: it never
// panics; its fast path, when it takes a row, returns exactly what
// encoding/json's decoding returns (decodeInto), and accepts nothing that
// one refuses; the decoder accepts what encoding/json's decoding accepts;
// an entry it returns is valid, survives an encode and decode unchanged,
// and is not changed by the decoding of the next row; and a row encode
// writes without escapes takes the fast path.
func FuzzDecodeStored(f *testing.F) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	full := registry.Entry{
		ID:            "e1",
		SPIFFEID:      spiffeid.RequireFromString("spiffe://example.org/w"),
		ParentID:      spiffeid.RequireFromString("spiffe://example.org/spiffekit/agent/a"),
		Selectors:     []attest.Selector{{Type: "k8s", Value: "ns:1"}, {Type: "unix", Value: "uid:0"}},
		X509SVIDTTL:   time.Hour,
		JWTSVIDTTL:    time.Minute,
		DNSNames:      []string{"w.example.org", "x.example.org"},
		FederatesWith: []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("other.org")},
		Hint:          "h",
		Downstream:    true,
		ExpiresAt:     time.Unix(2000000000, 0).UTC(),
		Revision:      3,
		CreatedAt:     now,
		UpdatedAt:     now,
	}
	minimal := registry.Entry{ID: "e2", SPIFFEID: full.SPIFFEID, ParentID: full.ParentID, Selectors: full.Selectors[:1], Revision: 1}
	a, err := encode(full)
	require.NoError(f, err)
	b, err := encode(minimal)
	require.NoError(f, err)
	f.Add([]byte(a), []byte(b))
	f.Add([]byte(b), []byte(a))
	f.Add([]byte(`{"id":`), []byte(a))
	f.Add([]byte(`{"selectors":["k8s"]}`), []byte(`null`))
	const row = `{"id":"e3","spiffe_id":"spiffe://example.org/w","parent_id":"spiffe://example.org/a","selectors":["k8s:ns:1"],"revision":1`
	for _, s := range []string{
		row + `}`,
		" \t\n" + row + ` } `,
		row + `,"dns_names":[],"federates_with":[]}`,
		row + `,"dns_names":null}`,
		row + `,"revision":2}`, // a key twice
		row + `,"ID":"x"}`,     // a key in another case
		row + `,"ſpiffe_id":"spiffe://example.org/x"}`,
		row + `,"admin":true}`, // an old flag
		row + `,"hint":"a\u003cb"}`,
		row + `,"hint":"\xff"}`,
		row + `,"x509_svid_ttl_ns":1e9}`,
		row + `,"x509_svid_ttl_ns":-0}`,
		row + `,"expires_at":9223372036854775807}`,
		row + `,"expires_at":-9223372036854775808}`,
		row + `,"created_at":"2026-01-02T03:04:05+01:00"}`,
		row + `,"created_at":"2026-01-02T03:04:05.123456789Z","updated_at":null}`,
		row + `,"downstream_ca":false}`,
		row + `} {}`,
		`{}`,
		`[]`,
	} {
		f.Add([]byte(s), []byte(row+`}`))
	}
	f.Fuzz(func(t *testing.T, first, second []byte) {
		var d decoder
		fastAgrees(t, &d, first)
		fastAgrees(t, &d, second) // after first, as in a scan

		var r record
		_, refErr := decodeInto(&r, first)
		d = decoder{}
		e, err := d.decode(first)
		require.Equal(t, refErr == nil, err == nil, "encoding/json's error: %v; the decoder's: %v", refErr, err)
		if err != nil {
			_, _ = d.decode(second)
			return
		}
		require.NoError(t, e.Validate())
		keep := e.Clone()
		_, _ = d.decode(second)
		require.Equal(t, keep, e, "decoding the next row changed the entry")
		data, err := encode(e)
		require.NoError(t, err)
		again, err := decode(data)
		require.NoError(t, err)
		require.Equal(t, e, again)
		if !strings.Contains(data, "\\") {
			_, ok := new(decoder).fast([]byte(data))
			require.True(t, ok, "the fast path left a row encode wrote: %s", data)
		}
	})
}

// fastAgrees checks that d's fast path, if it takes data, returns what
// encoding/json's decoding returns.
func fastAgrees(t *testing.T, d *decoder, data []byte) {
	t.Helper()
	got, ok := d.fast(data)
	if !ok {
		return
	}
	var r record
	want, err := decodeInto(&r, data)
	require.NoError(t, err, "the fast path took a row encoding/json refuses")
	require.Equal(t, want, got)
}
