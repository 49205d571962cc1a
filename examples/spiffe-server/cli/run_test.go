package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/examples/internal/metrics/metricstest"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
)

// runMain runs "spiffe-server run" with args; it returns the exit code,
// stdout and stderr.
func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(t.Context(), append([]string{"run"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// writeJSON writes a configuration file and returns its path.
func writeJSON(t *testing.T, dir, text string) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "*.json")
	require.NoError(t, err)
	_, err = f.WriteString(text)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return f.Name()
}

func TestRunRejectsBadConfiguration(t *testing.T) {
	dir := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	for name, tc := range map[string]struct {
		args []string
		file string // written to a file given with -config, if set
		code int
		msg  string
	}{
		"unknown flag":        {[]string{"-nope"}, "", ExitUsage, "flag provided but not defined"},
		"stray argument":      {[]string{"-trust-domain", "example.org", "extra"}, "", ExitUsage, "unexpected argument"},
		"no trust domain":     {[]string{"-data-dir", dir}, "", ExitUsage, "-trust-domain is required"},
		"bad trust domain":    {[]string{"-trust-domain", "Not A Domain", "-data-dir", dir}, "", ExitUsage, "-trust-domain: spiffeid: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores"},
		"no data dir":         {[]string{"-trust-domain", "example.org"}, "", ExitUsage, "-data-dir is required"},
		"bad duration":        {[]string{"-trust-domain", "example.org", "-data-dir", dir, "-ca-ttl", "soon"}, "", ExitUsage, `invalid value "soon" for flag -ca-ttl`},
		"negative duration":   {[]string{"-trust-domain", "example.org", "-data-dir", dir, "-x509-svid-ttl", "-1h"}, "", ExitUsage, "-x509-svid-ttl: -1h0m0s is negative"},
		"bad log level":       {[]string{"-trust-domain", "example.org", "-data-dir", dir, "-log-level", "loud"}, "", ExitUsage, `-log-level: "loud" is not debug, info, warn or error`},
		"bad log format":      {[]string{"-trust-domain", "example.org", "-data-dir", dir, "-log-format", "xml"}, "", ExitUsage, `-log-format: "xml" is not text or json`},
		"missing config":      {[]string{"-config", filepath.Join(dir, "none.json")}, "", ExitUsage, "configuration file: open "},
		"unknown config key":  {nil, `{"trust_domian": "example.org"}`, ExitUsage, `unknown key "trust_domian"`},
		"bad config duration": {nil, `{"ca_ttl": 3600}`, ExitUsage, `ca_ttl: invalid value "3600": time: missing unit in duration "3600"`},
		"bad port":            {[]string{"-trust-domain", "example.org", "-data-dir", dir, "-bind", "127.0.0.1:99999", "-admin-socket", ""}, "", ExitUsage, `spiffe-server run: server: invalid configuration: the node API address "127.0.0.1:99999": the port must be a number from 0 to 65535` + "\n"},
		"one port twice":      {[]string{"-trust-domain", "example.org", "-data-dir", dir, "-bind", "127.0.0.1:8081", "-federation-bind", ":8081", "-admin-socket", ""}, "", ExitUsage, "the node API and the bundle endpoint both listen on 127.0.0.1:8081"},
		"admin socket too long": {[]string{"-trust-domain", "example.org", "-data-dir", dir, "-admin-socket", "/run/" + strings.Repeat("a", 110) + "/admin.sock"}, "", ExitUsage,
			"spiffe-server run: -admin-socket: the path /run/" + strings.Repeat("a", 110) + "/admin.sock is longer than the 107 bytes a unix socket allows\n"},
		"bad metrics address": {[]string{"-trust-domain", "example.org", "-data-dir", dir, "-metrics-addr", "localhost"}, "", ExitUsage, `-metrics-addr "localhost": address localhost: missing port in address`},
		"port taken":          {[]string{"-trust-domain", "example.org", "-data-dir", dir, "-bind", busy.Addr().String(), "-admin-socket", ""}, "", ExitFailure, "spiffe-server run: server: node API: listen tcp " + busy.Addr().String() + ": bind: address already in use\n"},
		"negative handshakes": {[]string{"-trust-domain", "example.org", "-data-dir", dir, "-max-handshakes", "-1"}, "", ExitUsage,
			`spiffe-server run: invalid value "-1" for flag -max-handshakes: want a number of handshakes, 0 (two per CPU) or more` + "\n"},
		"handshakes not a number": {nil, `{"max_handshakes": "many"}`, ExitUsage, `: max_handshakes: invalid value "many": want a number of handshakes, 0 (two per CPU) or more` + "\n"},
		"handshakes a fraction":   {nil, `{"max_handshakes": 2.5}`, ExitUsage, `: max_handshakes: invalid value "2.5": want a number of handshakes`},
		"handshakes from the environment": {[]string{"-trust-domain", "example.org", "-data-dir", dir}, "", ExitUsage,
			`flag "max-handshakes" from environment variable "SPIFFE_SERVER_MAX_HANDSHAKES": want a number of handshakes`}, // set below
		"negative handshake wait": {[]string{"-trust-domain", "example.org", "-data-dir", dir, "-handshake-wait", "-1s"}, "", ExitUsage,
			"spiffe-server run: -handshake-wait: -1s is negative\n"},
		"bad handshake wait":          {nil, `{"handshake_wait": "soon"}`, ExitUsage, `: handshake_wait: invalid value "soon": time: invalid duration "soon"` + "\n"},
		"handshake wait without unit": {nil, `{"handshake_wait": 10}`, ExitUsage, `: handshake_wait: invalid value "10": time: missing unit in duration "10"` + "\n"},
	} {
		t.Run(name, func(t *testing.T) {
			if name == "handshakes from the environment" {
				t.Setenv("SPIFFE_SERVER_MAX_HANDSHAKES", "-4")
			}
			args := tc.args
			if tc.file != "" {
				args = append([]string{"-config", writeJSON(t, dir, tc.file)}, args...)
			}
			code, stdout, stderr := runMain(t, args...)
			assert.Equal(t, tc.code, code, stderr)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, tc.msg)
			if code == ExitUsage {
				lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
				require.Len(t, lines, 2, stderr)
				assert.True(t, strings.HasPrefix(lines[0], "spiffe-server run: "), stderr)
			}
		})
	}
}

