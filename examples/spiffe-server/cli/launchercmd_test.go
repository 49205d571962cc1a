package cli

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/launch"
	"github.com/spiffekit/spiffekit/registry/memstore"
)

// launcher is a launch server on a real unix socket, over a memory store.
type launcher struct {
	socket string
	ls     *launch.Server
	ca     *testca.CA
	jwtKey *ecdsa.PrivateKey // the trust domain's JWT key, "jwt-1"
	witKey *ecdsa.PrivateKey // its WIT key, "wit-1"
}

// startLauncher serves a launch server on a unix socket, allowing the
// uids given (none: root and this process's).
func startLauncher(t *testing.T, modify func(*launch.Config)) *launcher {
	t.Helper()
	dir, err := os.MkdirTemp("", "lcli")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	l := &launcher{socket: filepath.Join(dir, "launch.sock"), ca: testca.New(t, td), jwtKey: testca.NewECKey(t), witKey: testca.NewECKey(t)}
	cfg := launch.Config{TrustDomain: td, Entries: memstore.New(memstore.Config{}),
		X509Authorities: func() []*x509.Certificate { return l.ca.X509Bundle().X509Authorities() },
		JWTAuthorities:  func() map[string]crypto.PublicKey { return map[string]crypto.PublicKey{"jwt-1": l.jwtKey.Public()} },
		WITAuthorities:  func() map[string]crypto.PublicKey { return map[string]crypto.PublicKey{"wit-1": l.witKey.Public()} }}
	if modify != nil {
		modify(&cfg)
	}
	l.ls, err = launch.New(cfg)
	require.NoError(t, err)
	lis, err := l.ls.Listen(l.socket)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.ls.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return l
}

// run runs a launch command against the launcher's socket.
func (l *launcher) run(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Admin(t.Context(), append(append([]string{"launch"}, args...), "-launcher-socket", l.socket), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func (l *launcher) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := l.run(t, args...)
	require.Equal(t, ExitOK, r.code, "stderr: %s", r.stderr)
	assert.Empty(t, r.stderr)
	return r.stdout
}

var (
	launchIDLine = regexp.MustCompile(`(?m)^Launch ID:\s+([0-9a-f]{32})$`)
	handleLine   = regexp.MustCompile(`(?m)^Handle:\s+(\S+)$`)
)

// TestLaunchCommands: create prints the launch and its handle, which the
// launch server redeems once; show tells it was redeemed; end ends it,
// and then show and end find nothing.
func TestLaunchCommands(t *testing.T) {
	l := startLauncher(t, nil)
	out := l.ok(t, "create", "-spiffe-id", "spiffe://example.org/sandbox/1", "-ttl", "10m", "-jwt-ttl", "1m", "-hint", "job 1")
	m := launchIDLine.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	id := m[1]
	h := handleLine.FindStringSubmatch(out)
	require.NotNil(t, h, out)
	assert.True(t, strings.HasPrefix(h[1], id+"."), "the handle names its launch")
	assert.Contains(t, out, "SPIFFE ID:      spiffe://example.org/sandbox/1\n")
	assert.Contains(t, out, "X509-SVID TTL:  10m0s\n", "an hour, cut to the TTL")
	assert.Contains(t, out, "JWT-SVID TTL:   1m0s\n")
	expires := regexp.MustCompile(`(?m)^Expires at:\s+(\S+)$`).FindStringSubmatch(out)
	require.NotNil(t, expires, out)
	at, err := time.Parse(time.RFC3339, expires[1])
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(10*time.Minute), at, time.Minute)

	show := l.ok(t, "show", "-launch-id", id)
	assert.Equal(t, "Launch ID:      "+id+"\nSPIFFE ID:      spiffe://example.org/sandbox/1\nHint:           job 1\n"+
		"Expires at:     "+expires[1]+"\nRedeemed:       false\n", show)

	e, err := l.ls.Redeem(t.Context(), h[1], nil)
	require.NoError(t, err, "the printed handle is the launch's")
	assert.Equal(t, "spiffe://example.org/sandbox/1", e.SPIFFEID.String())
	assert.Contains(t, l.ok(t, "show", "-launchID", id), "Redeemed:       true\n")

	assert.Equal(t, "Ended launch "+id+"\n", l.ok(t, "end", "-launch-id", id))
	for _, verb := range []string{"show", "end"} {
		r := l.run(t, verb, "-launch-id", id)
		assert.Equal(t, ExitFailure, r.code, verb)
		assert.Equal(t, "spiffe-server launch "+verb+": launch: no such launch "+id+" (ended, expired, or never made)\n", r.stderr, verb)
		assert.Empty(t, r.stdout)
	}

	// The SPIFFE ID alone: the server's default TTL, and no hint, which
	// show leaves out as entry show does.
	out = l.ok(t, "create", "-spiffeID", "spiffe://example.org/sandbox/2")
	assert.Contains(t, out, "X509-SVID TTL:  15m0s\n")
	m = launchIDLine.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	show = l.ok(t, "show", "-launch-id", m[1])
	assert.Contains(t, show, "SPIFFE ID:      spiffe://example.org/sandbox/2\n")
	assert.NotContains(t, show, "Hint:")
}

