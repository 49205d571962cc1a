package cli

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/broadcast"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

var update = flag.Bool("update", false, "write the golden files of -output json")

// fedSource is a nodeserver.FederationSource whose bundles a test sets.
type fedSource struct {
	broadcast.Hub
	mu      sync.Mutex
	bundles []*spiffebundle.Bundle
}

func (f *fedSource) FederatedBundles() []*spiffebundle.Bundle {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bundles
}

func (f *fedSource) set(b ...*spiffebundle.Bundle) {
	f.mu.Lock()
	f.bundles = b
	f.mu.Unlock()
	f.Notify()
}

// volatile are the fields of the JSON outputs whose values change from run
// to run; the golden files hold a placeholder for them.
var volatile = map[string]bool{
	"x509_svid": true, "x509_svid_key": true, "bundle": true, "svid": true,
	"exp": true, "iat": true, "address": true, "reason": true,
}

// normalize replaces the values of the volatile fields of one line of JSON
// (and those of federated_bundles) with placeholders, after checking that
// they are strings or numbers, and indents it.
func normalize(t *testing.T, out string) string {
	t.Helper()
	require.True(t, strings.HasSuffix(out, "}\n") && strings.Count(out, "\n") == 1, "one line of JSON: %q", out)
	var v any
	require.NoError(t, json.Unmarshal([]byte(out), &v), out)
	var walk func(v any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				switch {
				case k == "federated_bundles" || k == "bundles":
					for td, b := range x.(map[string]any) {
						assert.IsType(t, "", b, td)
						x.(map[string]any)[td] = "<bundle>"
					}
				case volatile[k]:
					switch k {
					case "exp", "iat":
						assert.IsType(t, float64(0), x, k)
					default:
						assert.IsType(t, "", x, k)
						assert.NotEmpty(t, x, k)
					}
					v[k] = "<" + k + ">"
				default:
					v[k] = walk(x)
				}
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

// fedEnv is an agent run by Main whose server hands out the bundle of a
// federated trust domain, partner.test, with an entry for this process
// federating with it.
type fedEnv struct {
	s       *nodetest.NodeServer
	fed     *fedSource
	partner *spiffebundle.Bundle
	socket  string
	run     *running
}

var partnerTD = spiffeid.RequireTrustDomainFromString("partner.test")

func startFedEnv(t *testing.T) *fedEnv {
	t.Helper()
	e := &fedEnv{fed: &fedSource{}, socket: socketPath(t)}
	e.partner = spiffebundle.FromX509Authorities(partnerTD, []*x509.Certificate{testca.New(t, partnerTD).Root()})
	e.fed.set(e.partner)
	e.s = nodetest.StartNodeServer(t, nodetest.NodeConfig{Edit: func(c *nodeserver.Config) { c.Federation = e.fed }})
	e.run = startRun(t, "-trust-domain", "example.org", "-server", e.s.Addr, "-trust-bundle", bundleFile(t, e.s.CA),
		"-join-token", e.s.Token(t), "-socket", e.socket, "-unix-skip-hash")
	e.run.waitFor(t, "the agent to start", func() bool { return e.run.logs.Contains("agent started") })
	agents, err := e.s.Store.ListAgents(t.Context())
	require.NoError(t, err)
	require.Len(t, agents, 1)
	_, err = e.s.Store.Create(t.Context(), registry.Entry{
		SPIFFEID: spiffeid.RequireFromPath(td, "/web"), ParentID: agents[0].ID, Hint: "front",
		Selectors: []attest.Selector{nodetest.UID()}, FederatesWith: []spiffeid.TrustDomain{partnerTD},
	})
	require.NoError(t, err)
	e.run.waitFor(t, "the SVID with partner.test's bundle", func() bool {
		code, out, _ := cli(t, "api", "fetch", "-socket", e.socket, "-timeout", "2s")
		return code == ExitOK && strings.Contains(out, "partner.test")
	})
	return e
}

// TestFetchFederatedBundles: api fetch shows the federated bundles, -write
// writes them as SPIRE's agent names them, and -output json has them by
// trust domain.
func TestFetchFederatedBundles(t *testing.T) {
	e := startFedEnv(t)
	code, out, stderr := cli(t, "api", "fetch", "-socket", e.socket)
	require.Equal(t, ExitOK, code, stderr)
	assert.True(t, strings.HasSuffix(out, "\nFederated bundles\n  partner.test, 1 X.509 authority(ies)\n"), out)
	assert.Contains(t, out, "  Hint:       front\n")

	dir := filepath.Join(t.TempDir(), "out")
	code, out, stderr = cli(t, "api", "fetch", "x509", "-socket", e.socket, "-write", dir)
	require.Equal(t, ExitOK, code, stderr)
	assert.True(t, strings.HasSuffix(out, "\nWritten to "+dir+"\n"), out)
	names, err := filepath.Glob(filepath.Join(dir, "*"))
	require.NoError(t, err)
	for i := range names {
		names[i] = filepath.Base(names[i])
	}
	assert.ElementsMatch(t, []string{"svid.0.pem", "svid.0.key", "bundle.0.pem", "federated_bundle.0.0.pem"}, names)
	data, err := os.ReadFile(filepath.Join(dir, "federated_bundle.0.0.pem"))
	require.NoError(t, err)
	certs, err := pemutil.ParseCertificates(data)
	require.NoError(t, err)
	assert.Equal(t, e.partner.X509Authorities(), certs)
	fi, err := os.Stat(filepath.Join(dir, "federated_bundle.0.0.pem"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
	svid, err := x509svid.Load(filepath.Join(dir, "svid.0.pem"), filepath.Join(dir, "svid.0.key"))
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/web", svid.ID.String())

	// -silent -write: the files, nothing printed.
	dir2 := filepath.Join(t.TempDir(), "silent")
	code, out, stderr = cli(t, "api", "fetch", "x509", "-socket", e.socket, "-write", dir2, "-silent")
	require.Equal(t, ExitOK, code, stderr)
	assert.Empty(t, out)
	assert.FileExists(t, filepath.Join(dir2, "federated_bundle.0.0.pem"))

	// -write into a path that cannot be a directory.
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	code, out, stderr = cli(t, "api", "fetch", "x509", "-socket", e.socket, "-write", filepath.Join(file, "sub"))
	assert.Equal(t, ExitFailure, code)
	assert.Empty(t, out)
	assert.Contains(t, stderr, "spiffe-agent api fetch x509: -write: mkdir "+file+": not a directory")

	// JSON: the DER of each part, base64, and the federated bundles.
	code, out, stderr = cli(t, "api", "fetch", "x509", "-socket", e.socket, "-output", "json")
	require.Equal(t, ExitOK, code, stderr)
	golden(t, "fetch_x509", out)
	var j x509JSON
	require.NoError(t, json.Unmarshal([]byte(out), &j))
	require.Len(t, j.SVIDs, 1)
	leaf, err := x509.ParseCertificates(j.SVIDs[0].X509SVID)
	require.NoError(t, err)
	assert.Equal(t, svid.ID.URL(), leaf[0].URIs[0])
	_, err = x509.ParsePKCS8PrivateKey(j.SVIDs[0].X509SVIDKey)
	require.NoError(t, err)
	roots, err := x509.ParseCertificates(j.SVIDs[0].Bundle)
	require.NoError(t, err)
	assert.Equal(t, e.s.CA.Bundle().X509Authorities(), roots)
	fed, err := x509.ParseCertificates(j.FederatedBundles["partner.test"])
	require.NoError(t, err)
	assert.Equal(t, e.partner.X509Authorities(), fed)

	// -silent -output json prints nothing either.
	code, out, _ = cli(t, "api", "fetch", "x509", "-socket", e.socket, "-output", "json", "-silent")
	assert.Equal(t, ExitOK, code)
	assert.Empty(t, out)
}

// TestJWTCommands: fetch jwt and validate jwt, in both forms; a token
// that is not valid exits 1 with the Workload API's reason.
func TestJWTCommands(t *testing.T) {
	e := startFedEnv(t)
	code, out, stderr := cli(t, "api", "fetch", "jwt", "-socket", e.socket, "-audience", "db", "-output", "json")
	require.Equal(t, ExitOK, code, stderr)
	golden(t, "fetch_jwt", out)
	var j jwtJSON
	require.NoError(t, json.Unmarshal([]byte(out), &j))
	require.Len(t, j.SVIDs, 1)
	token := j.SVIDs[0].SVID
	// The JWT bundles, as JWK Sets: the own trust domain's,
	// whose keys verify the token.
	require.Contains(t, j.Bundles, "example.org")
	own, err := jwtbundle.Parse(spiffeid.RequireTrustDomainFromString("example.org"), j.Bundles["example.org"])
	require.NoError(t, err)
	_, err = jwtsvid.ParseAndValidate(token, own, []string{"db"})
	require.NoError(t, err, "the bundle printed verifies the token printed")

	code, out, stderr = cli(t, "api", "validate", "jwt", "-socket", e.socket, "-audience", "db", "-svid", token)
	require.Equal(t, ExitOK, code, stderr)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, lines, 3, out)
	assert.Equal(t, "SVID is valid.", lines[0])
	assert.Equal(t, "SPIFFE ID : spiffe://example.org/web", lines[1])
	claims, ok := strings.CutPrefix(lines[2], "Claims    : ")
	require.True(t, ok, lines[2])
	var c map[string]any
	require.NoError(t, json.Unmarshal([]byte(claims), &c))
	assert.Equal(t, "spiffe://example.org/web", c["sub"])

	code, out, stderr = cli(t, "api", "validate", "jwt", "-socket", e.socket, "-audience", "db", "-svid", token+"\n", "-output", "json")
	require.Equal(t, ExitOK, code, stderr)
	golden(t, "validate_jwt", out)

	// The token from standard input: with -svid -, or without -svid from
	// a pipe or file; never from a terminal or /dev/null.
	withStdin := func(content string) {
		path := filepath.Join(t.TempDir(), "token")
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		f, err := os.Open(path)
		require.NoError(t, err)
		t.Cleanup(func() { f.Close() })
		stdin = f
		t.Cleanup(func() { stdin = os.Stdin })
	}
	withStdin(token + "\n")
	code, out, stderr = cli(t, "api", "validate", "jwt", "-socket", e.socket, "-audience", "db", "-svid", "-")
	require.Equal(t, ExitOK, code, stderr)
	assert.True(t, strings.HasPrefix(out, "SVID is valid.\nSPIFFE ID : spiffe://example.org/web\n"), out)
	withStdin(token)
	code, out, stderr = cli(t, "api", "validate", "jwt", "-socket", e.socket, "-audience", "db", "-output", "json")
	require.Equal(t, ExitOK, code, stderr)
	assert.Contains(t, out, `"spiffe_id":"spiffe://example.org/web"`)
	withStdin(" \n")
	code, _, stderr = cli(t, "api", "validate", "jwt", "-socket", e.socket, "-audience", "db", "-svid", "-")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, "no token on standard input")
	withStdin(strings.Repeat("a", 1<<20+1))
	code, _, stderr = cli(t, "api", "validate", "jwt", "-socket", e.socket, "-audience", "db")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, "longer than")
	devNull, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer devNull.Close()
	stdin = devNull
	code, _, stderr = cli(t, "api", "validate", "jwt", "-socket", e.socket, "-audience", "db")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, "-svid is required")
	stdin = strings.NewReader(token)
	code, _, stderr = cli(t, "api", "validate", "jwt", "-socket", e.socket, "-audience", "db")
	assert.Equal(t, ExitUsage, code, "only a file is read unasked")
	assert.Contains(t, stderr, "-svid is required")
	code, _, stderr = cli(t, "api", "validate", "jwt", "-socket", e.socket, "-audience", "db", "-svid", "-")
	assert.Equal(t, ExitOK, code, stderr)
	stdin = os.Stdin

	for name, tt := range map[string]struct{ audience, token, reason string }{
		"another audience": {"cache", token, "SVID is not valid: "},
		"not a token":      {"db", "not-a-token", "SVID is not valid: "},
		"tampered":         {"db", token[:len(token)-4] + "AAAA", "SVID is not valid: "},
	} {
		t.Run(name, func(t *testing.T) {
			code, out, stderr := cli(t, "api", "validate", "jwt", "-socket", e.socket, "-audience", tt.audience, "-svid", tt.token)
			assert.Equal(t, ExitFailure, code)
			assert.Empty(t, out)
			assert.True(t, strings.HasPrefix(stderr, "spiffe-agent api validate jwt: "+tt.reason), stderr)
			assert.Equal(t, 1, strings.Count(stderr, "\n"), stderr)
		})
	}

	code, out, stderr = cli(t, "healthcheck", "-socket", e.socket, "-output", "json")
	require.Equal(t, ExitOK, code, stderr)
	golden(t, "healthcheck", out)
	code, out, stderr = cli(t, "healthcheck", "-socket", e.socket+".none", "-output", "json")
	assert.Equal(t, ExitFailure, code)
	golden(t, "healthcheck_unhealthy", out)
	assert.Equal(t, "spiffe-agent healthcheck: unhealthy: no socket at "+e.socket+".none\n", stderr)
}