func TestRunHelp(t *testing.T) {
	code, stdout, stderr := runMain(t, "-h")
	assert.Equal(t, ExitOK, code)
	assert.Empty(t, stderr)
	for _, want := range []string{
		"Usage: spiffe-server run [flags]",
		"-trust-domain domain",
		"environment SPIFFE_SERVER_TRUST_DOMAIN, file key trust_domain",
		"environment SPIFFE_SERVER_X509POP_CA_BUNDLE, file key x509pop_ca_bundle",
		"-bind address\n    \taddress of the node API (default 127.0.0.1:8081)",
		"File only:\n  federates_with",
		"-max-handshakes number\n",
		"environment SPIFFE_SERVER_MAX_HANDSHAKES, file key max_handshakes",
		"-handshake-wait duration\n",
		"environment SPIFFE_SERVER_HANDSHAKE_WAIT, file key handshake_wait",
	} {
		assert.Contains(t, stdout, want)
	}
}

// TestConfigurationSources checks every key of the configuration file of
// the README, and that a flag wins over the environment, which wins over
// the file.
func TestConfigurationSources(t *testing.T) {
	dir := t.TempDir()
	file := writeJSON(t, dir, `{
	  "trust_domain": "example.org",
	  "data_dir": "/var/lib/spiffe-server",
	  "bind": "0.0.0.0:8081",
	  "admin_socket": "/run/spiffe-server/admin.sock",
	  "datastore": "postgres://spiffe@db.internal/spiffe",
	  "x509pop_ca_bundle": "/etc/spiffe-server/node-ca.pem",
	  "ca_ttl": "24h",
	  "x509_svid_ttl": "1h",
	  "jwt_svid_ttl": "5m",
	  "jwt_svid_jti": true,
	  "jwt_issuer": "https://oidc.example.org",
	  "wit_svids": true,
	  "wit_svid_ttl": "30m",
	  "agent_svid_ttl": "1h",
	  "metrics_addr": "127.0.0.1:9988",
	  "log_level": "info",
	  "log_format": "json",
	  "federation_bind": "0.0.0.0:8443",
	  "federation_profile": "https_spiffe",
	  "federation_cert": "/etc/c.pem",
	  "federation_key": "/etc/k.pem",
	  "federation_refresh": "1m",
	  "max_handshakes": 64,
	  "handshake_wait": "15s",
	  "federates_with": [
	    {
	      "trust_domain": "partner.test",
	      "url": "https://bundle.partner.test:8443/",
	      "profile": "https_spiffe",
	      "endpoint_spiffe_id": "spiffe://partner.test/spiffekit/server",
	      "bundle_file": "/etc/spiffe-server/partner.test.json"
	    },
	    {
	      "trust_domain": "saas.example",
	      "url": "https://saas.example/spiffe/bundle.json",
	      "profile": "https_web",
	      "web_pki_roots": "/etc/roots.pem"
	    }
	  ]
	}`)
	parse := func(args ...string) runConfig {
		t.Helper()
		var rc runConfig
		var stdout, stderr bytes.Buffer
		code, ok := newRunCommand(&rc).Parse(args, &stdout, &stderr)
		require.True(t, ok, "exit %d: %s", code, stderr.String())
		return rc
	}
	rc := parse("-config", file)
	assert.Equal(t, runConfig{
		TrustDomain: "example.org", DataDir: "/var/lib/spiffe-server", Bind: "0.0.0.0:8081",
		AdminSocket: "/run/spiffe-server/admin.sock", Datastore: "postgres://spiffe@db.internal/spiffe",
		X509PoPCABundle: "/etc/spiffe-server/node-ca.pem",
		CATTL:           24 * time.Hour, X509SVIDTTL: time.Hour, JWTSVIDTTL: 5 * time.Minute, JWTSVIDJTI: true, JWTIssuer: "https://oidc.example.org",
		WITSVIDs: true, WITSVIDTTL: 30 * time.Minute, AgentSVIDTTL: time.Hour,
		MetricsAddr: "127.0.0.1:9988", LogLevel: "info", LogFormat: "json",
		FederationBind: "0.0.0.0:8443", FederationProfile: "https_spiffe",
		FederationCert: "/etc/c.pem", FederationKey: "/etc/k.pem", FederationRefresh: time.Minute,
		MaxHandshakes: 64, HandshakeWait: 15 * time.Second,
		FederatesWith: []relationshipConfig{
			{TrustDomain: "partner.test", URL: "https://bundle.partner.test:8443/", Profile: "https_spiffe",
				EndpointSPIFFEID: "spiffe://partner.test/spiffekit/server", BundleFile: "/etc/spiffe-server/partner.test.json"},
			{TrustDomain: "saas.example", URL: "https://saas.example/spiffe/bundle.json", Profile: "https_web", WebPKIRoots: "/etc/roots.pem"},
		},
	}, rc)
	cfg, _, err := buildConfig(rc, io.Discard)
	require.NoError(t, err)
	require.Len(t, cfg.Federation, 2)
	assert.Equal(t, "spiffe://partner.test/spiffekit/server", cfg.Federation[0].EndpointSPIFFEID.String())
	assert.Equal(t, time.Minute, cfg.FederationRefresh)
	assert.True(t, cfg.JWTSVIDJTI, "jwt_svid_jti reaches the server's configuration")
	assert.Equal(t, "https://oidc.example.org", cfg.JWTIssuer)
	assert.True(t, cfg.WITSVIDs, "wit_svids reaches the server's configuration")
	assert.Equal(t, 30*time.Minute, cfg.WITSVIDTTL)
	assert.Equal(t, 64, cfg.MaxHandshakes, "max_handshakes reaches the server's configuration")
	assert.Equal(t, 15*time.Second, cfg.HandshakeWait, "handshake_wait reaches the server's configuration")

	t.Setenv("SPIFFE_SERVER_BIND", "10.0.0.1:8081")
	t.Setenv("SPIFFE_SERVER_CA_TTL", "48h")
	t.Setenv("SPIFFE_SERVER_CONFIG", file)
	t.Setenv("SPIFFE_SERVER_MAX_HANDSHAKES", "8")
	rc = parse("-ca-ttl", "12h", "-handshake-wait", "3s")
	assert.Equal(t, "10.0.0.1:8081", rc.Bind, "the environment wins over the file")
	assert.Equal(t, 12*time.Hour, rc.CATTL, "a flag wins over the environment")
	assert.Equal(t, "example.org", rc.TrustDomain, "the file fills in the rest")
	assert.Equal(t, 8, rc.MaxHandshakes, "SPIFFE_SERVER_MAX_HANDSHAKES wins over the file")
	assert.Equal(t, 3*time.Second, rc.HandshakeWait, "-handshake-wait wins over the file")
	assert.Len(t, rc.FederatesWith, 2)
}