// TestLaunchRefusals: what the server refuses fails the command with its
// reason on one line; what cannot be asked is a usage error.
func TestLaunchRefusals(t *testing.T) {
	l := startLauncher(t, func(c *launch.Config) { c.PathPrefixes = []string{"/sandbox"}; c.MaxTTL = time.Hour })
	for _, tt := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"reserved ID", []string{"create", "-spiffe-id", "spiffe://example.org/spiffekit/server"}, ExitFailure, "is reserved for the server and its agents"},
		// The server's reason, after one prefix.
		{"outside the prefixes", []string{"create", "-spiffe-id", "spiffe://example.org/web"}, ExitFailure,
			`spiffe-server launch create: launch: invalid launch: SPIFFE ID "spiffe://example.org/web" is outside the paths launches may take (/sandbox)` + "\n"},
		{"other trust domain", []string{"create", "-spiffe-id", "spiffe://other.org/sandbox/1"}, ExitFailure, `is not in trust domain "example.org"`},
		{"TTL too long", []string{"create", "-spiffe-id", "spiffe://example.org/sandbox/1", "-ttl", "2h"}, ExitFailure, "TTL 2h0m0s is not between 10s and 1h0m0s"},
		{"SVID TTL over the launch's", []string{"create", "-spiffe-id", "spiffe://example.org/sandbox/1", "-ttl", "1m", "-x509-ttl", "2m"}, ExitFailure,
			"X509-SVID TTL 2m0s is not between"},
		{"no SPIFFE ID", []string{"create"}, ExitUsage, "-spiffe-id"},
		{"not a SPIFFE ID", []string{"create", "-spiffe-id", "sandbox"}, ExitUsage, "-spiffe-id"},
		{"bad TTL", []string{"create", "-spiffe-id", "spiffe://example.org/sandbox/1", "-ttl", "soon"}, ExitUsage, "-ttl"},
		{"no launch ID", []string{"show"}, ExitUsage, "-launch-id"},
		{"malformed launch ID", []string{"end", "-launch-id", "42"}, ExitUsage, `-launch-id "42" is not a launch ID`},
		{"bad output", []string{"show", "-launch-id", "0123456789abcdef0123456789abcdef", "-output", "yaml"}, ExitUsage, "-output must be pretty or json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := l.run(t, tt.args...)
			assert.Equal(t, tt.code, r.code, r.stderr)
			assert.Contains(t, r.stderr, tt.msg)
			assert.Empty(t, r.stdout)
			if tt.code == ExitFailure {
				assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %s", r.stderr)
			}
		})
	}
}

// TestLaunchRateLimited: a launch the rate limit refuses says so, and
// what to do.
func TestLaunchRateLimited(t *testing.T) {
	l := startLauncher(t, func(c *launch.Config) { c.Rate, c.Burst = 0.001, 1 })
	l.ok(t, "create", "-spiffe-id", "spiffe://example.org/sandbox/1")
	r := l.run(t, "create", "-spiffe-id", "spiffe://example.org/sandbox/2")
	assert.Equal(t, ExitFailure, r.code)
	assert.Equal(t, "spiffe-server launch create: launch: rate limited (more launches at once than the launcher section's"+
		" rate and burst allow; try again in a moment)\n", r.stderr)
	assert.Empty(t, r.stdout)
}

