package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca/keymanager"
	"github.com/spiffekit/spiffekit/registry/memstore"
	issuing "github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// fedServer is an issuing server run in the test, with its admin socket.
type fedServer struct {
	*issuing.Server
	socket string
}

// startFedServer runs an issuing server of cfg (trust domain, bundle
// endpoint, relationships) with an in-memory registry and CA until the
// test ends.
func startFedServer(t *testing.T, cfg issuing.Config) *fedServer {
	t.Helper()
	cfg.AdminSocket = filepath.Join(t.TempDir(), "admin.sock")
	cfg.Stores = issuing.StoresOf(memstore.New(memstore.Config{}))
	cfg.KeyManager = keymanager.NewMemory()
	cfg.BindAddr = "127.0.0.1:0"
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
	return &fedServer{Server: s, socket: cfg.AdminSocket}
}

func (s *fedServer) url() string { return "https://" + s.FederationAddr().String() }

// TestFederationCommands drives federation create, list, show, update and
// delete with SPIRE's flags and -data file against a server, which polls
// what they make.
func TestFederationCommands(t *testing.T) {
	org := startFedServer(t, issuing.Config{TrustDomain: spiffeid.RequireTrustDomainFromString("org.test"), FederationBind: "127.0.0.1:0"})
	third := spiffeid.RequireTrustDomainFromString("third.test")
	s := startFedServer(t, issuing.Config{TrustDomain: td, FederationRefresh: time.Hour, Federation: []issuing.Relationship{{
		TrustDomain: third, URL: "https://127.0.0.1:1/", Profile: issuing.ProfileHTTPSWeb,
	}}})
	dir := t.TempDir()
	pemFile := filepath.Join(dir, "org.pem")
	require.NoError(t, os.WriteFile(pemFile, []byte(okAt(t, org.socket, "bundle", "show")), 0o644))
	spiffeFile := filepath.Join(dir, "org.json")
	require.NoError(t, os.WriteFile(spiffeFile, []byte(okAt(t, org.socket, "bundle", "show", "-format", "spiffe")), 0o644))

	out := okAt(t, s.socket, "federation", "create", "-trustDomain", "org.test", "-bundleEndpointURL", org.url(),
		"-bundleEndpointProfile", "https_spiffe", "-endpointSpiffeID", "spiffe://org.test/spiffekit/server",
		"-trustDomainBundlePath", pemFile)
	assert.Equal(t, "\nTrust domain              : org.test\nBundle endpoint URL       : "+org.url()+
		"\nBundle endpoint profile   : https_spiffe\nEndpoint SPIFFE ID        : spiffe://org.test/spiffekit/server\nSource                    : datastore\n", out)
	waitFor(t, "the relationship to be fetched", func() bool {
		return strings.Contains(okAt(t, s.socket, "bundle", "list"), "org.test")
	})

	// refresh fetches at once, beside the hourly polls: unchanged, then,
	// after org prepares a CA (a new authority in its bundle), updated.
	// (The relationship's first poll is over: its bundle is stored.)
	out = okAt(t, s.socket, "federation", "refresh", "-id", "org.test")
	assert.Regexp(t, `^Bundle of org\.test refreshed: unchanged \(sequence \d+\)\n$`, out)
	stored := func() string { return okAt(t, s.socket, "bundle", "show", "-id", "org.test") }
	before := stored()
	_, err := org.CA().PrepareX509CA(t.Context())
	require.NoError(t, err)
	// org publishes its bundle anew once its CA told it of the change.
	waitFor(t, "org to publish the prepared CA", func() bool {
		return strings.Count(okAt(t, org.socket, "bundle", "show"), "BEGIN CERTIFICATE") == 2
	})
	assert.Equal(t, before, stored(), "no poll fetched it yet")
	out = okAt(t, s.socket, "federation", "refresh", "-trustDomain", "org.test")
	assert.Regexp(t, `^Bundle of org\.test refreshed: updated \(sequence \d+\)\n$`, out)
	assert.NotEqual(t, before, stored(), "the refreshed bundle is stored")
	assert.Equal(t, okAt(t, org.socket, "bundle", "show"), stored())

	out = okAt(t, s.socket, "federation", "list")
	assert.True(t, strings.HasPrefix(out, "Found 2 federation relationships\n"), out)
	assert.Contains(t, out, "Trust domain              : third.test\nBundle endpoint URL       : https://127.0.0.1:1/\nBundle endpoint profile   : https_web\nSource                    : config\n")
	out = okAt(t, s.socket, "federation", "show", "-trustDomain", "org.test")
	assert.True(t, strings.HasPrefix(out, "Found a federation relationship with trust domain org.test:\n\nTrust domain              : org.test\n"), out)

	// update replaces it, with the spiffe form of the bundle.
	out = okAt(t, s.socket, "federation", "update", "-trust-domain", "org.test", "-bundle-endpoint-url", strings.Replace(org.url(), "127.0.0.1", "localhost", 1),
		"-bundle-endpoint-profile", "https_spiffe", "-endpoint-spiffe-id", "spiffe://org.test/spiffekit/server",
		"-trust-domain-bundle-path", spiffeFile, "-trust-domain-bundle-format", "spiffe")
	assert.Contains(t, out, "Bundle endpoint URL       : https://localhost:")

	// Refusals: exit 1 with the server's reason, or 2 for bad usage.
	for _, tt := range []struct {
		name string
		code int
		want string
		args []string
	}{
		{"exists", ExitFailure, `federation relationship with "org.test" exists already`, []string{"create", "-trustDomain", "org.test",
			"-bundleEndpointURL", org.url(), "-bundleEndpointProfile", "https_spiffe", "-endpointSpiffeID", "spiffe://org.test/spiffekit/server"}},
		{"configured", ExitFailure, "in the server's configuration; change it there", []string{"create", "-trustDomain", "third.test",
			"-bundleEndpointURL", "https://third.test/", "-bundleEndpointProfile", "https_web"}},
		{"delete configured", ExitFailure, "in the server's configuration; change it there", []string{"delete", "-id", "third.test"}},
		{"no bundle for a self-serving endpoint", ExitFailure, "needs a bootstrap bundle", []string{"create", "-trustDomain", "new.test",
			"-bundleEndpointURL", "https://new.test/", "-bundleEndpointProfile", "https_spiffe", "-endpointSpiffeID", "spiffe://new.test/s"}},
		{"own trust domain", ExitFailure, "this server's own trust domain", []string{"create", "-trustDomain", td.Name(),
			"-bundleEndpointURL", "https://x/", "-bundleEndpointProfile", "https_web"}},
		{"http", ExitFailure, "the scheme must be https", []string{"create", "-trustDomain", "new.test",
			"-bundleEndpointURL", "http://new.test/", "-bundleEndpointProfile", "https_web"}},
		{"update absent", ExitFailure, `federation relationship with "new.test" not found`, []string{"update", "-trustDomain", "new.test",
			"-bundleEndpointURL", "https://new.test/", "-bundleEndpointProfile", "https_web"}},
		{"show absent", ExitFailure, "not found", []string{"show", "-trustDomain", "new.test"}},
		{"no trust domain", ExitUsage, "-trustDomain is required", []string{"create", "-bundleEndpointURL", "https://x/", "-bundleEndpointProfile", "https_web"}},
		{"bad trust domain", ExitUsage, "trust domain \"A B\"", []string{"create", "-trustDomain", "A B", "-bundleEndpointURL", "https://x/", "-bundleEndpointProfile", "https_web"}},
		{"no profile", ExitUsage, "profile is required", []string{"create", "-trustDomain", "new.test", "-bundleEndpointURL", "https://x/"}},
		{"unknown profile", ExitUsage, `unknown bundle endpoint profile "web"`, []string{"create", "-trustDomain", "new.test", "-bundleEndpointURL", "https://x/", "-bundleEndpointProfile", "web"}},
		{"no URL", ExitUsage, "URL is required", []string{"create", "-trustDomain", "new.test", "-bundleEndpointProfile", "https_web"}},
		{"no endpoint ID", ExitUsage, "needs the endpoint's SPIFFE ID", []string{"create", "-trustDomain", "new.test", "-bundleEndpointURL", "https://x/", "-bundleEndpointProfile", "https_spiffe"}},
		{"bad endpoint ID", ExitUsage, "endpoint SPIFFE ID", []string{"create", "-trustDomain", "new.test", "-bundleEndpointURL", "https://x/", "-bundleEndpointProfile", "https_spiffe", "-endpointSpiffeID", "nope"}},
		{"bad bundle format", ExitUsage, `format "der"`, []string{"create", "-trustDomain", "org.test", "-bundleEndpointURL", "https://x/", "-bundleEndpointProfile", "https_spiffe",
			"-endpointSpiffeID", "spiffe://org.test/s", "-trustDomainBundlePath", pemFile, "-trustDomainBundleFormat", "der"}},
		{"pem that is not", ExitUsage, "trust domain bundle (pem)", []string{"create", "-trustDomain", "org.test", "-bundleEndpointURL", "https://x/", "-bundleEndpointProfile", "https_spiffe",
			"-endpointSpiffeID", "spiffe://org.test/s", "-trustDomainBundlePath", spiffeFile}},
		{"spiffe that is not", ExitUsage, "trust domain bundle (spiffe)", []string{"create", "-trustDomain", "org.test", "-bundleEndpointURL", "https://x/", "-bundleEndpointProfile", "https_spiffe",
			"-endpointSpiffeID", "spiffe://org.test/s", "-trustDomainBundlePath", pemFile, "-trustDomainBundleFormat", "spiffe"}},
		{"missing bundle file", ExitFailure, "no such file", []string{"create", "-trustDomain", "org.test", "-bundleEndpointURL", "https://x/", "-bundleEndpointProfile", "https_spiffe",
			"-endpointSpiffeID", "spiffe://org.test/s", "-trustDomainBundlePath", filepath.Join(dir, "none")}},
		{"data and flags", ExitUsage, "-trust-domain cannot be used with -data", []string{"create", "-data", "-", "-trustDomain", "x.test"}},
		{"show without a trust domain", ExitUsage, "-trust-domain is required", []string{"show"}},
		{"delete without an ID", ExitUsage, "-id is required", []string{"delete"}},
		{"refresh without an ID", ExitUsage, "-id is required", []string{"refresh"}},
		{"refresh absent", ExitFailure, `federation relationship with "new.test" not found`, []string{"refresh", "-id", "new.test"}},
		{"refresh of an endpoint down", ExitFailure, `admin: unavailable: fetching the bundle of "third.test" from https://127.0.0.1:1/ failed; the stored bundle stays: `,
			[]string{"refresh", "-id", "third.test"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runAt(t, s.socket, append([]string{"federation"}, tt.args...)...)
			assert.Equal(t, tt.code, r.code, r.stderr)
			assert.Contains(t, r.stderr, tt.want)
		})
	}

	// delete, with SPIRE's -id; the bundle stays.
	out = okAt(t, s.socket, "federation", "delete", "-id", "org.test")
	assert.Equal(t, "Federation relationship with org.test deleted; its bundle stays until bundle delete\n", out)
	assert.Contains(t, okAt(t, s.socket, "bundle", "list"), "org.test")
	r := runAt(t, s.socket, "federation", "delete", "-trustDomain", "org.test")
	assert.Equal(t, ExitFailure, r.code)
	assert.Contains(t, r.stderr, `federation relationship with "org.test" not found`)
}