// TestRunServesUntilCancelled starts the server from a configuration file
// with a flag overriding one key, uses it, and stops it. The node API
// handshakes its clients one at a time (max_handshakes 1), each in turn.
func TestRunServesUntilCancelled(t *testing.T) {
	dir, err := os.MkdirTemp("", "run")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "admin.sock")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	metricsAddr := l.Addr().String()
	l.Close()
	cfg, err := json.Marshal(map[string]string{
		"trust_domain": "example.org",
		"data_dir":     filepath.Join(dir, "data"),
		"bind":         "127.0.0.1:1", // overridden by the flag below
		"admin_socket": sock,
		"metrics_addr": metricsAddr,
		"log_format":   "json",
		"ca_ttl":       "12h",
		// One handshake at a time; the others wait their turn up to a
		// minute, which none needs.
		"max_handshakes": "1",
		"handshake_wait": "1m",
	})
	require.NoError(t, err)
	cfgPath := filepath.Join(dir, "server.json")
	require.NoError(t, os.WriteFile(cfgPath, cfg, 0o600))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr logtest.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"run", "-config", cfgPath, "-bind", "127.0.0.1:0"}, io.Discard, &stderr)
	}()
	waitReady(t, &stderr, done)

	var out bytes.Buffer
	var errOut bytes.Buffer
	code := Main(ctx, []string{"token", "generate", "-admin-socket", sock}, &out, &errOut)
	require.Equal(t, ExitOK, code, errOut.String())
	assert.Regexp(t, `^[0-9a-f]+\.[A-Za-z0-9_-]+\n$`, out.String())

	// Several clients of the node API at once are all handshaken, in turn,
	// with the server's SVID.
	nodeAPI := logField(t, stderr.String(), "server ready", "node_api")
	out.Reset()
	code = Main(ctx, []string{"bundle", "show", "-admin-socket", sock}, &out, &errOut)
	require.Equal(t, ExitOK, code, errOut.String())
	bundle, err := x509bundle.Parse(td, out.Bytes())
	require.NoError(t, err)
	tlsConfig := tlsconfig.TLSClientConfig(bundle, tlsconfig.AuthorizeMemberOf(td))
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			d := tls.Dialer{Config: tlsConfig}
			c, err := d.DialContext(ctx, "tcp", nodeAPI)
			if err == nil {
				c.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}

	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && strings.Contains(string(b), "\nspiffekit_server_bundle_x509_authorities 1\n")
	}, 10*time.Second, 20*time.Millisecond)
	m := metricstest.Scrape(t, "http://"+metricsAddr+"/metrics")
	for _, series := range []string{"spiffekit_server_entries", "spiffekit_server_agents", "spiffekit_server_connected_agents",
		"spiffekit_server_skipped_authorities_total", "spiffekit_server_node_handshakes_refused_total"} {
		v, ok := m.Get(series)
		assert.True(t, ok, series)
		assert.Zero(t, v, series)
	}
	expiry, ok := m.Get("spiffekit_server_ca_expiry_seconds")
	assert.True(t, ok)
	assert.InDelta(t, (12 * time.Hour).Seconds(), expiry, 120, "the CA of ca_ttl 12h expires in about 12h")
	_, ok = m.Get("go_goroutines")
	assert.True(t, ok, "the Go collector")
	_, ok = m.Get("process_start_time_seconds")
	assert.True(t, ok, "the process collector")
	resp, err := http.Get("http://" + metricsAddr + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Contains(t, stderr.String(), `"msg":"server ready"`, "JSON logs, as the file asked")
	assert.NotContains(t, stderr.String(), "127.0.0.1:1\"", "the flag won over the file")

	stopRuns(t, cancel, &stderr, done)
	// The shutdown is logged, with its cause, and its end.
	assert.Contains(t, stderr.String(), `"msg":"shutting down","cause":"context canceled"`)
	assert.Contains(t, stderr.String(), `"msg":"server stopped"`)
	assert.NotContains(t, stderr.String(), `"level":"ERROR"`)
}