// TestLaunchExpiredShown: show marks a launch whose expiry has passed,
// which the server keeps until it prunes it, as expired.
func TestLaunchExpiredShown(t *testing.T) {
	l := startLauncher(t, func(c *launch.Config) { c.Now = func() time.Time { return time.Now().Add(-time.Hour) } })
	m := launchIDLine.FindStringSubmatch(l.ok(t, "create", "-spiffe-id", "spiffe://example.org/sandbox/1", "-ttl", "10m"))
	require.NotNil(t, m)
	assert.Regexp(t, `(?m)^Expires at:     \S+ \(expired\)$`, l.ok(t, "show", "-launch-id", m[1]))

	l = startLauncher(t, nil)
	m = launchIDLine.FindStringSubmatch(l.ok(t, "create", "-spiffe-id", "spiffe://example.org/sandbox/1", "-ttl", "10m"))
	require.NotNil(t, m)
	assert.NotContains(t, l.ok(t, "show", "-launch-id", m[1]), "expired")
}

// TestLaunchAtTheAdminSocket: the launch commands given the admin socket,
// a mistake easily made, say that it is not the launcher API's rather
// than that there is no such launch.
func TestLaunchAtTheAdminSocket(t *testing.T) {
	s := startServer(t)
	for _, args := range [][]string{
		{"create", "-spiffe-id", "spiffe://example.org/sandbox/1"},
		{"show", "-launch-id", "0123456789abcdef0123456789abcdef"},
		{"end", "-launch-id", "0123456789abcdef0123456789abcdef"},
	} {
		var out, errb bytes.Buffer
		code := Admin(t.Context(), append(append([]string{"launch"}, args...), "-launcher-socket", s.socket), &out, &errb)
		assert.Equal(t, ExitFailure, code, args)
		assert.Equal(t, "spiffe-server launch "+args[0]+": launch: "+s.socket+" answered 404 Not Found, not as the launcher API does:"+
			" is it the socket_path of the server's launcher section?\n", errb.String(), args)
		assert.Empty(t, out.String())
	}
}

// TestLaunchNotAllowed: a uid not in allowed_uids is told so, and how to
// fix it.
func TestLaunchNotAllowed(t *testing.T) {
	l := startLauncher(t, func(c *launch.Config) { c.AllowedUIDs = []int{os.Getuid() + 4242} })
	for _, args := range [][]string{
		{"create", "-spiffe-id", "spiffe://example.org/sandbox/1"},
		{"show", "-launch-id", "0123456789abcdef0123456789abcdef"},
		{"end", "-launch-id", "0123456789abcdef0123456789abcdef"},
	} {
		r := l.run(t, args...)
		assert.Equal(t, ExitFailure, r.code, args)
		assert.Equal(t, fmt.Sprintf("spiffe-server launch %s: launch: permission denied: uid %d may not launch"+
			" (run it as a uid of the launcher section's allowed_uids)\n", args[0], os.Getuid()), r.stderr)
		assert.Empty(t, r.stdout)
	}
}

// TestLaunchNoLauncher: without a launcher API at the socket, the command
// says where it looked and what may be missing.
func TestLaunchNoLauncher(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	var out, errb bytes.Buffer
	code := Admin(t.Context(), []string{"launch", "show", "-launch-id", "0123456789abcdef0123456789abcdef", "-launcher-socket", sock}, &out, &errb)
	assert.Equal(t, ExitFailure, code)
	assert.Contains(t, errb.String(), "spiffe-server launch show: launch: cannot reach the launcher API at "+sock)
	assert.Contains(t, errb.String(), "(is the server running, with a launcher section whose socket_path is "+sock+"?)")
	assert.Equal(t, 1, strings.Count(errb.String(), "\n"))
	assert.Empty(t, out.String())

	// The socket comes from the environment when the flag is not given.
	l := startLauncher(t, nil)
	t.Setenv(LauncherSocketEnv, l.socket)
	out.Reset()
	errb.Reset()
	code = Admin(t.Context(), []string{"launch", "create", "-spiffe-id", "spiffe://example.org/sandbox/env"}, &out, &errb)
	require.Equal(t, ExitOK, code, errb.String())
	assert.Contains(t, out.String(), "spiffe://example.org/sandbox/env")
}