// TestFederationData: SPIRE's -data file, with a PEM string and a SPIFFE
// document as bundles, from a file and from stdin; an item that fails
// fails the command, after the others are made.
func TestFederationData(t *testing.T) {
	org := startFedServer(t, issuing.Config{TrustDomain: spiffeid.RequireTrustDomainFromString("org.test"), FederationBind: "127.0.0.1:0"})
	s := startFedServer(t, issuing.Config{TrustDomain: td, FederationRefresh: time.Hour})
	pem := okAt(t, org.socket, "bundle", "show")
	doc := strings.TrimSpace(okAt(t, org.socket, "bundle", "show", "-format", "spiffe"))
	data := `{"federationRelationships": [
		{"trustDomain": "org.test", "bundleEndpointURL": "` + org.url() + `", "bundleEndpointProfile": "https_spiffe",
		 "endpointSPIFFEID": "spiffe://org.test/spiffekit/server", "trustDomainBundle": ` + jsonString(pem) + `, "trustDomainBundleFormat": "pem"},
		{"trustDomain": "web.test", "bundleEndpointURL": "https://web.test/bundle", "bundleEndpointProfile": "https_web"},
		{"trustDomain": "doc.test", "bundleEndpointURL": "https://doc.test/", "bundleEndpointProfile": "https_spiffe",
		 "endpointSPIFFEID": "spiffe://doc.test/server", "trustDomainBundle": ` + doc + `},
		{"trustDomain": "bad.test", "bundleEndpointURL": "https://bad.test/", "bundleEndpointProfile": "https_spiffe",
		 "endpointSPIFFEID": "spiffe://bad.test/server", "trustDomainBundle": "not a certificate"}]}`
	path := filepath.Join(t.TempDir(), "relationships.json")
	require.NoError(t, os.WriteFile(path, []byte(data), 0o600))
	r := runAt(t, s.socket, "federation", "create", "-data", path)
	assert.Equal(t, ExitFailure, r.code)
	assert.Contains(t, r.stderr, "1 of 4 federation relationships not created")
	assert.Equal(t, 3, strings.Count(r.stdout, "Source                    : datastore\n"), r.stdout)
	assert.Contains(t, r.stdout, "Failed: trust domain bundle (pem)")
	waitFor(t, "org.test to be fetched", func() bool { return strings.Contains(okAt(t, s.socket, "bundle", "list"), "org.test") })

	// From stdin, into another server: the same relationships, but the
	// failing one.
	other := startFedServer(t, issuing.Config{TrustDomain: td, FederationRefresh: time.Hour})
	var out, errb bytes.Buffer
	code := adminCommand(t.Context(), []string{"federation", "create", "-data", "-", "-admin-socket", other.socket},
		strings.NewReader(data), &out, &errb)
	assert.Equal(t, ExitFailure, code)
	assert.Equal(t, 3, strings.Count(okAt(t, other.socket, "federation", "list"), "Source                    : datastore\n"))

	for _, tt := range []struct{ name, data, want string }{
		{"not JSON", "{", "unexpected EOF"},
		{"unknown key", `{"federationRelationships": [{"trustDomain": "x.test", "x": 1}]}`, `unknown field "x"`},
		{"empty", `{"federationRelationships": []}`, "no federationRelationships"},
		{"bad bundle string", `{"federationRelationships": [{"trustDomain": "x.test", "trustDomainBundle": "\x"}]}`, "invalid character"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := adminCommand(t.Context(), []string{"federation", "create", "-data", "-", "-admin-socket", other.socket},
				strings.NewReader(tt.data), &out, &errb)
			assert.Equal(t, ExitFailure, code)
			assert.Contains(t, errb.String(), tt.want)
		})
	}
	// A server out of reach fails the file at its first relationship.
	r = runAt(t, filepath.Join(t.TempDir(), "none.sock"), "federation", "create", "-data", path, "-output", "json")
	assert.Equal(t, ExitFailure, r.code)
	assert.Empty(t, r.stdout)
	assert.Contains(t, r.stderr, "cannot reach the server")
	r = runAt(t, s.socket, "federation", "create", "-data", filepath.Join(t.TempDir(), "none.json"))
	assert.Equal(t, ExitFailure, r.code)
	assert.Contains(t, r.stderr, "no such file")
}

