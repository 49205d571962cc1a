package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var createdLine = `^[0-9a-f]{32} `

func TestEntryCreateFromFile(t *testing.T) {
	s := startServer(t)
	file := filepath.Join(t.TempDir(), "entries.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"entries": [
		{"spiffe_id": "spiffe://example.org/web", "parent_id": "spiffe://example.org/agent/node1",
		 "selectors": ["unix:uid:1000", "unix:gid:50"], "x509_svid_ttl": "1h", "jwt_svid_ttl": "5m",
		 "dns_names": ["web.example.org"], "federates_with": ["other.org"],
		 "hint": "front"},
		{"spiffe_id": "spiffe://example.org/db", "parent_id": "spiffe://example.org/agent/node1",
		 "selectors": ["unix:uid:1001"]}
	]}`), 0o600))
	out := s.ok(t, "entry", "create", "-data", file)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, lines, 2, out)
	assert.Regexp(t, createdLine+`spiffe://example\.org/web$`, lines[0])
	assert.Regexp(t, createdLine+`spiffe://example\.org/db$`, lines[1])

	web, err := s.store.Get(t.Context(), strings.Fields(lines[0])[0])
	require.NoError(t, err)
	assert.Equal(t, spiffeid.RequireFromString("spiffe://example.org/agent/node1"), web.ParentID)
	assert.Equal(t, []attest.Selector{{Type: "unix", Value: "gid:50"}, {Type: "unix", Value: "uid:1000"}}, web.Selectors)
	assert.Equal(t, time.Hour, web.X509SVIDTTL)
	assert.Equal(t, 5*time.Minute, web.JWTSVIDTTL)
	assert.Equal(t, []string{"web.example.org"}, web.DNSNames)
	assert.Equal(t, "other.org", web.FederatesWith[0].Name())
	assert.Equal(t, "front", web.Hint)

	// The same file again: every entry is a duplicate now.
	r := s.run(t, "", "entry", "create", "-data", file)
	assert.Equal(t, ExitFailure, r.code)
	assert.Equal(t, "spiffe-server entry create: 2 of 2 entries not created\n", r.stderr)
	assert.Contains(t, r.stdout, "error: entry 1 (spiffe://example.org/web): ")
	assert.Contains(t, r.stdout, "similar entry already exists")
}

// TestEntryCreateFromFilePartial mixes entries that are created with
// entries that fail in every way: each fails on its own, on its own line,
// in file order, and the command exits 1.
func TestEntryCreateFromFilePartial(t *testing.T) {
	s := startServer(t)
	one := func(path string, extra string) string {
		return fmt.Sprintf(`{"spiffe_id": "spiffe://example.org%s", "parent_id": "spiffe://example.org/agent", "selectors": ["unix:uid:1"]%s}`, path, extra)
	}
	stdin := `{"entries": [` + strings.Join([]string{
		one("/a", ""),
		one("/a", ""), // similar to the first
		`{"spiffe_id": "spiffe://example.org/b", "parent_id": "spiffe://example.org/agent", "selectors": ["nocolon"]}`,
		`{"spiffe_id": "http://x"}`,
		`{"spiffe_id": "spiffe://example.org/c", "parent_id": "x"}`,
		one("/d", `, "x509_svid_ttl": "soon"`),
		one("/e", `, "jwt_svid_ttl": "1"`),
		one("/f", `, "federates_with": ["A B"]`),
		`{"spiffe_id": "spiffe://other.org/g", "parent_id": "spiffe://example.org/agent", "selectors": ["unix:uid:1"]}`,
		`{"parent_id": "spiffe://example.org/agent", "selectors": ["unix:uid:1"]}`,
		one("/h", ""),
	}, ",\n") + `]}`
	r := s.run(t, stdin, "entry", "create", "-data", "-")
	assert.Equal(t, ExitFailure, r.code)
	assert.Equal(t, "spiffe-server entry create: 9 of 11 entries not created\n", r.stderr)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	require.Len(t, lines, 11, r.stdout)
	assert.Regexp(t, createdLine+`spiffe://example\.org/a$`, lines[0])
	for i, want := range []string{
		"error: entry 2 (spiffe://example.org/a): admin: registry: similar entry already exists",
		"error: entry 3 (spiffe://example.org/b): selectors: ",
		"error: entry 4 (http://x): spiffe_id: ",
		"error: entry 5 (spiffe://example.org/c): parent_id: ",
		"error: entry 6 (spiffe://example.org/d): x509_svid_ttl: ",
		"error: entry 7 (spiffe://example.org/e): jwt_svid_ttl: ",
		"error: entry 8 (spiffe://example.org/f): federates_with: ",
		"error: entry 9 (spiffe://other.org/g): admin: entry SPIFFE ID",
		"error: entry 10 (no SPIFFE ID): admin: registry: entry SPIFFE ID is missing",
	} {
		assert.True(t, strings.HasPrefix(lines[i+1], want), "line %d: %q, want prefix %q", i+2, lines[i+1], want)
	}
	assert.Regexp(t, createdLine+`spiffe://example\.org/h$`, lines[10])
	all, _, err := s.store.List(t.Context(), registry.Filter{}, registry.Page{})
	require.NoError(t, err)
	assert.Len(t, all, 2)
}

