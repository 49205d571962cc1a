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
		one("/e", `, "jwt_svid_ttl": "1x"`),
		one("/f", `, "federates_with": ["A B"]`),
		`{"spiffe_id": "spiffe://other.org/g", "parent_id": "spiffe://example.org/agent", "selectors": ["unix:uid:1"]}`,
		`{"parent_id": "spiffe://example.org/agent", "selectors": ["unix:uid:1"]}`,
		one("/i", `, "admin": true`),
		one("/k", `, "store_svid": true`),
		one("/l", `, "entryExpiry": 1700000000`),
		`{"spiffe_id": "spiffe://example.org/m", "parent_id": "spiffe://example.org/agent", "selectors": [{"type": "unix", "value": ""}]}`,
		`{"spiffe_id": "spiffe://example.org/n", "parent_id": "spiffe://example.org/agent", "selectors": [{"type": "unix", "val": "uid:1"}]}`,
		one("/o", `, "x509_svid_ttl": -5`),
		one("/p", `, "ttl": true`),
		one("/h", ""),
	}, ",\n") + `]}`
	r := s.run(t, stdin, "entry", "create", "-data", "-")
	assert.Equal(t, ExitFailure, r.code)
	assert.Equal(t, "spiffe-server entry create: 16 of 18 entries not created\n", r.stderr)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	require.Len(t, lines, 18, r.stdout)
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
		"error: entry 11 (spiffe://example.org/i): admin: an entry grants an identity, never the right to administer the server",
		"error: entry 12 (spiffe://example.org/k): store_svid: spiffekit has no SVIDStore plugins",
		"error: entry 13 (spiffe://example.org/l): admin: entry expiry 2023-11-14T22:13:20Z (1700000000 seconds since the epoch) has passed",
		`error: entry 14 (spiffe://example.org/m): selectors: attest: invalid selector: "unix" has an empty value`,
		`error: entry 15 (spiffe://example.org/n): selectors: a selector is {"type": ..., "value": ...} or "type:value": json: unknown field "val"`,
		"error: entry 16 (spiffe://example.org/o): x509_svid_ttl: -5 seconds is out of range",
		`error: entry 17 (spiffe://example.org/p): ttl: want a number of seconds or a duration such as "1h", not true`,
	} {
		assert.True(t, strings.HasPrefix(lines[i+1], want), "line %d: %q, want prefix %q", i+2, lines[i+1], want)
	}
	assert.Regexp(t, createdLine+`spiffe://example\.org/h$`, lines[17])
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
		{"misspelt SPIRE field", `{"entries":[{"spiffe_id":"spiffe://example.org/a","entry_expiry":1}]}`, []string{"entry", "create", "-data", "-"}, ExitFailure, `unknown field "entry_expiry"`},
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
	for _, want := range []string{"-data FILE", `{"entries": [`, `"selectors": [{"type": "unix", "value": "uid:1000"}, "unix:gid:50"]`, `"x509_svid_ttl": 3600`, "error: entry N"} {
		assert.Contains(t, out.String(), want)
	}
}

// TestEntryCreateFromSPIREFile reads an entry file as SPIRE's CLI reads and
// writes it: selectors as objects, TTLs in seconds, SPIRE's older ttl,
// federates_with as SPIFFE IDs, and the fields spiffekit ignores or accepts
// when unset (entry_id, revision_number, admin, downstream).
func TestEntryCreateFromSPIREFile(t *testing.T) {
	s := startServer(t)
	file := filepath.Join(t.TempDir(), "spire.json")
	require.NoError(t, os.WriteFile(file, []byte(`{
  "entries": [
    {
      "selectors": [{"type": "unix", "value": "uid:501"}, {"type": "unix", "value": "gid:20"}],
      "spiffe_id": "spiffe://example.org/Blog",
      "parent_id": "spiffe://example.org/spire/agent/join_token/TokenBlog",
      "x509_svid_ttl": 200,
      "jwt_svid_ttl": 30,
      "dns_names": ["blog.example.org"],
      "federates_with": ["spiffe://other.org"],
      "admin": false,
      "downstream": false,
      "store_svid": false,
      "entryExpiry": 0,
      "revision_number": 0,
      "hint": "external"
    },
    {
      "entry_id": "4a7b3b2e-5f6e-4d1b-9a33-0c2f1e9d8b70",
      "selectors": [{"type": "unix", "value": "uid:502"}],
      "spiffe_id": "spiffe://example.org/Database",
      "parent_id": "spiffe://example.org/spire/agent/join_token/TokenDatabase",
      "ttl": 3600
    }
  ]
}`), 0o600))
	r := s.run(t, "", "entry", "create", "-data", file)
	require.Equal(t, ExitOK, r.code, r.stderr)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	require.Len(t, lines, 2, r.stdout)

	blog, err := s.store.Get(t.Context(), strings.Fields(lines[0])[0])
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/Blog", blog.SPIFFEID.String())
	assert.Equal(t, []attest.Selector{{Type: "unix", Value: "gid:20"}, {Type: "unix", Value: "uid:501"}}, blog.Selectors)
	assert.Equal(t, 200*time.Second, blog.X509SVIDTTL)
	assert.Equal(t, 30*time.Second, blog.JWTSVIDTTL)
	assert.Equal(t, []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("other.org")}, blog.FederatesWith)
	assert.Equal(t, []string{"blog.example.org"}, blog.DNSNames)
	assert.Equal(t, "external", blog.Hint)

	assert.Equal(t, "4a7b3b2e5f6e4d1b9a330c2f1e9d8b70 spiffe://example.org/Database", lines[1], "SPIRE's entry ID, without its dashes")
	db, err := s.store.Get(t.Context(), strings.Fields(lines[1])[0])
	require.NoError(t, err)
	assert.Equal(t, time.Hour, db.X509SVIDTTL, "SPIRE's ttl is the X509-SVID TTL")
	assert.Zero(t, db.JWTSVIDTTL)
}