// logField returns the string value of key in the first JSON log line
// whose msg is msg.
func logField(t *testing.T, logs, msg, key string) string {
	t.Helper()
	for line := range strings.Lines(logs) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != msg {
			continue
		}
		v, ok := rec[key].(string)
		require.True(t, ok, "%s has no %s: %s", msg, key, line)
		return v
	}
	t.Fatalf("no %q line in %s", msg, logs)
	return ""
}

// waitReady waits for a server started by run to log that it is ready:
// its sockets then accept connections. (The socket file appears at bind,
// a moment before the listen that makes it accept.)
func waitReady(t *testing.T, logs *logtest.Buffer, done chan int) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for !strings.Contains(logs.String(), "server ready") {
		select {
		case code := <-done:
			t.Fatalf("run exited with %d: %s", code, logs.String())
		case <-deadline:
			t.Fatalf("the server did not get ready: %s", logs.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestRunRejectsBadFederation(t *testing.T) {
	dir := t.TempDir()
	base := []string{"-trust-domain", "example.org", "-data-dir", filepath.Join(dir, "data"), "-bind", "127.0.0.1:0", "-admin-socket", ""}
	rel := `{"trust_domain": "partner.test", "url": "https://partner.test/", "profile": "https_web"}`
	for name, tc := range map[string]struct {
		file string
		args []string
		code int
		msg  string
	}{
		"no trust domain":     {`{"federates_with": [{"url": "https://x/", "profile": "https_web"}]}`, nil, ExitUsage, "federates_with[0]: trust_domain is required"},
		"bad trust domain":    {`{"federates_with": [{"trust_domain": "Bad TD"}]}`, nil, ExitUsage, "federates_with[0]: trust_domain"},
		"bad endpoint ID":     {`{"federates_with": [` + rel + `, {"trust_domain": "b.test", "endpoint_spiffe_id": "nope"}]}`, nil, ExitUsage, "federates_with[1]: endpoint_spiffe_id"},
		"unknown field":       {`{"federates_with": [{"trust_domain": "p.test", "endpoint_id": "x"}]}`, nil, ExitUsage, `federates_with: json: unknown field "endpoint_id"`},
		"not a list":          {`{"federates_with": {"trust_domain": "p.test"}}`, nil, ExitUsage, "federates_with: json: cannot unmarshal object"},
		"not from a flag":     {`{}`, []string{"-federates-with", "p.test"}, ExitUsage, "flag provided but not defined: -federates-with"},
		"own trust domain":    {`{"federates_with": [{"trust_domain": "example.org", "url": "https://x/", "profile": "https_web"}]}`, nil, ExitUsage, "a trust domain's own bundle can never be overwritten through federation"},
		"http URL":            {`{"federates_with": [{"trust_domain": "p.test", "url": "http://x/", "profile": "https_web"}]}`, nil, ExitUsage, "https"},
		"no profile":          {`{"federates_with": [{"trust_domain": "p.test", "url": "https://x/"}]}`, nil, ExitUsage, "profile is required"},
		"bad refresh":         {`{"federation_refresh": "often"}`, nil, ExitUsage, `federation_refresh: invalid value "often": time: invalid duration "often"`},
		"web endpoint no key": {`{"federation_bind": "127.0.0.1:0", "federation_profile": "https_web", "federation_cert": "c.pem"}`, nil, ExitUsage, "needs a certificate file and a key file"},
	} {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"-config", writeJSON(t, dir, tc.file)}, base...)
			code, _, stderr := runMain(t, append(args, tc.args...)...)
			assert.Equal(t, tc.code, code, stderr)
			assert.Contains(t, stderr, tc.msg)
		})
	}
}

