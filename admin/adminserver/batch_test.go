package adminserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/admin/adminserver"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/admintest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// plainStore hides every capability of a store but registry.Store, such
// as registry.BatchCreator.
type plainStore struct{ registry.Store }

// openSQLite opens a fresh SQLite store that is closed when tb ends.
func openSQLite(tb testing.TB) *sqlstore.Store {
	tb.Helper()
	s, err := sqlstore.Open(tb.Context(), sqlstore.Config{Dialect: sqlstore.SQLite, DSN: filepath.Join(tb.TempDir(), "registry.db")})
	require.NoError(tb, err)
	tb.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkAdminCreate10k measures creating 10,000 entries through the
// client and the admin API on a unix socket, in a SQLite store, and
// reports entries per second.
func BenchmarkAdminCreate10k(b *testing.B) {
	const total = 10_000
	entries := make([]registry.Entry, total)
	for i := range entries {
		entries[i] = registry.Entry{
			SPIFFEID:  spiffeid.RequireFromPath(td, fmt.Sprintf("/ns/%d/sa/%d", i%100, i)),
			ParentID:  spiffeid.RequireFromPath(td, fmt.Sprintf("/agent/%d", i%50)),
			Selectors: []attest.Selector{{Type: "k8s", Value: fmt.Sprintf("ns:%d", i%100)}, {Type: "k8s", Value: fmt.Sprintf("sa:%d", i)}},
		}
	}
	n := 0
	for b.Loop() {
		b.StopTimer()
		store := openSQLite(b)
		srv, err := adminserver.New(adminserver.Config{
			TrustDomain: td, Entries: store, Agents: store, Bundles: store, Tokens: &admintest.Tokens{},
			Bundle: func() *spiffebundle.Bundle { return nil },
		})
		require.NoError(b, err)
		path := filepath.Join(b.TempDir(), "admin.sock")
		lis, err := adminserver.ListenUnix(path)
		require.NoError(b, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx, lis) }()
		c := admin.Dial(path)
		b.StartTimer()

		results, err := c.CreateEntries(b.Context(), entries)
		require.NoError(b, err)
		require.Len(b, results, total)
		for _, r := range results {
			require.NoError(b, r.Err)
		}
		n += total

		b.StopTimer()
		c.Close()
		cancel()
		require.NoError(b, <-done)
		b.StartTimer()
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
}

// mixedBatch returns a batch whose entries succeed and fail in every way,
// with the index of each kind.
func mixedBatch() (in []registry.Entry, ok, invalid, duplicate []int) {
	foreign := admintest.Entry("/foreign", "unix:uid:9")
	foreign.SPIFFEID = spiffeid.RequireFromString("spiffe://other.org/foreign")
	foreignParent := admintest.Entry("/foreign-parent", "unix:uid:9")
	foreignParent.ParentID = spiffeid.RequireFromString("spiffe://other.org/agent")
	in = []registry.Entry{
		admintest.Entry("/a", "unix:uid:1"),        // 0
		admintest.Entry("/no-selectors"),           // 1 invalid
		foreign,                                    // 2 invalid: not this server's trust domain
		admintest.Entry("/a", "unix:uid:1"),        // 3 duplicate of 0
		admintest.Entry("/existing", "unix:uid:5"), // 4 duplicate of a stored entry
		admintest.Entry("/b", "unix:uid:2"),        // 5
		foreignParent,                              // 6 invalid
	}
	return in, []int{0, 5}, []int{1, 2, 6}, []int{3, 4}
}

func checkMixed(t *testing.T, e *admintest.Env, results []registry.BatchResult, in []registry.Entry, ok, invalid, duplicate []int) {
	t.Helper()
	require.Len(t, results, len(in))
	for _, i := range ok {
		require.NoError(t, results[i].Err, "entry %d", i)
		assert.Equal(t, in[i].SPIFFEID, results[i].Entry.SPIFFEID)
		stored, err := e.Store.Get(t.Context(), results[i].Entry.ID)
		require.NoError(t, err)
		assert.Equal(t, stored, results[i].Entry, "the client returns the entry exactly as stored")
	}
	for _, i := range invalid {
		require.ErrorIs(t, results[i].Err, registry.ErrInvalid, "entry %d", i)
		assert.True(t, strings.HasPrefix(results[i].Err.Error(), "admin: "), results[i].Err.Error())
	}
	for _, i := range duplicate {
		require.ErrorIs(t, results[i].Err, registry.ErrAlreadyExists, "entry %d", i)
	}
	// Each invalid entry fails for its own cause.
	assert.EqualError(t, results[1].Err, "admin: registry: entry has no selectors")
	assert.EqualError(t, results[2].Err, `admin: entry SPIFFE ID "spiffe://other.org/foreign" is not in trust domain "example.org": registry: invalid argument`)
	assert.EqualError(t, results[6].Err, `admin: entry parent ID "spiffe://other.org/agent" is not in trust domain "example.org": registry: invalid argument`)
	all, err := e.Client.ListEntries(t.Context(), registry.Filter{})
	require.NoError(t, err)
	assert.Len(t, all, 1+len(ok))
}

func TestCreateEntries(t *testing.T) {
	for _, tt := range []struct {
		name   string
		modify []func(*adminserver.Config)
	}{
		{"batch store", nil},
		{"store without batches", []func(*adminserver.Config){func(c *adminserver.Config) { c.Entries = plainStore{c.Entries} }}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := admintest.Start(t, tt.modify...)
			_, err := e.Client.CreateEntry(t.Context(), admintest.Entry("/existing", "unix:uid:5"))
			require.NoError(t, err)
			in, ok, invalid, duplicate := mixedBatch()
			results, err := e.Client.CreateEntries(t.Context(), in)
			require.NoError(t, err)
			checkMixed(t, e, results, in, ok, invalid, duplicate)
			assert.Contains(t, e.Log.String(), "admin: entry batch done")
			assert.Contains(t, e.Log.String(), "created=2 failed=5")

			results, err = e.Client.CreateEntries(t.Context(), nil)
			require.NoError(t, err)
			assert.Empty(t, results)
		})
	}
}