// TestLaunchJSONOutput: the -output json of the launch commands, against
// golden files; create's holds the handle and the X.509 authorities.
func TestLaunchJSONOutput(t *testing.T) {
	l := startLauncher(t, nil)
	check := func(name string, args ...string) string {
		t.Helper()
		r := l.run(t, append(args, "-output", "json")...)
		require.Equal(t, ExitOK, r.code, "%s: %s", name, r.stderr)
		golden(t, name, r.stdout)
		return r.stdout
	}
	out := check("launch_create", "create", "-spiffe-id", "spiffe://example.org/sandbox/1", "-ttl", "10m", "-hint", "job 1")
	var created launchCreatedJSON
	require.NoError(t, json.Unmarshal([]byte(out), &created))
	require.Len(t, created.X509Authorities, 1)
	b, _ := pem.Decode([]byte(created.X509Authorities[0]))
	require.NotNil(t, b)
	assert.Equal(t, l.ca.X509Bundle().X509Authorities()[0].Raw, b.Bytes, "the trust domain's authority")
	keys, err := jwtbundle.Parse(td, created.JWTAuthorities)
	require.NoError(t, err, "a JWK Set, as jwtbundle.Load reads it: %s", created.JWTAuthorities)
	assert.True(t, keys.Equal(jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{"jwt-1": l.jwtKey.Public()})),
		"the trust domain's JWT keys")
	witKeys, err := witbundle.Parse(td, created.WITAuthorities)
	require.NoError(t, err, "a JWK Set, as witbundle.Load reads it: %s", created.WITAuthorities)
	assert.True(t, witKeys.Equal(witbundle.FromWITAuthorities(td, map[string]crypto.PublicKey{"wit-1": l.witKey.Public()})),
		"the trust domain's WIT keys")
	check("launch_show", "show", "-launch-id", created.LaunchID)
	check("launch_end", "end", "-launch-id", created.LaunchID)

	// A server that hands no JWT or WIT authorities: empty sets.
	bare := startLauncher(t, func(c *launch.Config) { c.JWTAuthorities, c.WITAuthorities = nil, nil })
	r := bare.run(t, "create", "-spiffe-id", "spiffe://example.org/sandbox/2", "-output", "json")
	require.Equal(t, ExitOK, r.code, r.stderr)
	var none launchCreatedJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &none))
	assert.JSONEq(t, `{"keys": []}`, string(none.JWTAuthorities))
	assert.JSONEq(t, `{"keys": []}`, string(none.WITAuthorities))
}

func TestLaunchUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"launch"}, ExitUsage, "Usage: spiffe-server launch <subcommand>"},
		{[]string{"launch", "-h"}, ExitOK, "create   Makes a launch"},
		{[]string{"launch", "create", "-h"}, ExitOK, "The handle is a secret"},
		{[]string{"launch", "create", "-h"}, ExitOK, "-launcher-socket path"},
		{[]string{"launch", "create", "-h"}, ExitOK, "-ttl duration\n"},
		{[]string{"launch", "create", "-h"}, ExitOK, "-x509-ttl duration\n"},
		{[]string{"launch", "end", "-h"}, ExitOK, "An SVID already obtained stays valid"},
		{[]string{"-h"}, ExitOK, "launch create|show|end"},
	} {
		var out, errb bytes.Buffer
		code := Admin(t.Context(), tt.args, &out, &errb)
		assert.Equal(t, tt.code, code, tt.args)
		assert.Contains(t, out.String()+errb.String(), tt.want, tt.args)
	}
}

// TestLauncherSocketDefault: a launcher section without socket_path
// listens where the launch commands look by default.
func TestLauncherSocketDefault(t *testing.T) {
	l, err := newLauncher(&launcherConfig{}, true)
	require.NoError(t, err)
	assert.Equal(t, DefaultLauncherSocket, l.SocketPath)
	l, err = newLauncher(&launcherConfig{SocketPath: "/tmp/l.sock"}, true)
	require.NoError(t, err)
	assert.Equal(t, "/tmp/l.sock", l.SocketPath)
}