// TestRunFederation: two servers started from the command line federate
// as the README tells: the operator of partner.test takes example.org's
// bundle with `bundle show -format spiffe` and names it in federates_with;
// partner.test then keeps example.org's bundle, which `bundle list` shows.
func TestRunFederation(t *testing.T) {
	dir, err := os.MkdirTemp("", "fed")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	run := func(args ...string) (chan int, *logtest.Buffer) {
		var stderr logtest.Buffer
		done := make(chan int, 1)
		go func() { done <- Main(ctx, append([]string{"run"}, args...), io.Discard, &stderr) }()
		return done, &stderr
	}
	admin := func(args ...string) string {
		var out, stderr bytes.Buffer
		code := Main(ctx, args, &out, &stderr)
		require.Equal(t, ExitOK, code, stderr.String())
		return out.String()
	}

	orgSock := filepath.Join(dir, "org.sock")
	orgFed := freeAddr(t)
	orgDone, orgErr := run("-trust-domain", "example.org", "-data-dir", filepath.Join(dir, "org"), "-bind", "127.0.0.1:0",
		"-admin-socket", orgSock, "-federation-bind", orgFed, "-federation-profile", "https_spiffe", "-federation-refresh", "1m")
	waitReady(t, orgErr, orgDone)
	bundlePath := filepath.Join(dir, "example.org.json")
	require.NoError(t, os.WriteFile(bundlePath, []byte(admin("bundle", "show", "-format", "spiffe", "-admin-socket", orgSock)), 0o600))

	partnerSock := filepath.Join(dir, "partner.sock")
	cfg, err := json.Marshal(map[string]any{
		"trust_domain": "partner.test", "data_dir": filepath.Join(dir, "partner"), "bind": "127.0.0.1:0", "admin_socket": partnerSock,
		"federates_with": []relationshipConfig{{
			TrustDomain: "example.org", URL: "https://" + orgFed + "/", Profile: "https_spiffe",
			EndpointSPIFFEID: "spiffe://example.org/spiffekit/server", BundleFile: bundlePath,
		}},
	})
	require.NoError(t, err)
	cfgPath := filepath.Join(dir, "partner.json")
	require.NoError(t, os.WriteFile(cfgPath, cfg, 0o600))
	partnerDone, partnerErr := run("-config", cfgPath)
	waitReady(t, partnerErr, partnerDone)
	require.Eventually(t, func() bool {
		return strings.Contains(admin("bundle", "list", "-admin-socket", partnerSock), "example.org")
	}, 20*time.Second, 20*time.Millisecond, partnerErr.String())
	assert.Contains(t, orgErr.String(), "serving the bundle endpoint")

	stopRuns(t, cancel, partnerErr, orgDone, partnerDone)
}