// TestCreateEntriesStoreDown checks what the caller learns when the store
// fails: a batch store fails the request whole; without batches, the
// entries from the first failure on fail, and the details go to the log
// only.
func TestCreateEntriesStoreDown(t *testing.T) {
	t.Run("batch store", func(t *testing.T) {
		store := openSQLite(t)
		e := admintest.Start(t, func(c *adminserver.Config) { c.Entries = store })
		require.NoError(t, store.Close())
		results, err := e.Client.CreateEntries(t.Context(), []registry.Entry{admintest.Entry("/a", "unix:uid:1")})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "admin: internal error")
		assert.Empty(t, results)
		assert.Contains(t, e.Log.String(), "database is closed")
	})
	t.Run("store without batches", func(t *testing.T) {
		store := openSQLite(t)
		e := admintest.Start(t, func(c *adminserver.Config) { c.Entries = plainStore{store} })
		require.NoError(t, store.Close())
		results, err := e.Client.CreateEntries(t.Context(), []registry.Entry{admintest.Entry("/a", "unix:uid:1"), admintest.Entry("/b", "unix:uid:1")})
		require.NoError(t, err)
		require.Len(t, results, 2)
		for _, r := range results {
			require.Error(t, r.Err)
			assert.Equal(t, "admin: internal error", r.Err.Error())
			assert.NotErrorIs(t, r.Err, registry.ErrInvalid)
		}
		assert.Contains(t, e.Log.String(), "database is closed")
	})
}

// TestCreateEntriesMalformed sends batch bodies the Client never sends.
func TestCreateEntriesMalformed(t *testing.T) {
	e := admintest.Start(t)
	one := `{"spiffe_id":"spiffe://example.org/a","parent_id":"spiffe://example.org/agent","selectors":[{"type":"unix","value":"uid:1"}]}`
	tooMany := "[" + strings.TrimSuffix(strings.Repeat("{},", admin.MaxBatchEntries+1), ",") + "]"
	big := "[" + strings.Repeat(" ", admin.MaxBatchRequestBody) + "]"
	tests := []struct {
		name, body string
		status     int
		contains   string
	}{
		{"not JSON", "[", http.StatusBadRequest, "malformed request body"},
		{"object", "{}", http.StatusBadRequest, "JSON array"},
		{"null", "null", http.StatusBadRequest, "JSON array"},
		{"empty", "", http.StatusBadRequest, "malformed request body"},
		{"unknown field", `[{"nope":1}]`, http.StatusBadRequest, "unknown field"},
		{"element not an object", `[1]`, http.StatusBadRequest, "malformed request body"},
		{"unterminated", "[" + one, http.StatusBadRequest, "malformed request body"},
		{"two values", "[] []", http.StatusBadRequest, "more than one JSON value"},
		{"too many entries", tooMany, http.StatusBadRequest, fmt.Sprintf("more than %d entries", admin.MaxBatchEntries)},
		{"body too large", big, http.StatusRequestEntityTooLarge, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, text := admintest.Raw(t, e.Path, "POST", "/v1/entries/batch", strings.NewReader(tt.body))
			assert.Equal(t, tt.status, status, text)
			assert.Contains(t, text, tt.contains)
			assert.Contains(t, text, `"error":`)
		})
	}
	all, err := e.Client.ListEntries(t.Context(), registry.Filter{})
	require.NoError(t, err)
	assert.Empty(t, all, "no refused request stored anything")

	// Fields that do not parse fail their entry only.
	status, text := admintest.Raw(t, e.Path, "POST", "/v1/entries/batch", strings.NewReader(
		`[{"spiffe_id":"http://x"},`+one+`,{"x509_svid_ttl":"soon"},{"federates_with":["A B"]}]`))
	require.Equal(t, http.StatusOK, status, text)
	var out struct {
		Results []struct {
			Entry *json.RawMessage `json:"entry"`
			Error string           `json:"error"`
			Code  string           `json:"code"`
		} `json:"results"`
	}
	require.NoError(t, json.Unmarshal([]byte(text), &out))
	require.Len(t, out.Results, 4)
	assert.Contains(t, out.Results[0].Error, "spiffe_id")
	assert.Equal(t, "invalid", out.Results[0].Code)
	assert.NotNil(t, out.Results[1].Entry)
	assert.Empty(t, out.Results[1].Error)
	assert.Contains(t, out.Results[2].Error, "x509_svid_ttl")
	assert.Contains(t, out.Results[3].Error, "federates_with")
}
