package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin/adminserver"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

type tokens struct{ ttl time.Duration }

func (t *tokens) GenerateToken(_ context.Context, ttl time.Duration, _ spiffeid.ID) (string, time.Time, error) {
	t.ttl = ttl
	return "secret-" + rand.Text(), time.Now().Add(ttl), nil
}

type server struct {
	socket string
	store  *memstore.Store
	ca     *testca.CA
	tokens *tokens
}

func startServer(t *testing.T, allowed ...int) *server {
	t.Helper()
	return startServerWith(t, nil, allowed...)
}

// startServerWith is startServer whose admin configuration modify changes,
// when not nil.
func startServerWith(t *testing.T, modify func(*adminserver.Config), allowed ...int) *server {
	t.Helper()
	s := &server{
		socket: filepath.Join(t.TempDir(), "admin.sock"),
		store:  memstore.New(memstore.Config{}),
		ca:     testca.New(t, td),
		tokens: &tokens{},
	}
	own := spiffebundle.FromX509Bundle(s.ca.X509Bundle())
	cfg := adminserver.Config{
		TrustDomain: td,
		Entries:     s.store,
		Agents:      s.store,
		Bundles:     s.store,
		Tokens:      s.tokens,
		Bundle:      func() *spiffebundle.Bundle { return own },
		AllowedUIDs: allowed,
	}
	if modify != nil {
		modify(&cfg)
	}
	srv, err := adminserver.New(cfg)
	require.NoError(t, err)
	lis, err := adminserver.ListenUnix(s.socket)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return s
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs the command line args against the server, with stdin.
func (s *server) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	if len(args) >= 2 {
		args = append(args[:2:2], append([]string{"-admin-socket", s.socket}, args[2:]...)...)
	}
	var out, errb bytes.Buffer
	code := adminCommand(t.Context(), args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func (s *server) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := s.run(t, "", args...)
	require.Equal(t, ExitOK, r.code, "stderr: %s", r.stderr)
	assert.Empty(t, r.stderr)
	return r.stdout
}

var entryIDLine = regexp.MustCompile(`(?m)^Entry ID:\s+(\S+)$`)

func TestEntryCommands(t *testing.T) {
	s := startServer(t)

	out := s.ok(t, "entry", "create",
		"-parent-id", "spiffe://example.org/agent/node1",
		"-spiffe-id", "spiffe://example.org/web",
		"-selector", "unix:uid:1000", "-selector", "unix:gid:50",
		"-x509-ttl", "1h", "-jwt-ttl", "5m",
		"-dns", "web.example.org", "-dns", "www.example.org",
		"-federates-with", "other.org",
		"-hint", "front")
	assert.True(t, strings.HasPrefix(out, "Entry ID: "), out)
	m := entryIDLine.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	id := m[1]
	for _, want := range []string{
		"SPIFFE ID:      spiffe://example.org/web",
		"Parent ID:      spiffe://example.org/agent/node1",
		"Revision:       1",
		"X509-SVID TTL:  1h0m0s",
		"JWT-SVID TTL:   5m0s",
		"Selector:       unix:gid:50\nSelector:       unix:uid:1000",
		"DNS name:       web.example.org\nDNS name:       www.example.org",
		"FederatesWith:  other.org",
		"Hint:           front",
	} {
		assert.Contains(t, out, want)
	}
	stored, err := s.store.Get(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, time.Hour, stored.X509SVIDTTL)

	show := s.ok(t, "entry", "show", "-entry-id", id)
	assert.Equal(t, out, show)

	// update changes only the fields given.
	upd := s.ok(t, "entry", "update", "-entry-id", id, "-selector", "unix:uid:2000", "-x509-ttl", "2h")
	assert.Contains(t, upd, "Revision:       2")
	assert.Contains(t, upd, "Selector:       unix:uid:2000")
	assert.NotContains(t, upd, "uid:1000")
	assert.Contains(t, upd, "X509-SVID TTL:  2h0m0s")
	assert.Contains(t, upd, "JWT-SVID TTL:   5m0s", "untouched fields stay")
	assert.Contains(t, upd, "Hint:           front")

	_ = s.ok(t, "entry", "create", "-parent-id", "spiffe://example.org/agent/node2",
		"-spiffe-id", "spiffe://example.org/db", "-selector", "unix:uid:3000")

	list := s.ok(t, "entry", "list")
	assert.True(t, strings.HasPrefix(list, "Found 2 entries\n"), list)
	assert.Len(t, entryIDLine.FindAllString(list, -1), 2)

	filtered := s.ok(t, "entry", "list", "-spiffe-id", "spiffe://example.org/db")
	assert.True(t, strings.HasPrefix(filtered, "Found 1 entry\n"), filtered)
	assert.Contains(t, filtered, "spiffe://example.org/db")
	assert.Contains(t, s.ok(t, "entry", "list", "-parent-id", "spiffe://example.org/agent/node1"), "Found 1 entry")
	assert.Contains(t, s.ok(t, "entry", "list", "-selector", "unix:uid:2000"), "spiffe://example.org/web")
	assert.Contains(t, s.ok(t, "entry", "list", "-selector", "unix:uid:2000", "-selector", "unix:uid:3000", "-match-selectors", "any"), "Found 2 entries")
	assert.Contains(t, s.ok(t, "entry", "list", "-federates-with", "other.org"), "Found 1 entry")
	assert.Contains(t, s.ok(t, "entry", "list", "-hint", "nothing"), "Found 0 entries")

	assert.Equal(t, "Deleted entry "+id+"\n", s.ok(t, "entry", "delete", "-entry-id", id))
	r := s.run(t, "", "entry", "show", "-entry-id", id)
	assert.Equal(t, ExitFailure, r.code)
	assert.Equal(t, `spiffe-server entry show: admin: registry: entry "`+id+"\" not found\n", r.stderr)
	assert.Empty(t, r.stdout)
}

func TestEntryFailures(t *testing.T) {
	s := startServer(t)
	create := []string{"entry", "create", "-parent-id", "spiffe://example.org/agent", "-spiffe-id", "spiffe://example.org/a", "-selector", "a:b"}
	s.ok(t, create...)

	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"duplicate", create, ExitFailure, "admin: registry: similar entry already exists: spiffe://example.org/a"},
		{"foreign trust domain", []string{"entry", "create", "-parent-id", "spiffe://example.org/agent", "-spiffe-id", "spiffe://other.org/a", "-selector", "a:b"}, ExitFailure, `admin: entry SPIFFE ID "spiffe://other.org/a" is not in trust domain "example.org": registry: invalid argument`},
		{"missing spiffe id", []string{"entry", "create", "-parent-id", "spiffe://example.org/agent", "-selector", "a:b"}, ExitUsage, "-spiffe-id is required"},
		{"missing parent id", []string{"entry", "create", "-spiffe-id", "spiffe://example.org/a", "-selector", "a:b"}, ExitUsage, "-parent-id is required"},
		{"missing selector", []string{"entry", "create", "-spiffe-id", "spiffe://example.org/a", "-parent-id", "spiffe://example.org/agent"}, ExitUsage, "-selector is required"},
		{"malformed id", []string{"entry", "create", "-spiffe-id", "example.org/a"}, ExitUsage, `invalid value "example.org/a" for flag -spiffe-id: spiffeid: scheme is missing or invalid`},
		{"malformed selector", []string{"entry", "create", "-selector", "nocolon"}, ExitUsage, `invalid value "nocolon" for flag -selector: attest: invalid selector: "nocolon" has no ':' between type and value`},
		{"malformed trust domain", []string{"entry", "create", "-federates-with", "A B"}, ExitUsage, `invalid value "A B" for flag -federates-with: spiffeid: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores`},
		{"malformed ttl", []string{"entry", "create", "-x509-ttl", "soon"}, ExitUsage, `invalid value "soon" for flag -x509-ttl: want a duration such as 1h30m, or a number of seconds: time: invalid duration "soon"`},
		{"negative ttl", []string{"entry", "create", "-x509SVIDTTL", "-5"}, ExitUsage, `invalid value "-5" for flag -x509SVIDTTL: -5 seconds is out of range`},
		{"unknown flag", []string{"entry", "list", "-nope"}, ExitUsage, "flag provided but not defined: -nope"},
		{"admin entries", []string{"entry", "create", "-admin"}, ExitUsage, "-admin: an entry grants an identity, never the right to administer the server"},
		{"stored SVIDs", []string{"entry", "create", "-storeSVID"}, ExitUsage, "-storeSVID: spiffekit has no SVIDStore plugins"},
		{"negative entry expiry", []string{"entry", "create", "-entryExpiry", "-5"}, ExitUsage, `invalid value "-5" for flag -entryExpiry: -5 is before the epoch; 0 means no expiry`},
		{"malformed entry expiry", []string{"entry", "update", "-entry-id", "x", "-entry-expiry", "tomorrow"}, ExitUsage, `invalid value "tomorrow" for flag -entry-expiry: want seconds since the epoch`},
		{"entry expiry passed", []string{"entry", "create", "-spiffeID", "spiffe://example.org/late", "-parentID", "spiffe://example.org/agent",
			"-selector", "unix:uid:1", "-entryExpiry", "1700000000"}, ExitFailure,
			"admin: entry expiry 2023-11-14T22:13:20Z (1700000000 seconds since the epoch) has passed; give a time to come, or none"},
		{"entry expiry past year 9999", []string{"entry", "create", "-entryExpiry", "253402300800"}, ExitUsage,
			`invalid value "253402300800" for flag -entryExpiry: 253402300800 is after the year 9999 (at most 253402300799)`},
		{"show by ID and filter", []string{"entry", "show", "-entryID", "x", "-spiffeID", "spiffe://example.org/a"}, ExitUsage, "-entry-id cannot be combined with filters"},
		{"bad output", []string{"entry", "list", "-output", "yaml"}, ExitUsage, `-output must be pretty or json, not "yaml"`},
		{"positional argument", []string{"entry", "list", "extra"}, ExitUsage, `unexpected argument "extra"`},
		{"update without id", []string{"entry", "update"}, ExitUsage, "-entry-id is required"},
		{"delete without id", []string{"entry", "delete"}, ExitUsage, "-entry-id is required"},
		{"update unknown", []string{"entry", "update", "-entry-id", "nope", "-hint", "x"}, ExitFailure, `admin: registry: entry "nope" not found`},
		{"delete unknown", []string{"entry", "delete", "-entry-id", "nope"}, ExitFailure, `admin: registry: entry "nope" not found`},
		{"bad match mode", []string{"entry", "list", "-selector", "a:b", "-match-selectors", "most"}, ExitUsage, `-match-selectors: admin: unknown match mode "most" (want exact, subset, superset or any): registry: invalid argument`},
		{"invalid update", []string{"entry", "update", "-entry-id", "x", "-selector", "a:b"}, ExitFailure, `admin: registry: entry "x" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.run(t, "", tt.args...)
			assert.Equal(t, tt.code, r.code, r.stderr)
			assert.Contains(t, r.stderr, tt.stderr)
			assert.Empty(t, r.stdout)
			name := "spiffe-server " + tt.args[0] + " " + tt.args[1]
			assert.True(t, strings.HasPrefix(r.stderr, name+": "), r.stderr)
			if tt.code == ExitFailure {
				assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
			} else {
				// The problem, then where to find help.
				assert.Equal(t, 2, strings.Count(r.stderr, "\n"), r.stderr)
				assert.Contains(t, r.stderr, `Run "`+name+` -h" for help.`)
			}
		})
	}
}

func TestBundleCommands(t *testing.T) {
	s := startServer(t)

	pem := s.ok(t, "bundle", "show")
	xb, err := x509bundle.Parse(td, []byte(pem))
	require.NoError(t, err)
	assert.True(t, xb.Equal(s.ca.X509Bundle()))

	doc := s.ok(t, "bundle", "show", "-format", "spiffe")
	sb, err := spiffebundle.Parse(td, []byte(doc))
	require.NoError(t, err)
	assert.Equal(t, s.ca.X509Bundle().X509Authorities(), sb.X509Authorities())

	other := testca.New(t, spiffeid.RequireTrustDomainFromString("other.org"))
	otherDoc, err := spiffebundle.FromX509Bundle(other.X509Bundle()).Marshal()
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "other.json")
	require.NoError(t, os.WriteFile(file, otherDoc, 0o600))

	assert.Equal(t, "Bundle of other.org set\n", s.ok(t, "bundle", "set", "-id", "other.org", "-path", file))

	third := testca.New(t, spiffeid.RequireTrustDomainFromString("third.org"))
	thirdDoc, err := spiffebundle.FromX509Bundle(third.X509Bundle()).Marshal()
	require.NoError(t, err)
	r := s.run(t, string(thirdDoc), "bundle", "set", "-id", "third.org")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Equal(t, "Bundle of third.org set\n", r.stdout)

	list := s.ok(t, "bundle", "list")
	lines := strings.Split(strings.TrimSpace(list), "\n")
	require.Len(t, lines, 2)
	assert.True(t, strings.HasPrefix(lines[0], "other.org\tupdated "), list)
	assert.True(t, strings.HasPrefix(lines[1], "third.org\tupdated "), list)

	fed := s.ok(t, "bundle", "show", "-id", "other.org")
	fxb, err := x509bundle.Parse(other.TrustDomain(), []byte(fed))
	require.NoError(t, err)
	assert.True(t, fxb.Equal(other.X509Bundle()))
	assert.JSONEq(t, string(otherDoc), s.ok(t, "bundle", "show", "-id", "other.org", "-format", "spiffe"))

	assert.Equal(t, "Bundle of other.org deleted\n", s.ok(t, "bundle", "delete", "-id", "other.org"))

	tests := []struct {
		name, stdin string
		args        []string
		code        int
		stderr      string
	}{
		{"own trust domain", string(otherDoc), []string{"bundle", "set", "-id", "example.org"}, ExitFailure, "a trust domain's own bundle can never be overwritten through federation"},
		{"malformed document", "{", []string{"bundle", "set", "-id", "four.org"}, ExitFailure, "invalid"},
		{"empty stdin", "", []string{"bundle", "set", "-id", "four.org"}, ExitFailure, "stdin is empty"},
		{"missing file", "", []string{"bundle", "set", "-id", "four.org", "-path", filepath.Join(t.TempDir(), "none")}, ExitFailure, "no such file"},
		{"too large", strings.Repeat(" ", registry.MaxBundleDocument+1), []string{"bundle", "set", "-id", "four.org"}, ExitFailure, "holds more than"},
		{"set without id", "", []string{"bundle", "set"}, ExitUsage, "-id is required"},
		{"delete without id", "", []string{"bundle", "delete"}, ExitUsage, "-id is required"},
		{"delete unknown", "", []string{"bundle", "delete", "-id", "other.org"}, ExitFailure, "not found"},
		{"show unknown", "", []string{"bundle", "show", "-id", "other.org"}, ExitFailure, "not found"},
		{"bad format", "", []string{"bundle", "show", "-format", "der"}, ExitUsage, "-format must be pem or spiffe"},
		{"bad trust domain", "", []string{"bundle", "delete", "-id", "A B"}, ExitUsage, "invalid value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.run(t, tt.stdin, tt.args...)
			assert.Equal(t, tt.code, r.code, r.stderr)
			assert.Contains(t, r.stderr, tt.stderr)
			assert.Empty(t, r.stdout)
		})
	}
}

func TestTokenGenerate(t *testing.T) {
	s := startServer(t)
	out := s.ok(t, "token", "generate")
	assert.Regexp(t, `^secret-\S+\n$`, out, "the token alone")
	assert.Equal(t, 10*time.Minute, s.tokens.ttl, "default TTL")

	out = s.ok(t, "token", "generate", "-ttl", "1h", "-spiffe-id", "spiffe://example.org/agent/n1")
	assert.Regexp(t, `^secret-\S+\n$`, out)
	assert.Equal(t, time.Hour, s.tokens.ttl)

	for _, ttl := range []string{"0s", "1ns", "999ms"} {
		r := s.run(t, "", "token", "generate", "-ttl", ttl)
		assert.Equal(t, ExitUsage, r.code, ttl)
		assert.Contains(t, r.stderr, "-ttl must be at least 1s", ttl)
	}
	r := s.run(t, "", "token", "generate", "-spiffe-id", "spiffe://example.org/spiffekit/agent/mine")
	assert.Equal(t, ExitFailure, r.code)
	assert.Contains(t, r.stderr, `token SPIFFE ID "spiffe://example.org/spiffekit/agent/mine" is reserved for the server and its agents`)
	r = s.run(t, "", "token", "generate", "-spiffe-id", "spiffe://other.org/agent")
	assert.Equal(t, ExitFailure, r.code)
	assert.Contains(t, r.stderr, "not in trust domain")
}

func TestAgentCommands(t *testing.T) {
	s := startServer(t)
	ctx := t.Context()
	n1 := spiffeid.RequireFromPath(td, "/agent/join_token/one")
	n2 := spiffeid.RequireFromPath(td, "/agent/join_token/two")
	for _, id := range []spiffeid.ID{n1, n2} {
		_, err := s.store.PutAgent(ctx, registry.Agent{
			ID: id, AttestorType: "join_token", SerialNumber: "1f",
			Selectors: []attest.Selector{{Type: "join_token", Value: "x"}},
			ExpiresAt: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC),
		})
		require.NoError(t, err)
	}
	list := s.ok(t, "agent", "list")
	assert.True(t, strings.HasPrefix(list, "Found 2 attested agents\n"), list)
	assert.Contains(t, list, "SPIFFE ID:      "+n1.String())
	assert.Contains(t, list, "Attestor:       join_token")
	assert.Contains(t, list, "Expires at:     2031-01-01T00:00:00Z")
	assert.Contains(t, list, "Selector:       join_token:x")

	one := s.ok(t, "agent", "list", "-spiffe-id", n2.String())
	assert.Contains(t, one, n2.String())
	assert.NotContains(t, one, n1.String())

	assert.Equal(t, "Banned agent "+n1.String()+"\n", s.ok(t, "agent", "ban", "-spiffe-id", n1.String()))
	a, err := s.store.GetAgent(ctx, n1)
	require.NoError(t, err)
	assert.True(t, a.Banned)
	assert.Contains(t, s.ok(t, "agent", "list", "-spiffe-id", n1.String()), "Banned:         true")

	assert.Equal(t, "Evicted agent "+n2.String()+"\n", s.ok(t, "agent", "evict", "-spiffe-id", n2.String()))
	_, err = s.store.GetAgent(ctx, n2)
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.True(t, strings.HasPrefix(s.ok(t, "agent", "list"), "Found 1 attested agent\n"))

	for _, args := range [][]string{
		{"agent", "evict", "-spiffe-id", n2.String()},
		{"agent", "ban", "-spiffe-id", n2.String()},
		{"agent", "list", "-spiffe-id", n2.String()},
	} {
		r := s.run(t, "", args...)
		assert.Equal(t, ExitFailure, r.code, args)
		assert.Contains(t, r.stderr, "not found")
	}
	for _, cmd := range []string{"evict", "ban"} {
		r := s.run(t, "", "agent", cmd)
		assert.Equal(t, ExitUsage, r.code)
		assert.Contains(t, r.stderr, "-spiffe-id is required")
	}
}

func TestPermissionDenied(t *testing.T) {
	s := startServer(t, os.Getuid()+4242)
	for _, args := range [][]string{
		{"entry", "list"},
		{"bundle", "show"},
		{"bundle", "list"},
		{"token", "generate"},
		{"agent", "list"},
	} {
		r := s.run(t, "", args...)
		assert.Equal(t, ExitFailure, r.code, args)
		assert.Equal(t, "spiffe-server "+args[0]+" "+args[1]+": admin: permission denied: uid "+strconv.Itoa(os.Getuid())+
			" may not administer this server (run it as root or as the server's user)\n", r.stderr)
		assert.Empty(t, r.stdout)
	}
}

func TestServerNotRunning(t *testing.T) {
	var out, errb bytes.Buffer
	sock := filepath.Join(t.TempDir(), "none.sock")
	code := Admin(t.Context(), []string{"agent", "list", "-admin-socket", sock}, &out, &errb)
	assert.Equal(t, ExitFailure, code)
	assert.Contains(t, errb.String(), "spiffe-server agent list: admin: cannot reach the server at "+sock)
	assert.Equal(t, 1, strings.Count(errb.String(), "\n"))
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		output string // on stdout for ExitOK, else on stderr
	}{
		{"no command", nil, ExitUsage, "Usage: spiffe-server <command>"},
		{"help", []string{"-h"}, ExitOK, "Usage: spiffe-server <command>"},
		{"help word", []string{"help"}, ExitOK, "Usage: spiffe-server <command>"},
		{"run is not an admin command", []string{"run"}, ExitUsage, `unknown command "run"`},
		{"unknown command", []string{"frobnicate"}, ExitUsage, `unknown command "frobnicate"`},
		{"group without subcommand", []string{"entry"}, ExitUsage, "Usage: spiffe-server entry <subcommand>"},
		{"unknown subcommand", []string{"entry", "explode"}, ExitUsage, `unknown command "entry explode"`},
		{"subcommand help", []string{"token", "generate", "-h"}, ExitOK, "-admin-socket path"},
		{"entry create help", []string{"entry", "create", "--help"}, ExitOK, "With -data FILE"},
		// A lifetime's value is called a duration, in every command.
		{"token TTL", []string{"token", "generate", "-h"}, ExitOK, "-ttl duration\n"},
		{"entry TTLs", []string{"entry", "create", "-h"}, ExitOK, "-jwt-ttl duration\n"},
		{"entry update TTLs", []string{"entry", "update", "-h"}, ExitOK, "-x509-ttl duration\n"},
		{"mint TTL", []string{"x509", "mint", "-h"}, ExitOK, "-ttl duration\n"},
		{"JWT mint TTL", []string{"jwt", "mint", "-h"}, ExitOK, "-ttl duration\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Admin(t.Context(), tt.args, &out, &errb)
			assert.Equal(t, tt.code, code)
			if tt.code == ExitOK {
				assert.Contains(t, out.String(), tt.output)
				assert.Empty(t, errb.String())
			} else {
				assert.Contains(t, errb.String(), tt.output)
				assert.Empty(t, out.String())
			}
		})
	}
}