// TestFederationJSONOutput pins the -output json of the federation
// commands with golden files.
func TestFederationJSONOutput(t *testing.T) {
	org := startFedServer(t, issuing.Config{TrustDomain: spiffeid.RequireTrustDomainFromString("org.test"), FederationBind: "127.0.0.1:0"})
	s := startFedServer(t, issuing.Config{TrustDomain: td, FederationRefresh: time.Hour, Federation: []issuing.Relationship{{
		TrustDomain: spiffeid.RequireTrustDomainFromString("third.test"), URL: "https://127.0.0.1:1/", Profile: issuing.ProfileHTTPSWeb,
	}}})
	pemFile := filepath.Join(t.TempDir(), "org.pem")
	require.NoError(t, os.WriteFile(pemFile, []byte(okAt(t, org.socket, "bundle", "show")), 0o644))
	check := func(name string, code int, stdin string, args ...string) {
		t.Helper()
		var out, errb bytes.Buffer
		got := adminCommand(t.Context(), append(args, "-admin-socket", s.socket, "-output", "json"), strings.NewReader(stdin), &out, &errb)
		require.Equal(t, code, got, "%s: %s", name, errb.String())
		golden(t, name, out.String())
	}
	check("federation_create", ExitOK, "", "federation", "create", "-trustDomain", "org.test", "-bundleEndpointURL", org.url(),
		"-bundleEndpointProfile", "https_spiffe", "-endpointSpiffeID", "spiffe://org.test/spiffekit/server", "-trustDomainBundlePath", pemFile)
	check("federation_create_data", ExitFailure, `{"federationRelationships": [
		{"trustDomain": "web.test", "bundleEndpointURL": "https://web.test/bundle", "bundleEndpointProfile": "https_web"},
		{"trustDomain": "web.test", "bundleEndpointURL": "https://web.test/bundle", "bundleEndpointProfile": "https_web"}]}`,
		"federation", "create", "-data", "-")
	check("federation_update", ExitOK, "", "federation", "update", "-trustDomain", "web.test", "-bundleEndpointURL", "https://web.test/v2",
		"-bundleEndpointProfile", "https_web")
	check("federation_list", ExitOK, "", "federation", "list")
	check("federation_show", ExitOK, "", "federation", "show", "-trustDomain", "org.test")
	check("federation_delete", ExitOK, "", "federation", "delete", "-id", "web.test")
	waitFor(t, "the relationship to be fetched", func() bool {
		return strings.Contains(okAt(t, s.socket, "bundle", "list"), "org.test")
	})
	check("federation_refresh", ExitOK, "", "federation", "refresh", "-id", "org.test")
}

// jsonString quotes s as a JSON string.
func jsonString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// waitFor waits, bounded, until f holds.
func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	require.Eventually(t, f, 30*time.Second, 10*time.Millisecond, what)
}