func TestEntryCreateFromFileFailures(t *testing.T) {
	s := startServer(t)
	tests := []struct {
		name, stdin string
		args        []string
		code        int
		stderr      string
	}{
		{"with entry flags", `{"entries":[]}`, []string{"entry", "create", "-data", "-", "-spiffe-id", "spiffe://example.org/a"}, ExitUsage, "-data cannot be combined"},
		{"missing file", "", []string{"entry", "create", "-data", filepath.Join(t.TempDir(), "none")}, ExitFailure, "no such file"},
		{"not JSON", "{", []string{"entry", "create", "-data", "-"}, ExitFailure, "stdin: malformed entry file"},
		{"unknown field", `{"entries":[{"spiffeid":"x"}]}`, []string{"entry", "create", "-data", "-"}, ExitFailure, "unknown field"},
		{"admin flag", `{"entries":[{"spiffe_id":"spiffe://example.org/a","admin":true}]}`, []string{"entry", "create", "-data", "-"}, ExitFailure, `unknown field "admin"`},
		{"two values", `{} {}`, []string{"entry", "create", "-data", "-"}, ExitFailure, "stdin: malformed entry file: unexpected data after the JSON value"},
		{"too large", strings.Repeat(" ", maxDataFile+1), []string{"entry", "create", "-data", "-"}, ExitFailure, "holds more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.run(t, tt.stdin, tt.args...)
			assert.Equal(t, tt.code, r.code, r.stderr)
			assert.Contains(t, r.stderr, tt.stderr)
			assert.Empty(t, r.stdout)
		})
	}

	// No entries: nothing to do, nothing printed.
	r := s.run(t, `{"entries":[]}`, "entry", "create", "-data", "-")
	assert.Equal(t, ExitOK, r.code, r.stderr)
	assert.Empty(t, r.stdout)
	assert.Empty(t, r.stderr)
}

// TestEntryCreateFromFileServerDown checks that a server that cannot be
// reached fails the command, saying how far it got.
func TestEntryCreateFromFileServerDown(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "none.sock")
	var out, errb strings.Builder
	code := adminCommand(t.Context(), []string{"entry", "create", "-admin-socket", socket, "-data", "-"},
		strings.NewReader(`{"entries":[{"spiffe_id":"spiffe://example.org/a","parent_id":"spiffe://example.org/agent","selectors":["unix:uid:1"]}]}`),
		&out, &errb)
	assert.Equal(t, ExitFailure, code)
	assert.Contains(t, errb.String(), "after 0 of 1 entries")
	assert.Contains(t, errb.String(), "cannot reach the server")
	assert.Empty(t, out.String())
}

// TestEntryCreateUsage checks that the usage documents the file format.
func TestEntryCreateUsage(t *testing.T) {
	var out, errb strings.Builder
	code := adminCommand(t.Context(), []string{"entry", "create", "-h"}, strings.NewReader(""), &out, &errb)
	assert.Equal(t, ExitOK, code)
	assert.Empty(t, errb.String())
	for _, want := range []string{"-data FILE", `{"entries": [`, `"selectors": ["unix:uid:1000"`, `"x509_svid_ttl": "1h"`, "error: entry N"} {
		assert.Contains(t, out.String(), want)
	}
}
