package index

import (
	"cmp"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Property: the index gives back every field of an entry exactly as it
// was given, whether a record keeps it compactly or beside it: times in
// UTC to the nanosecond, zero, in another location or with a monotonic
// reading; the fields most entries leave empty, set, empty or nil; and
// after entries were removed and their slots reused.
func TestRecordKeepsEntriesExactly(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	paris := time.FixedZone("CET", 3600)
	base := func(i int) registry.Entry {
		return registry.Entry{
			ID:        registry.NewEntryID(),
			SPIFFEID:  spiffeid.RequireFromPathf(spiffeid.RequireTrustDomainFromString("example.org"), "/w%d", i),
			ParentID:  spiffeid.RequireFromString("spiffe://example.org/agent"),
			Selectors: []attest.Selector{{Type: "k8s", Value: "ns:a"}, {Type: "k8s", Value: "sa:" + string(rune('a'+i))}},
			Revision:  int64(i + 1),
			CreatedAt: now,
			UpdatedAt: now.Add(time.Duration(i) * time.Microsecond),
		}
	}
	var in []registry.Entry
	add := func(f func(*registry.Entry)) {
		e := base(len(in))
		f(&e)
		in = append(in, e)
	}
	add(func(*registry.Entry) {})
	add(func(e *registry.Entry) { e.CreatedAt, e.UpdatedAt = time.Time{}, time.Time{} })
	add(func(e *registry.Entry) { e.CreatedAt = now.In(paris) })
	add(func(e *registry.Entry) { e.UpdatedAt = time.Now() }) // with a monotonic reading
	add(func(e *registry.Entry) { e.ExpiresAt = now.Add(time.Hour).Truncate(time.Second) })
	add(func(e *registry.Entry) { e.ExpiresAt = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC) })
	add(func(e *registry.Entry) { e.CreatedAt = time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC) })
	add(func(e *registry.Entry) {
		e.DNSNames = []string{"a.example.org"}
		e.FederatesWith = []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("other.org")}
		e.Hint = "hint"
		e.X509SVIDTTL, e.JWTSVIDTTL, e.Downstream = time.Hour, time.Minute, true
	})
	add(func(e *registry.Entry) { e.DNSNames, e.FederatesWith = []string{}, []spiffeid.TrustDomain{} })
	add(func(e *registry.Entry) { e.Hint = "only a hint" })
	add(func(e *registry.Entry) { e.Selectors = e.Selectors[1:] })

	x, err := New(t.Context(), &sliceSource{entries: in}, Config{Now: func() time.Time { return now }})
	require.NoError(t, err)
	want := slices.Clone(in)
	slices.SortFunc(want, func(a, b registry.Entry) int { return cmp.Compare(a.ID, b.ID) })
	requireSame(t, want, x.All())

	// Remove half, put them back changed: the records of the removed are
	// reused, and nothing of them remains.
	x.mu.Lock()
	for i := 0; i < len(in); i += 2 {
		x.remove(x.records[in[i].ID])
	}
	for i := 0; i < len(in); i += 2 {
		in[i].Revision++
		in[i].Selectors = []attest.Selector{{Type: "unix", Value: "uid:1"}}
		in[i].ID = registry.NewEntryID()
		x.put(in[i])
	}
	x.mu.Unlock()
	want = slices.Clone(in)
	slices.SortFunc(want, func(a, b registry.Entry) int { return cmp.Compare(a.ID, b.ID) })
	requireSame(t, want, x.All())
	assert.Len(t, x.ForWorkload([]attest.Selector{{Type: "unix", Value: "uid:1"}}), (len(in)+1)/2)
	assert.Len(t, x.ForAgent(spiffeid.RequireFromString("spiffe://example.org/agent"), nil), len(in))
	assert.Equal(t, int32(len(in)), x.recs.n, "removed records' slots are reused")

	// A parent whose last entry goes, then another parent, then the
	// first again: each entry is its own parent's.
	other := func(path string) registry.Entry {
		e := base(100)
		e.ID, e.ParentID = registry.NewEntryID(), spiffeid.RequireFromString("spiffe://example.org"+path)
		return e
	}
	a, b, a2 := other("/a"), other("/b"), other("/a")
	x.mu.Lock()
	x.put(a)
	x.remove(x.records[a.ID])
	x.put(b)
	x.put(a2)
	x.mu.Unlock()
	for _, e := range []registry.Entry{b, a2} {
		got := x.ForAgent(e.ParentID, nil)
		require.Len(t, got, 1)
		assert.Equal(t, e.ID, got[0].ID)
	}
}

// requireSame checks that got holds want's entries exactly: times
// compared with ==, so that their location and monotonic reading count.
func requireSame(t *testing.T, want, got []registry.Entry) {
	t.Helper()
	require.Equal(t, want, got)
	for i := range want {
		assert.True(t, want[i].CreatedAt == got[i].CreatedAt && want[i].UpdatedAt == got[i].UpdatedAt && want[i].ExpiresAt == got[i].ExpiresAt,
			"entry %d: times %v %v %v, want %v %v %v", i, got[i].CreatedAt, got[i].UpdatedAt, got[i].ExpiresAt, want[i].CreatedAt, want[i].UpdatedAt, want[i].ExpiresAt)
	}
}
