package sqlstore

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// FuzzDecodeStored feeds the stored form's decoder arbitrary rows, two
// at a time through one record as ScanEntries does. Property: it never
// panics; an entry it returns is valid, survives an encode and decode
// unchanged, and is not changed by the decoding of the next row into the
// same record.
func FuzzDecodeStored(f *testing.F) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	full := registry.Entry{
		ID:            "e1",
		SPIFFEID:      spiffeid.RequireFromString("spiffe://example.org/w"),
		ParentID:      spiffeid.RequireFromString("spiffe://example.org/spiffekit/agent/a"),
		Selectors:     []attest.Selector{{Type: "k8s", Value: "ns:1"}, {Type: "unix", Value: "uid:0"}},
		X509SVIDTTL:   time.Hour,
		DNSNames:      []string{"w.example.org", "x.example.org"},
		FederatesWith: []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("other.org")},
		Hint:          "h",
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
	f.Fuzz(func(t *testing.T, first, second []byte) {
		var r record
		e, err := decodeInto(&r, first)
		if err != nil {
			_, _ = decodeInto(&r, second)
			return
		}
		require.NoError(t, e.Validate())
		keep := e.Clone()
		_, _ = decodeInto(&r, second)
		require.Equal(t, keep, e, "decoding the next row changed the entry")
		data, err := encode(e)
		require.NoError(t, err)
		again, err := decodeBytes([]byte(data))
		require.NoError(t, err)
		require.Equal(t, e, again)
	})
}