// TestSPIREFlagSpellings drives the entry, token and agent commands with
// SPIRE's flag names and values (TTLs in seconds, trust domains as SPIFFE
// IDs, entry show listing by filters).
func TestSPIREFlagSpellings(t *testing.T) {
	s := startServer(t)
	out := s.ok(t, "entry", "create", "-parentID", "spiffe://example.org/host", "-spiffeID", "spiffe://example.org/workload",
		"-selector", "unix:uid:1001", "-ttl", "3600", "-jwtSVIDTTL", "60", "-dns", "w.example.org", "-federatesWith", "spiffe://other.org")
	m := entryIDLine.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	id := m[1]
	e, err := s.store.Get(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, time.Hour, e.X509SVIDTTL)
	assert.Equal(t, time.Minute, e.JWTSVIDTTL)
	s.ok(t, "entry", "create", "-parentID", "spiffe://example.org/host", "-spiffeID", "spiffe://example.org/other",
		"-selector", "unix:uid:1001", "-selector", "unix:gid:7", "-x509SVIDTTL", "120", "-ttl", "3600")
	other, _, err := s.store.List(t.Context(), registry.Filter{BySPIFFEID: spiffeid.RequireFromString("spiffe://example.org/other")}, registry.Page{})
	require.NoError(t, err)
	require.Len(t, other, 1)
	assert.Equal(t, 2*time.Minute, other[0].X509SVIDTTL, "-x509SVIDTTL wins over -ttl")

	assert.Contains(t, s.ok(t, "entry", "show", "-spiffeID", "spiffe://example.org/workload"), "Found 1 entry")
	assert.Contains(t, s.ok(t, "entry", "show", "-parentID", "spiffe://example.org/host"), "Found 2 entries")
	assert.Contains(t, s.ok(t, "entry", "show", "-selector", "unix:uid:1001", "-matchSelectorsOn", "exact"), "Found 1 entry")
	assert.Contains(t, s.ok(t, "entry", "show", "-selector", "unix:uid:1001", "-matchSelectorsOn", "superset"), "Found 2 entries")
	assert.Contains(t, s.ok(t, "entry", "show", "-federatesWith", "spiffe://other.org", "-matchFederatesWithOn", "exact"), "Found 1 entry")
	assert.Contains(t, s.ok(t, "entry", "show", "-federatesWith", "spiffe://other.org", "-federatesWith", "third.org"), "Found 0 entries",
		"superset by default, as SPIRE")
	assert.Contains(t, s.ok(t, "entry", "show", "-federatesWith", "spiffe://other.org", "-federatesWith", "third.org", "-matchFederatesWithOn", "any"), "Found 1 entry")
	assert.Contains(t, s.ok(t, "entry", "show", "-entryID", id), "SPIFFE ID:      spiffe://example.org/workload")

	upd := s.ok(t, "entry", "update", "-entryID", id, "-x509SVIDTTL", "7200", "-spiffeID", "spiffe://example.org/workload2")
	assert.Contains(t, upd, "X509-SVID TTL:  2h0m0s")
	assert.Contains(t, upd, "SPIFFE ID:      spiffe://example.org/workload2")
	assert.Equal(t, "Deleted entry "+id+"\n", s.ok(t, "entry", "delete", "-entryID", id))

	assert.Regexp(t, `^secret-\S+\n$`, s.ok(t, "token", "generate", "-spiffeID", "spiffe://example.org/host", "-ttl", "600"))
	assert.Equal(t, 10*time.Minute, s.tokens.ttl)

	n1 := spiffeid.RequireFromPath(td, "/spiffekit/agent/join_token/one")
	_, err = s.store.PutAgent(t.Context(), registry.Agent{ID: n1, AttestorType: "join_token", SerialNumber: "1",
		Selectors: []attest.Selector{{Type: "join_token", Value: "id:one"}}, ExpiresAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	assert.Contains(t, s.ok(t, "agent", "list", "-spiffeID", n1.String()), n1.String())
	assert.Equal(t, "Banned agent "+n1.String()+"\n", s.ok(t, "agent", "ban", "-spiffeID", n1.String()))
	assert.Equal(t, "Evicted agent "+n1.String()+"\n", s.ok(t, "agent", "evict", "-spiffeID", n1.String()))
}

// TestEntryCreateFromSPIREEntryShow reads what SPIRE v1.13's spire-server
// entry show -output json prints, unchanged (testdata/spire-entry-show.json,
// a join token's node alias and a workload parented by it): SPIFFE IDs as
// {"trust_domain", "path"}, the entry ID as id, 64-bit integers as strings,
// expires_at and next_page_token.
func TestEntryCreateFromSPIREEntryShow(t *testing.T) {
	s := startServer(t)
	r := s.run(t, "", "entry", "create", "-data", filepath.Join("testdata", "spire-entry-show.json"))
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Equal(t, "2d43862112fd4ac5a0757af2faa5f792 spiffe://example.org/node/n1\n"+
		"c15c259226054aa59e2553978c370b4c spiffe://example.org/web\n", r.stdout)
	// The node alias is created, but its SPIRE agent parent is named.
	assert.Equal(t, "warning: entry 1 (spiffe://example.org/node/n1): its parent "+
		"spiffe://example.org/spire/agent/join_token/98530f69-ba8f-4cdb-a529-7edc30e7583b is an ID of SPIRE's server or agents, "+
		"which no spiffekit server or agent holds: no agent will serve it until its parent is rewritten (docs/MIGRATING-FROM-SPIRE.md)\n",
		r.stderr)

	alias, err := s.store.Get(t.Context(), "2d43862112fd4ac5a0757af2faa5f792")
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/spire/agent/join_token/98530f69-ba8f-4cdb-a529-7edc30e7583b", alias.ParentID.String())
	assert.Equal(t, []attest.Selector{{Type: "spiffe_id", Value: "spiffe://example.org/spire/agent/join_token/98530f69-ba8f-4cdb-a529-7edc30e7583b"}}, alias.Selectors)

	web, err := s.store.Get(t.Context(), "c15c259226054aa59e2553978c370b4c")
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/web", web.SPIFFEID.String())
	assert.Equal(t, "spiffe://example.org/node/n1", web.ParentID.String())
	assert.Equal(t, []attest.Selector{{Type: "unix", Value: "uid:1000"}}, web.Selectors)
	assert.Equal(t, 600*time.Second, web.X509SVIDTTL)
	assert.Zero(t, web.JWTSVIDTTL)
	assert.Equal(t, []string{"web.example.org"}, web.DNSNames)
	assert.Empty(t, web.FederatesWith)
}

// TestEntryCreateFromSPIREEntryShowFailures breaks the fields of SPIRE's
// API form: each bad entry fails on its own, naming the field.
func TestEntryCreateFromSPIREEntryShowFailures(t *testing.T) {
	s := startServer(t)
	sel := `"selectors": [{"type": "unix", "value": "uid:1"}]`
	parent := `"parent_id": {"trust_domain": "example.org", "path": "/node"}`
	stdin := `{"entries": [` + strings.Join([]string{
		`{"spiffe_id": {"trust_domain": "example.org", "path": "/ok"}, ` + parent + `, ` + sel + `, "expires_at": "0", "id": "", "next": 1}`,
		`{"spiffe_id": {"trust_domain": "example.org", "path": "a"}, ` + parent + `, ` + sel + `}`,
		`{"spiffe_id": {"trust_domain": "example.org", "pth": "/a"}, ` + parent + `, ` + sel + `}`,
		`{"spiffe_id": {"trust_domain": "", "path": "/a"}, ` + parent + `, ` + sel + `}`,
		`{"spiffe_id": {"trust_domain": "example.org", "path": "/b"}, "parent_id": 7, ` + sel + `}`,
		`{"spiffe_id": {"trust_domain": "example.org", "path": "/c"}, ` + parent + `, ` + sel + `, "expires_at": "1796563644"}`,
		`{"spiffe_id": {"trust_domain": "example.org", "path": "/d"}, ` + parent + `, ` + sel + `, "expires_at": 5}`,
		`{"spiffe_id": {"trust_domain": "example.org", "path": "/e"}, ` + parent + `, ` + sel + `, "expires_at": "soon"}`,
		`{"spiffe_id": {"trust_domain": "example.org", "path": "/f"}, ` + parent + `, ` + sel + `, "id": "4a7b3b2e-5f6e-4d1b-9a33-0c2f1e9d8b70", "entry_id": "4a7b3b2e5f6e4d1b9a330c2f1e9d8b71"}`,
		`{"spiffe_id": {"trust_domain": "example.org", "path": "/g"}, ` + parent + `, ` + sel + `, "expires_at": null, "id": "4a7b3b2e-5f6e-4d1b-9a33-0c2f1e9d8b70"}`,
		`{"spiffe_id": {"trust_domain": "example.org", "path": "/h"}, ` + parent + `, ` + sel + `, "expires_at": "4102444800", "entryExpiry": 4102444800}`,
		`{"spiffe_id": {"trust_domain": "example.org", "path": "/i"}, ` + parent + `, ` + sel + `, "expires_at": "4102444800", "entryExpiry": 4102444801}`,
		`{"spiffe_id": {"trust_domain": "example.org", "path": "/j"}, ` + parent + `, ` + sel + `, "entryExpiry": -1}`,
	}, ",\n") + `], "next_page_token": ""}`
	// The first entry has an unknown key: the whole file is refused, as
	// with every misspelt key.
	r := s.run(t, stdin, "entry", "create", "-data", "-")
	assert.Equal(t, ExitFailure, r.code)
	assert.Contains(t, r.stderr, `unknown field "next"`)

	stdin = strings.Replace(stdin, `, "next": 1`, "", 1)
	r = s.run(t, stdin, "entry", "create", "-data", "-")
	assert.Equal(t, ExitFailure, r.code)
	assert.Equal(t, "spiffe-server entry create: 10 of 13 entries not created\n", r.stderr)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	require.Len(t, lines, 13, r.stdout)
	assert.Regexp(t, createdLine+`spiffe://example\.org/ok$`, lines[0])
	for i, want := range []string{
		`error: entry 2 (spiffe://example.orga): spiffe_id: path "a" does not start with /`,
		`error: entry 3 (no SPIFFE ID): spiffe_id: a SPIFFE ID is "spiffe://..." or {"trust_domain": ..., "path": ...}: json: unknown field "pth"`,
		`error: entry 4 (spiffe:///a): spiffe_id: `,
		`error: entry 5 (spiffe://example.org/b): parent_id: a SPIFFE ID is`,
		`error: entry 6 (spiffe://example.org/c): admin: entry expiry 2026-12-06T13:27:24Z (1796563644 seconds since the epoch) has passed`,
		`error: entry 7 (spiffe://example.org/d): admin: entry expiry 1970-01-01T00:00:05Z (5 seconds since the epoch) has passed`,
		`error: entry 8 (spiffe://example.org/e): expires_at: want an integer, not soon`,
		`error: entry 9 (spiffe://example.org/f): entry_id "4a7b3b2e5f6e4d1b9a330c2f1e9d8b71" and id "4a7b3b2e-5f6e-4d1b-9a33-0c2f1e9d8b70" differ`,
	} {
		assert.True(t, strings.HasPrefix(lines[i+1], want), "line %d: %q, want prefix %q", i+2, lines[i+1], want)
	}
	assert.Equal(t, "4a7b3b2e5f6e4d1b9a330c2f1e9d8b70 spiffe://example.org/g", lines[9])
	assert.Regexp(t, createdLine+`spiffe://example\.org/h$`, lines[10])
	assert.Equal(t, `error: entry 12 (spiffe://example.org/i): entryExpiry 4102444801 and expires_at 4102444800 differ`, lines[11])
	assert.Equal(t, `error: entry 13 (spiffe://example.org/j): entryExpiry: -1 is before the epoch; 0 means no expiry`, lines[12])
	stored, err := s.store.Get(t.Context(), strings.Fields(lines[10])[0])
	require.NoError(t, err)
	assert.Equal(t, time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), stored.ExpiresAt, "SPIRE's expires_at and entryExpiry are seconds since the epoch")
	g, err := s.store.Get(t.Context(), "4a7b3b2e5f6e4d1b9a330c2f1e9d8b70")
	require.NoError(t, err)
	assert.True(t, g.ExpiresAt.IsZero(), "a null expires_at is none")
}

// TestSPIREParent names the parents that only SPIRE's server and agents
// hold, and no others.
func TestSPIREParent(t *testing.T) {
	for id, want := range map[string]bool{
		"spiffe://example.org/spire/server":             true,
		"spiffe://example.org/spire/agent/join_token/x": true,
		"spiffe://example.org/spire/agent":              false,
		"spiffe://example.org/spire/serverless":         false,
		"spiffe://example.org/spire/agentx/y":           false,
		"spiffe://example.org/spiffekit/server":         false,
		"spiffe://example.org/node/n1":                  false,
	} {
		assert.Equal(t, want, spireParent(spiffeid.RequireFromString(id)), id)
	}
}