// TestNodeAttestorsSection reads node_attestors as SPIRE's server
// configuration writes it: join_token (always on) as an empty object,
// x509pop's CA bundle at ca_bundle_path, k8s_psat's clusters.
func TestNodeAttestorsSection(t *testing.T) {
	dir := t.TempDir()
	parse := func(text string, args ...string) (runConfig, error) {
		t.Helper()
		var rc runConfig
		var stdout, stderr bytes.Buffer
		_, ok := newRunCommand(&rc).Parse(append([]string{"-config", writeJSON(t, dir, text)}, args...), &stdout, &stderr)
		require.True(t, ok, stderr.String())
		return rc, nodeAttestorKeys(&rc)
	}
	rc, err := parse(`{"node_attestors": {"join_token": {}, "x509pop": {"ca_bundle_path": "/etc/node-ca.pem"},
		"k8s_psat": {"clusters": {"prod": {"service_account_allow_list": ["spire:spire-agent"], "audience": ["spire-server"]}}}}}`)
	require.NoError(t, err)
	assert.Equal(t, "/etc/node-ca.pem", rc.X509PoPCABundle)
	require.NotNil(t, rc.K8sPSAT)
	assert.Equal(t, []string{"spire-server"}, rc.K8sPSAT.Clusters["prod"].Audience)

	rc, err = parse(`{"node_attestors": {"aws_iid": {"account_allow_list": ["123456789012"], "partition": "aws-us-gov",
		"region_allow_list": ["us-gov-west-1"], "rsa2048_certificates": {"us-gov-west-1": "/etc/aws/gov.pem"}, "allow_reattestation": true}}}`)
	require.NoError(t, err)
	require.NotNil(t, rc.AWSIID)
	assert.Equal(t, awsIIDConfig{AccountAllowList: []string{"123456789012"}, RegionAllowList: []string{"us-gov-west-1"}, Partition: "aws-us-gov",
		RSA2048Certificates: map[string]string{"us-gov-west-1": "/etc/aws/gov.pem"}, AllowReattestation: true}, *rc.AWSIID)

	rc, err = parse(`{"node_attestors": {"aws_iid": {"account_allow_list": ["123456789012"], "access_key_id": "AKID", "secret_access_key": "secret",
		"assume_role": "spire-attestor", "skip_block_device": true, "disable_instance_profile_selectors": true, "ec2_lookup": true,
		"ec2_endpoint": "https://ec2.example", "iam_endpoint": "https://iam.example", "sts_endpoint": "https://sts.example"}}}`)
	require.NoError(t, err)
	assert.Equal(t, awsIIDConfig{AccountAllowList: []string{"123456789012"}, AccessKeyID: "AKID", SecretAccessKey: "secret",
		AssumeRole: "spire-attestor", SkipBlockDevice: true, DisableInstanceProfileSelectors: true, EC2Lookup: true,
		EC2Endpoint: "https://ec2.example", IAMEndpoint: "https://iam.example", STSEndpoint: "https://sts.example"}, *rc.AWSIID)

	rc, err = parse(`{"node_attestors": {"gcp_iit": {"projectid_allow_list": ["my-project"], "agent_path_template": "/{{ .PluginName }}/{{ .InstanceID }}",
		"use_instance_metadata": true, "service_account_file": "/etc/gcp/sa.json", "compute_api_url": "https://compute.example/v1/", "allowed_label_keys": ["env"], "allowed_metadata_keys": ["role"],
		"max_metadata_value_size": 256, "audience": "spiffe://example.org", "keys_file": "/etc/gcp/keys.json", "allow_reattestation": true}}}`)
	require.NoError(t, err)
	require.NotNil(t, rc.GCPIIT)
	assert.Equal(t, gcpIITConfig{ProjectIDAllowList: []string{"my-project"}, AgentPathTemplate: "/{{ .PluginName }}/{{ .InstanceID }}",
		UseInstanceMetadata: true, ServiceAccountFile: "/etc/gcp/sa.json", ComputeAPIURL: "https://compute.example/v1/", AllowedLabelKeys: []string{"env"}, AllowedMetadataKeys: []string{"role"}, MaxMetadataValueSize: 256,
		Audience: "spiffe://example.org", KeysFile: "/etc/gcp/keys.json", AllowReattestation: true}, *rc.GCPIIT)

	rc, err = parse(`{"node_attestors": {"azure_msi": {"tenants": {"72f988bf-86f1-41af-91ab-2d7cd011db47": {"resource_id": "api://spire"}},
		"keys_url": "https://login.example/{tenant}/keys", "allow_reattestation": true}}}`)
	require.NoError(t, err)
	require.NotNil(t, rc.AzureMSI)
	assert.Equal(t, azureMSIConfig{Tenants: map[string]azureMSITenant{"72f988bf-86f1-41af-91ab-2d7cd011db47": {ResourceID: "api://spire"}},
		KeysURL: "https://login.example/{tenant}/keys", AllowReattestation: true}, *rc.AzureMSI)

	rc, err = parse(`{"node_attestors": {"azure_msi": {"tenants": {"72f988bf-86f1-41af-91ab-2d7cd011db47": {"app_id": "app", "app_secret": "secret"}},
		"arm_endpoint": "https://arm.example", "login_endpoint": "https://login.example"}}}`)
	require.NoError(t, err)
	assert.Equal(t, azureMSIConfig{Tenants: map[string]azureMSITenant{"72f988bf-86f1-41af-91ab-2d7cd011db47": {AppID: "app", AppSecret: "secret"}},
		ARMEndpoint: "https://arm.example", LoginEndpoint: "https://login.example"}, *rc.AzureMSI)

	rc, err = parse(`{"node_attestors": {"azure_imds": {"tenants": {"contoso.onmicrosoft.com": {"allowed_subscriptions": ["8f2a1c3d-4b5e-6f70-8192-a3b4c5d6e7f8"]}},
		"root_certificates": "/etc/azure/roots.pem", "issuer_hosts": [], "allow_reattestation": true}}}`)
	require.NoError(t, err)
	require.NotNil(t, rc.AzureIMDS)
	assert.Equal(t, azureIMDSConfig{Tenants: map[string]azureIMDSTenant{"contoso.onmicrosoft.com": {AllowedSubscriptions: []string{"8f2a1c3d-4b5e-6f70-8192-a3b4c5d6e7f8"}}},
		RootCertificates: "/etc/azure/roots.pem", IssuerHosts: []string{}, AllowReattestation: true}, *rc.AzureIMDS)

	rc, err = parse(`{"node_attestors": {"x509pop": {"ca_bundle_path": "/etc/node-ca.pem"}}}`, "-x509pop-ca-bundle", "/etc/node-ca.pem")
	require.NoError(t, err, "the same file twice")
	assert.Equal(t, "/etc/node-ca.pem", rc.X509PoPCABundle)
	_, err = parse(`{"node_attestors": {"x509pop": {"ca_bundle_path": "/etc/a.pem"}}}`, "-x509pop-ca-bundle", "/etc/b.pem")
	require.ErrorContains(t, err, "given twice")
	_, err = parse(`{"node_attestors": {"x509pop": {}}}`)
	require.ErrorContains(t, err, "ca_bundle_path is required")

	for text, msg := range map[string]string{
		`{"node_attestors": {"join_token": {"x": 1}}}`:                 `node_attestors.join_token: json: unknown field "x"`,
		`{"node_attestors": {"x509pop": {"ca_bundle_paths": []}}}`:     `unknown field "ca_bundle_paths"`,
		`{"node_attestors": {"sshpop": {}}}`:                           "node_attestors.sshpop",
		`{"node_attestors": {"tpm_devid": {"devid_bundle_path": ""}}}`: `node_attestors.tpm_devid: json: unknown field "devid_bundle_path"`,
		`{"node_attestors": {"tpm": {"ek_hash": []}}}`:                 `unknown field "ek_hash"`,
		`{"node_attestors": {"aws_iid": {"verify_organization": {}}}}`: `node_attestors.aws_iid: json: unknown field "verify_organization"`,
		`{"node_attestors": {"azure_msi": {"use_msi": true}}}`:         `node_attestors.azure_msi: json: unknown field "use_msi"`,
		`{"node_attestors": {"gcp_iit": {"projectid_allowlist": []}}}`: `node_attestors.gcp_iit: json: unknown field "projectid_allowlist"`,
	} {
		code, _, stderr := runMain(t, "-config", writeJSON(t, dir, text))
		assert.Equal(t, ExitUsage, code, text)
		assert.Contains(t, stderr, msg, text)
	}
	code, _, stderr := runMain(t, "-config", writeJSON(t, dir, `{"node_attestors": {"x509pop": {}}}`), "-trust-domain", "example.org", "-data-dir", dir)
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, "ca_bundle_path is required")
}