// syncBuffer is a buffer that a watch writes while the test reads: safe
// for concurrent use.
type syncBuffer = logtest.Buffer

// watchRun is an api watch run by Main until its context ends.
type watchRun struct {
	cancel         context.CancelFunc
	done           chan int
	stdout, stderr *syncBuffer
}

func startWatch(t *testing.T, args ...string) *watchRun {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	w := &watchRun{cancel: cancel, done: make(chan int, 1), stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	go func() { w.done <- Main(ctx, append([]string{"api", "watch"}, args...), w.stdout, w.stderr) }()
	t.Cleanup(cancel)
	return w
}

func (w *watchRun) stop(t *testing.T) int {
	t.Helper()
	w.cancel()
	select {
	case code := <-w.done:
		return code
	case <-time.After(30 * time.Second):
		t.Fatal("api watch did not return after its context ended")
		return -1
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 20*time.Second, 20*time.Millisecond, "waiting for %s", what)
}

// TestWatch: api watch prints the X.509 context at once and again at each
// change (here partner.test's bundle dropped by the server), until its
// context ends, which exits 0; with -output json, one line per update.
func TestWatch(t *testing.T) {
	e := startFedEnv(t)
	defer leaktest.Check(t)()
	text := startWatch(t, "-socket", e.socket)
	js := startWatch(t, "-socketPath", e.socket, "-output", "json")
	waitUntil(t, "the first update", func() bool {
		return strings.Contains(text.stdout.String(), "partner.test") && strings.Count(js.stdout.String(), "\n") >= 1
	})
	assert.True(t, strings.HasPrefix(text.stdout.String(), "Received 1 SVID(s) after "), text.stdout.String())
	assert.Contains(t, text.stdout.String(), "  SPIFFE ID:  spiffe://example.org/web\n")
	first := strings.SplitAfter(js.stdout.String(), "\n")[0]
	golden(t, "watch", first)

	e.fed.set()
	waitUntil(t, "the update without partner.test", func() bool {
		return strings.Count(text.stdout.String(), "Received 1 SVID(s)") >= 2 && strings.Count(js.stdout.String(), "\n") >= 2
	})
	updates := strings.Split(text.stdout.String(), "Received ")
	assert.NotContains(t, updates[len(updates)-1], "partner.test")
	var last x509JSON
	lines := strings.Split(strings.TrimSuffix(js.stdout.String(), "\n"), "\n")
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &last))
	assert.Empty(t, last.FederatedBundles)

	assert.Equal(t, ExitOK, text.stop(t))
	assert.Equal(t, ExitOK, js.stop(t))
	assert.Empty(t, text.stderr.String())
	assert.Empty(t, js.stderr.String())
}

