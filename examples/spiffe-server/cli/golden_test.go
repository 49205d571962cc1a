package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/registry"
	issuing "github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var update = flag.Bool("update", false, "write the golden files of -output json")

// volatile are the fields whose values change from run to run; the golden
// files hold a placeholder for them, so that they pin the names and types
// of every field.
var volatile = map[string]bool{
	"entry_id": true, "created_at": true, "updated_at": true, "expires_at": true,
	"token": true, "document": true, "authority_id": true,
	"x509_svid": true, "private_key": true, "root_cas": true,
	"x509_svid_path": true, "private_key_path": true, "root_cas_path": true, "path": true,
	"bundle_endpoint_url": true, "trust_domain_bundle": true,
	"launch_id": true, "handle": true, "x509_authorities": true, "jwt_authorities": true, "wit_authorities": true,
}

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// normalize replaces the values of the volatile fields of a JSON document
// with "<field>", after checking that they have their type, and indents
// it.
func normalize(t *testing.T, out string) string {
	t.Helper()
	require.True(t, strings.HasSuffix(out, "}\n") && strings.Count(out, "\n") == 1, "one line of JSON: %q", out)
	var v any
	require.NoError(t, json.Unmarshal([]byte(out), &v), out)
	var walk func(v any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			if entries, ok := v["entries"].([]any); ok {
				// Listed by entry ID, which is random.
				slices.SortFunc(entries, func(a, b any) int {
					return strings.Compare(fmt.Sprint(a.(map[string]any)["spiffe_id"]), fmt.Sprint(b.(map[string]any)["spiffe_id"]))
				})
			}
			for k, x := range v {
				if !volatile[k] {
					v[k] = walk(x)
					continue
				}
				switch k {
				case "document", "trust_domain_bundle":
					assert.IsType(t, map[string]any{}, x, "a bundle document is a JSON object")
				case "jwt_authorities", "wit_authorities":
					jwks, ok := x.(map[string]any)
					if assert.True(t, ok, "%s is a JWK Set, a JSON object", k) {
						assert.NotEmpty(t, jwks["keys"], k)
					}
				case "entry_id", "launch_id":
					assert.Regexp(t, hexID, x)
				case "x509_svid", "root_cas", "x509_authorities":
					list, ok := x.([]any)
					if assert.True(t, ok, "%s is a list", k) {
						assert.NotEmpty(t, list, k)
						for _, c := range list {
							assert.IsType(t, "", c, k)
						}
					}
				case "created_at", "updated_at", "expires_at":
					if secs, ok := x.(float64); ok && k == "expires_at" {
						// An entry's: seconds since the epoch, 0 for none.
						assert.Equal(t, float64(int64(secs)), secs, "%s is whole seconds", k)
						if secs == 0 {
							continue
						}
						v[k] = "<expires_at seconds>"
						continue
					}
					s, _ := x.(string)
					_, err := time.Parse(time.RFC3339Nano, s)
					assert.NoError(t, err, "%s: %v", k, x)
					assert.True(t, strings.HasSuffix(s, "Z"), "%s in UTC: %s", k, s)
				default:
					assert.IsType(t, "", x, k)
				}
				v[k] = "<" + k + ">"
			}
		case []any:
			for i, x := range v {
				v[i] = walk(x)
			}
		}
		return v
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	require.NoError(t, enc.Encode(walk(v)))
	return b.String()
}

// golden compares the normalized output with testdata/json/name.json, or
// writes it there with -update.
func golden(t *testing.T, name, out string) {
	t.Helper()
	got := normalize(t, out)
	path := filepath.Join("testdata", "json", name+".json")
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run the test with -update to write it")
	assert.Equal(t, string(want), got, "the -output json of %s changed: fields may be added, never renamed or removed (golden file %s)", name, path)
}

