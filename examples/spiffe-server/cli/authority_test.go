package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca/keymanager"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	issuing "github.com/spiffekit/spiffekit/server"
)

// startCA runs an issuing server with an in-memory CA and registry until
// the test ends, and returns its admin socket.
func startCA(t *testing.T) string {
	t.Helper()
	return startCAWith(t, func(*issuing.Config) {})
}

// startCAWith is startCA with the configuration changed by mod.
func startCAWith(t *testing.T, mod func(*issuing.Config)) string {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "admin.sock")
	cfg := issuing.Config{
		TrustDomain: td,
		Stores:      issuing.StoresOf(memstore.New(memstore.Config{})),
		KeyManager:  keymanager.NewMemory(),
		ServerID:    "server-a",
		BindAddr:    "127.0.0.1:0",
		AdminSocket: socket,
	}
	mod(&cfg)
	s, err := issuing.New(t.Context(), cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, s.Close())
	})
	return socket
}

// runAt runs the command line args, followed by -admin-socket socket.
func runAt(t *testing.T, socket string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := adminCommand(t.Context(), append(args, "-admin-socket", socket), strings.NewReader(""), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func okAt(t *testing.T, socket string, args ...string) string {
	t.Helper()
	r := runAt(t, socket, args...)
	require.Equal(t, ExitOK, r.code, "stderr: %s", r.stderr)
	assert.Empty(t, r.stderr)
	return r.stdout
}

func authorityFromOutput(t *testing.T, out string) authorityJSON {
	t.Helper()
	var a authorityJSON
	require.NoError(t, json.Unmarshal([]byte(out), &a), out)
	return a
}

func listOutput(t *testing.T, socket string, args ...string) []authorityJSON {
	t.Helper()
	var doc struct {
		Authorities []authorityJSON `json:"authorities"`
	}
	out := okAt(t, socket, append(args, "-output", "json")...)
	require.NoError(t, json.Unmarshal([]byte(out), &doc), out)
	return doc.Authorities
}

func TestAuthorityCommands(t *testing.T) {
	socket := startCA(t)

	out := okAt(t, socket, "authority", "list")
	assert.True(t, strings.HasPrefix(out, "Found 2 authorities\n"), out)
	assert.Contains(t, out, "Kind:           X.509\n")
	assert.Contains(t, out, "Kind:           JWT\n")
	assert.Contains(t, out, "Server:         server-a (this server)\n")
	assert.Equal(t, 2, strings.Count(out, "State:          active\n"))
	assert.NotContains(t, out, "Marked:")

	all := listOutput(t, socket, "authority", "list")
	require.Len(t, all, 2)
	assert.Equal(t, registry.AuthorityX509, all[0].Kind)
	assert.Equal(t, registry.AuthorityJWT, all[1].Kind)
	assert.Equal(t, "server-a", all[0].ServerID)
	assert.True(t, all[0].Local)
	assert.False(t, all[0].ExpiresAt.IsZero())
	first := all[0].AuthorityID

	x509s := listOutput(t, socket, "authority", "x509", "show")
	require.Len(t, x509s, 1)
	assert.Equal(t, first, x509s[0].AuthorityID)
	assert.Contains(t, okAt(t, socket, "authority", "jwt", "show"), "Found 1 JWT authorities\n")

	// The active CA cannot be tainted: the error says what to do instead.
	r := runAt(t, socket, "authority", "x509", "taint", "-authorityID", first)
	assert.Equal(t, ExitFailure, r.code)
	assert.Contains(t, r.stderr, "the active authority cannot be tainted; on its server, prepare and activate another")
	assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)

	out = okAt(t, socket, "authority", "x509", "prepare")
	assert.True(t, strings.HasPrefix(out, "Prepared X.509 authority:\nKind:           X.509\n"), out)
	assert.Contains(t, out, "State:          prepared\n")
	prepared := authorityFromOutput(t, okAt(t, socket, "authority", "x509", "prepare", "-output", "json"))
	assert.Equal(t, registry.AuthorityPrepared, prepared.State, "preparing again replaces the prepared one")

	r = runAt(t, socket, "authority", "x509", "activate", "-authorityID", first)
	assert.Equal(t, ExitFailure, r.code)
	assert.Contains(t, r.stderr, "is active, not prepared")
	out = okAt(t, socket, "authority", "x509", "activate", "-authorityID", prepared.AuthorityID)
	assert.True(t, strings.HasPrefix(out, "Activated X.509 authority:\n"), out)
	assert.Contains(t, out, "Authority ID:   "+prepared.AuthorityID+"\n")

	out = okAt(t, socket, "authority", "x509", "taint", "-authorityID", first)
	assert.True(t, strings.HasPrefix(out, "Tainted X.509 authority:\n"), out)
	assert.Contains(t, out, "State:          old\nExpires at:")
	assert.Contains(t, out, "Marked:         tainted\n")
	assert.NotContains(t, out, "Recorded for server", "the own authority is tainted at once")

	revoked := authorityFromOutput(t, okAt(t, socket, "authority", "x509", "revoke", "-authorityID", first, "-output", "json"))
	assert.True(t, revoked.Revoked)
	assert.Equal(t, first, revoked.AuthorityID)
	assert.Len(t, listOutput(t, socket, "authority", "x509", "show"), 1, "the revoked CA is gone")
	r = runAt(t, socket, "authority", "x509", "revoke", "-authorityID", first)
	assert.Equal(t, ExitFailure, r.code)
	assert.Contains(t, r.stderr, `no X.509 CA "`+first+`" among the authorities of the trust domain's servers`)

	// The JWT key, the same way, without checking the prepared ID.
	okAt(t, socket, "authority", "jwt", "prepare")
	out = okAt(t, socket, "authority", "jwt", "activate")
	assert.True(t, strings.HasPrefix(out, "Activated JWT authority:\nKind:           JWT\n"), out)
	r = runAt(t, socket, "authority", "jwt", "activate")
	assert.Equal(t, ExitFailure, r.code)
	assert.Contains(t, r.stderr, "no prepared JWT key to activate")
}

func TestAuthorityUsage(t *testing.T) {
	socket := startCA(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"group", []string{"authority"}, ExitUsage, "", "Usage: spiffe-server authority <subcommand>"},
		{"kind group", []string{"authority", "x509"}, ExitUsage, "", "Usage: spiffe-server authority x509 <subcommand>"},
		{"unknown subcommand", []string{"authority", "jwt", "retire"}, ExitUsage, "", `unknown command "authority jwt retire"`},
		{"unknown kind", []string{"authority", "ssh", "show"}, ExitUsage, "", `unknown command "authority ssh"`},
		{"WIT group", []string{"authority", "wit"}, ExitUsage, "", "Usage: spiffe-server authority wit <subcommand>"},
		{"WIT taint without ID", []string{"authority", "wit", "taint", "-admin-socket", socket}, ExitUsage, "", "-authorityID is required"},
		{"WIT prepare help", []string{"authority", "wit", "prepare", "-h"}, ExitOK, "Only a server run with -wit-svids has WIT keys", ""},
		{"taint without ID", []string{"authority", "x509", "taint", "-admin-socket", socket}, ExitUsage, "", "-authorityID is required"},
		{"revoke without ID", []string{"authority", "jwt", "revoke", "-admin-socket", socket}, ExitUsage, "", "-authorityID is required"},
		{"bad output", []string{"authority", "list", "-output", "yaml", "-admin-socket", socket}, ExitUsage, "", "-output must be pretty or json"},
		{"bad output of an action", []string{"authority", "x509", "prepare", "-output", "yaml", "-admin-socket", socket}, ExitUsage, "", "-output must be pretty or json"},
		{"help", []string{"authority", "x509", "taint", "-h"}, ExitOK, "-authorityID ID", ""},
		{"top-level usage", []string{"-h"}, ExitOK, "authority x509|jwt|wit show|prepare|activate|taint|revoke", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := adminCommand(t.Context(), tt.args, strings.NewReader(""), &out, &errb)
			assert.Equal(t, tt.code, code, "stderr: %s", errb.String())
			assert.Contains(t, out.String(), tt.stdout)
			assert.Contains(t, errb.String(), tt.stderr)
		})
	}
	var out, errb bytes.Buffer
	adminCommand(t.Context(), []string{"authority"}, strings.NewReader(""), &out, &errb)
	assert.Contains(t, errb.String(), "  x509     show|prepare|activate|taint|revoke: the X.509 CAs\n")
	assert.Contains(t, errb.String(), "  wit      show|prepare|activate|taint|revoke: the WIT keys (servers run with -wit-svids)\n")
}