// TestWatchOutage: while the agent is down the watch says so on stderr and
// keeps trying; it prints the X.509 context again once an agent serves the
// socket.
func TestWatchOutage(t *testing.T) {
	e := startFedEnv(t)
	w := startWatch(t, "-socket", e.socket)
	waitUntil(t, "the first update", func() bool { return strings.Contains(w.stdout.String(), "Received 1 SVID(s)") })
	require.Equal(t, ExitOK, e.run.stop(t))
	waitUntil(t, "the outage reported", func() bool { return strings.Contains(w.stderr.String(), "(retrying)\n") })
	assert.True(t, strings.HasPrefix(w.stderr.String(), "spiffe-agent api watch: "), w.stderr.String())
	select {
	case code := <-w.done:
		t.Fatalf("the watch ended with %d during the outage", code)
	default:
	}
	assert.Equal(t, ExitOK, w.stop(t))
}

func TestWatchErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.sock")
	code, out, stderr := cli(t, "api", "watch", "-socket", missing)
	assert.Equal(t, ExitFailure, code)
	assert.Empty(t, out)
	assert.Equal(t, "spiffe-agent api watch: no Workload API socket at "+missing+": no such file or directory\n", stderr)

	code, _, stderr = cli(t, "api", "watch", "-socket", missing, "-output", "yaml")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, `-output must be pretty or json, not "yaml"`)

	code, _, stderr = cli(t, "api", "validate", "jwt", "-socket", missing, "-audience", "a")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, "-svid is required")
	code, _, stderr = cli(t, "api", "validate", "jwt", "-socket", missing, "-svid", "a.b.c")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, "-audience is required")
	code, _, stderr = cli(t, "api", "validate", "jwt", "-socket", missing, "-svid", " ", "-audience", "a")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, "-svid must not be empty")
	code, _, stderr = cli(t, "api", "validate", "jwt", "-socket", missing, "-svid", "a.b.c", "-audience", "")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, "-audience")
}