// TestJSONOutput runs every admin command with -output json and checks its
// output against a golden file: the field names are an interface scripts
// depend on.
func TestJSONOutput(t *testing.T) {
	s := startServer(t)
	check := func(name string, code int, stdin string, args ...string) string {
		t.Helper()
		r := s.run(t, stdin, append(args, "-output", "json")...)
		require.Equal(t, code, r.code, "%s: %s", name, r.stderr)
		golden(t, name, r.stdout)
		return r.stdout
	}
	out := check("entry_create", ExitOK, "", "entry", "create", "-parentID", "spiffe://example.org/agent/node1",
		"-spiffeID", "spiffe://example.org/web", "-selector", "unix:uid:1000", "-selector", "unix:gid:50",
		"-x509SVIDTTL", "3600", "-jwtSVIDTTL", "300", "-dns", "web.example.org", "-federatesWith", "spiffe://other.org", "-hint", "front",
		"-entryExpiry", fmt.Sprint(time.Now().Add(24*time.Hour).Unix()))
	var created entryJSON
	require.NoError(t, json.Unmarshal([]byte(out), &created))
	id := created.EntryID

	check("entry_create_defaults", ExitOK, "", "entry", "create", "-parent-id", "spiffe://example.org/agent/node2",
		"-spiffe-id", "spiffe://example.org/db", "-selector", "unix:uid:2000")
	check("entry_create_data", ExitFailure, `{"entries": [
		{"spiffe_id": "spiffe://example.org/batch", "parent_id": "spiffe://example.org/agent/node1", "selectors": [{"type": "unix", "value": "uid:3000"}]},
		{"spiffe_id": "spiffe://example.org/batch", "parent_id": "spiffe://example.org/agent/node1", "selectors": [{"type": "unix", "value": "uid:3000"}]}]}`,
		"entry", "create", "-data", "-")
	check("entry_update", ExitOK, "", "entry", "update", "-entryID", id, "-hint", "back")
	check("entry_show", ExitOK, "", "entry", "show", "-entryID", id)
	check("entry_show_filtered", ExitOK, "", "entry", "show", "-spiffeID", "spiffe://example.org/db")
	check("entry_list", ExitOK, "", "entry", "list")
	check("entry_list_empty", ExitOK, "", "entry", "list", "-hint", "none")
	check("entry_count", ExitOK, "", "entry", "count")
	check("entry_delete", ExitOK, "", "entry", "delete", "-entryID", id)

	check("token_generate", ExitOK, "", "token", "generate", "-ttl", "600")

	n1 := spiffeid.RequireFromPath(td, "/spiffekit/agent/join_token/one")
	_, err := s.store.PutAgent(t.Context(), registry.Agent{ID: n1, AttestorType: "join_token", SerialNumber: "1f",
		Selectors: []attest.Selector{{Type: "join_token", Value: "id:one"}}, ExpiresAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	check("agent_list", ExitOK, "", "agent", "list")
	check("agent_show", ExitOK, "", "agent", "show", "-spiffeID", n1.String())
	check("agent_count", ExitOK, "", "agent", "count")
	check("agent_ban", ExitOK, "", "agent", "ban", "-spiffeID", n1.String())
	check("agent_evict", ExitOK, "", "agent", "evict", "-spiffeID", n1.String())

	other := testca.New(t, spiffeid.RequireTrustDomainFromString("other.org"))
	doc, err := spiffebundle.FromX509Bundle(other.X509Bundle()).Marshal()
	require.NoError(t, err)
	check("bundle_show", ExitOK, "", "bundle", "show")
	check("bundle_set", ExitOK, string(doc), "bundle", "set", "-id", "other.org")
	check("bundle_show_federated", ExitOK, "", "bundle", "show", "-id", "other.org")
	check("bundle_list", ExitOK, "", "bundle", "list")
	check("bundle_delete", ExitOK, "", "bundle", "delete", "-id", "other.org")

	r := healthcheckAt(t, s.socket, "-output", "json")
	require.Equal(t, ExitOK, r.code, r.stderr)
	golden(t, "healthcheck", r.stdout)

	socket := startCA(t)
	r = runAt(t, socket, "authority", "list", "-output", "json")
	require.Equal(t, ExitOK, r.code, r.stderr)
	golden(t, "authority_list", r.stdout)
	r = runAt(t, socket, "authority", "x509", "prepare", "-output", "json")
	require.Equal(t, ExitOK, r.code, r.stderr)
	golden(t, "authority_prepare", r.stdout)

	socket = startCAWith(t, func(c *issuing.Config) { c.WITSVIDs = true })
	r = runAt(t, socket, "authority", "wit", "show", "-output", "json")
	require.Equal(t, ExitOK, r.code, r.stderr)
	golden(t, "authority_wit_show", r.stdout)
	r = runAt(t, socket, "authority", "wit", "prepare", "-output", "json")
	require.Equal(t, ExitOK, r.code, r.stderr)
	golden(t, "authority_wit_prepare", r.stdout)
}

// TestJSONOutputIsAnEntryFile: what entry show -output json writes, entry
// create -data reads, into another server: the same entries, with the same
// IDs; into the same server again, every entry fails, being there.
func TestJSONOutputIsAnEntryFile(t *testing.T) {
	from, to := startServer(t), startServer(t)
	from.ok(t, "entry", "create", "-parentID", "spiffe://example.org/agent/node1", "-spiffeID", "spiffe://example.org/web",
		"-selector", "unix:uid:1000", "-x509SVIDTTL", "90m", "-jwtSVIDTTL", "1.5s", "-dns", "web.example.org",
		"-federatesWith", "other.org", "-hint", "front")
	from.ok(t, "entry", "create", "-parentID", "spiffe://example.org/agent/node2", "-spiffeID", "spiffe://example.org/db",
		"-selector", "unix:uid:2000", "-selector", "x509pop:subject:cn:db")
	exported := from.ok(t, "entry", "show", "-output", "json")
	r := to.run(t, exported, "entry", "create", "-data", "-", "-output", "json")
	require.Equal(t, ExitOK, r.code, r.stderr)

	strip := func(entries []registry.Entry) []registry.Entry {
		for i := range entries {
			entries[i].CreatedAt, entries[i].UpdatedAt = time.Time{}, time.Time{}
		}
		return entries
	}
	a, _, err := from.store.List(t.Context(), registry.Filter{}, registry.Page{})
	require.NoError(t, err)
	b, _, err := to.store.List(t.Context(), registry.Filter{}, registry.Page{})
	require.NoError(t, err)
	require.Len(t, b, 2)
	assert.Equal(t, strip(a), strip(b))

	r = from.run(t, exported, "entry", "create", "-data", "-")
	assert.Equal(t, ExitFailure, r.code)
	assert.Equal(t, 2, strings.Count(r.stdout, "error: entry "), r.stdout)
}

// TestEntryCreateChosenID: -entryID names the new entry, in spiffekit's
// form or as a UUID; a taken or malformed ID fails the command.
func TestEntryCreateChosenID(t *testing.T) {
	s := startServer(t)
	create := func(id, path string) result {
		return s.run(t, "", "entry", "create", "-entryID", id, "-parentID", "spiffe://example.org/agent",
			"-spiffeID", "spiffe://example.org"+path, "-selector", "unix:uid:1")
	}
	hexID := registry.NewEntryID()
	r := create(hexID, "/a")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.True(t, strings.HasPrefix(r.stdout, "Entry ID:       "+hexID+"\n"), r.stdout)
	r = create("0F8FAD5B-D9CB-469F-A165-70867728950E", "/b")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.True(t, strings.HasPrefix(r.stdout, "Entry ID:       0f8fad5bd9cb469fa16570867728950e\n"), r.stdout)
	assert.Contains(t, s.ok(t, "entry", "show", "-entryID", "0f8fad5b-d9cb-469f-a165-70867728950e"), "spiffe://example.org/b",
		"the UUID finds the entry too")

	r = create(hexID, "/c")
	assert.Equal(t, ExitFailure, r.code)
	assert.Contains(t, r.stderr, "entry ID "+hexID+" is taken")
	r = create("my-entry", "/d")
	assert.Equal(t, ExitFailure, r.code)
	assert.Contains(t, r.stderr, `entry ID "my-entry" is not 32 lowercase hexadecimal digits`)
	r = s.run(t, "", "entry", "create", "-entryID", hexID, "-data", "-")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.stderr, "-data cannot be combined with the flags of one entry")
}