func TestAuthorityWITCommands(t *testing.T) {
	socket := startCAWith(t, func(c *issuing.Config) { c.WITSVIDs = true })

	out := okAt(t, socket, "authority", "list")
	assert.True(t, strings.HasPrefix(out, "Found 3 authorities\n"), out)
	assert.Contains(t, out, "Kind:           WIT\n")
	all := listOutput(t, socket, "authority", "list")
	require.Len(t, all, 3)
	assert.Equal(t, registry.AuthorityWIT, all[2].Kind, "WIT keys come last")
	first := all[2].AuthorityID

	wits := listOutput(t, socket, "authority", "wit", "show")
	require.Len(t, wits, 1)
	assert.Equal(t, first, wits[0].AuthorityID)
	assert.Equal(t, registry.AuthorityActive, wits[0].State)
	assert.Contains(t, okAt(t, socket, "authority", "wit", "show"), "Found 1 WIT authorities\n")

	// Refused: the active WIT key, and an unknown one.
	r := runAt(t, socket, "authority", "wit", "revoke", "-authorityID", first)
	assert.Equal(t, ExitFailure, r.code)
	assert.Contains(t, r.stderr, "this server's WIT key "+first+" is active: the active authority cannot be revoked")
	assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
	r = runAt(t, socket, "authority", "wit", "taint", "-authorityID", first)
	assert.Equal(t, ExitFailure, r.code)
	assert.Contains(t, r.stderr, "authority wit prepare, then activate")
	r = runAt(t, socket, "authority", "wit", "taint", "-authorityID", "no-such-kid")
	assert.Equal(t, ExitFailure, r.code)
	assert.Contains(t, r.stderr, `no WIT key "no-such-kid" among the authorities of the trust domain's servers`)

	out = okAt(t, socket, "authority", "wit", "prepare")
	assert.True(t, strings.HasPrefix(out, "Prepared WIT authority:\nKind:           WIT\n"), out)
	prepared := authorityFromOutput(t, okAt(t, socket, "authority", "wit", "prepare", "-output", "json"))
	assert.Equal(t, registry.AuthorityPrepared, prepared.State)
	assert.Equal(t, registry.AuthorityWIT, prepared.Kind)
	out = okAt(t, socket, "authority", "wit", "activate", "-authorityID", prepared.AuthorityID)
	assert.True(t, strings.HasPrefix(out, "Activated WIT authority:\n"), out)

	out = okAt(t, socket, "authority", "wit", "taint", "-authorityID", first)
	assert.True(t, strings.HasPrefix(out, "Tainted WIT authority:\n"), out)
	assert.Contains(t, out, "Marked:         tainted\n")
	tainted := listOutput(t, socket, "authority", "wit", "show")
	require.Len(t, tainted, 2)
	assert.True(t, tainted[0].Tainted)
	assert.Equal(t, first, tainted[0].AuthorityID)

	revoked := authorityFromOutput(t, okAt(t, socket, "authority", "wit", "revoke", "-authorityID", first, "-output", "json"))
	assert.True(t, revoked.Revoked)
	assert.Equal(t, registry.AuthorityWIT, revoked.Kind)
	left := listOutput(t, socket, "authority", "wit", "show")
	require.Len(t, left, 1, "the revoked key is gone")
	assert.Equal(t, prepared.AuthorityID, left[0].AuthorityID)
}

func TestAuthorityWITWithoutWITSVIDs(t *testing.T) {
	socket := startCA(t)
	assert.Contains(t, okAt(t, socket, "authority", "wit", "show"), "Found 0 WIT authorities\n")
	for _, verb := range []string{"prepare", "activate"} {
		r := runAt(t, socket, "authority", "wit", verb)
		assert.Equal(t, ExitFailure, r.code, verb)
		assert.Contains(t, r.stderr, "this server signs no WIT-SVIDs, so its CA has no WIT key", verb)
		assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
	}
	r := runAt(t, socket, "authority", "wit", "revoke", "-authorityID", "kid")
	assert.Equal(t, ExitFailure, r.code)
	assert.Contains(t, r.stderr, "this server signs no WIT-SVIDs")
}
