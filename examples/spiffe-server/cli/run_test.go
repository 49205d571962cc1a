package cli

import (
	"bytes"
	"context"
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
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestRunRejectsBadConfiguration(t *testing.T) {
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.json")
	require.NoError(t, os.WriteFile(unknown, []byte(`{"trust_domian": "example.org"}`), 0o600))
	for name, tc := range map[string]struct {
		args []string
		code int
		msg  string
	}{
		"unknown flag":        {[]string{"-nope"}, ExitUsage, "flag provided but not defined"},
		"stray argument":      {[]string{"-trust-domain", "example.org", "extra"}, ExitUsage, "unexpected argument"},
		"no trust domain":     {[]string{"-data-dir", dir}, ExitUsage, "-trust-domain is required"},
		"bad trust domain":    {[]string{"-trust-domain", "Not A Domain", "-data-dir", dir}, ExitUsage, "-trust-domain"},
		"no data dir":         {[]string{"-trust-domain", "example.org"}, ExitUsage, "-data-dir is required"},
		"bad duration":        {[]string{"-trust-domain", "example.org", "-data-dir", dir, "-ca-ttl", "soon"}, ExitUsage, "-ca-ttl"},
		"negative duration":   {[]string{"-trust-domain", "example.org", "-data-dir", dir, "-x509-svid-ttl", "-1h"}, ExitUsage, "-x509-svid-ttl"},
		"bad log level":       {[]string{"-trust-domain", "example.org", "-data-dir", dir, "-log-level", "loud"}, ExitUsage, "-log-level"},
		"bad log format":      {[]string{"-trust-domain", "example.org", "-data-dir", dir, "-log-format", "xml"}, ExitUsage, "-log-format"},
		"missing config":      {[]string{"-config", filepath.Join(dir, "none.json")}, ExitFailure, "reading the configuration"},
		"unknown config key":  {[]string{"-config", unknown}, ExitFailure, "trust_domian"},
		"port taken or wrong": {[]string{"-trust-domain", "example.org", "-data-dir", dir, "-bind", "256.1.1.1:1", "-admin-socket", ""}, ExitFailure, "node API"},
	} {
		t.Run(name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := Run(t.Context(), tc.args, &stderr)
			assert.Equal(t, tc.code, code, stderr.String())
			assert.Contains(t, stderr.String(), tc.msg)
		})
	}
}

// TestRunServesUntilCancelled starts the server from a configuration file
// with a flag overriding one key, uses it, and stops it.
func TestRunServesUntilCancelled(t *testing.T) {
	dir, err := os.MkdirTemp("", "run")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "admin.sock")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	metricsAddr := l.Addr().String()
	l.Close()
	cfg, err := json.Marshal(FileConfig{
		TrustDomain: "example.org",
		DataDir:     filepath.Join(dir, "data"),
		Bind:        "127.0.0.1:1", // overridden by the flag below
		AdminSocket: sock,
		MetricsAddr: metricsAddr,
		LogFormat:   "json",
		CATTL:       "12h",
	})
	require.NoError(t, err)
	cfgPath := filepath.Join(dir, "server.json")
	require.NoError(t, os.WriteFile(cfgPath, cfg, 0o600))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"run", "-config", cfgPath, "-bind", "127.0.0.1:0"}, io.Discard, &stderr)
	}()
	require.Eventually(t, func() bool { _, err := os.Stat(sock); return err == nil }, 20*time.Second, 10*time.Millisecond, stderr.String())

	var out bytes.Buffer
	code := Main(ctx, []string{"token", "generate", "-admin-socket", sock}, &out, io.Discard)
	require.Equal(t, ExitOK, code)
	assert.Regexp(t, `^[0-9a-f]+\.[A-Za-z0-9_-]+\n$`, out.String())

	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && strings.Contains(string(b), "spiffe_server_bundle_x509_authorities 1")
	}, 10*time.Second, 20*time.Millisecond)
	resp, err := http.Get("http://" + metricsAddr + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Contains(t, stderr.String(), `"msg":"server ready"`, "JSON logs, as the file asked")
	assert.NotContains(t, stderr.String(), "127.0.0.1:1\"", "the flag won over the file")

	cancel()
	select {
	case code := <-done:
		assert.Equal(t, ExitOK, code, stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatal("run did not stop")
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
	write := func(fc FileConfig) string {
		fc.TrustDomain, fc.DataDir, fc.Bind, fc.AdminSocket = "example.org", filepath.Join(dir, "data"), "127.0.0.1:0", ""
		b, err := json.Marshal(fc)
		require.NoError(t, err)
		f, err := os.CreateTemp(dir, "*.json")
		require.NoError(t, err)
		_, err = f.Write(b)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		return f.Name()
	}
	rel := FederatesWith{TrustDomain: "partner.test", URL: "https://partner.test/", Profile: "https_web"}
	for name, tc := range map[string]struct {
		fc   FileConfig
		code int
		msg  string
	}{
		"no trust domain":     {FileConfig{FederatesWith: []FederatesWith{{URL: "https://x/", Profile: "https_web"}}}, ExitUsage, "federates_with[0]: trust_domain is required"},
		"bad trust domain":    {FileConfig{FederatesWith: []FederatesWith{{TrustDomain: "Bad TD"}}}, ExitUsage, "federates_with[0]: trust_domain"},
		"bad endpoint ID":     {FileConfig{FederatesWith: []FederatesWith{rel, {TrustDomain: "b.test", EndpointSPIFFEID: "nope"}}}, ExitUsage, "federates_with[1]: endpoint_spiffe_id"},
		"own trust domain":    {FileConfig{FederatesWith: []FederatesWith{{TrustDomain: "example.org", URL: "https://x/", Profile: "https_web"}}}, ExitFailure, "a trust domain's own bundle can never be overwritten through federation"},
		"http URL":            {FileConfig{FederatesWith: []FederatesWith{{TrustDomain: "p.test", URL: "http://x/", Profile: "https_web"}}}, ExitFailure, "https"},
		"no profile":          {FileConfig{FederatesWith: []FederatesWith{{TrustDomain: "p.test", URL: "https://x/"}}}, ExitFailure, "profile is required"},
		"bad refresh":         {FileConfig{FederationRefresh: "often"}, ExitUsage, "-federation-refresh"},
		"web endpoint no key": {FileConfig{FederationBind: "127.0.0.1:0", FederationProfile: "https_web", FederationCert: "c.pem"}, ExitFailure, "needs a certificate file and a key file"},
	} {
		t.Run(name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := Run(t.Context(), []string{"-config", write(tc.fc)}, &stderr)
			assert.Equal(t, tc.code, code, stderr.String())
			assert.Contains(t, stderr.String(), tc.msg)
		})
	}
	// Unknown keys inside a relationship are refused too.
	bad := filepath.Join(dir, "unknown.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"federates_with": [{"trust_domain": "p.test", "endpoint_id": "x"}]}`), 0o600))
	var stderr bytes.Buffer
	assert.Equal(t, ExitFailure, Run(t.Context(), []string{"-config", bad}, &stderr))
	assert.Contains(t, stderr.String(), "endpoint_id")
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
	run := func(args ...string) (chan int, *lockedBuffer) {
		var stderr lockedBuffer
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
	waitSocket := func(sock string, stderr *lockedBuffer) {
		require.Eventually(t, func() bool { _, err := os.Stat(sock); return err == nil }, 20*time.Second, 10*time.Millisecond, stderr.String())
	}

	orgSock := filepath.Join(dir, "org.sock")
	orgFed := freeAddr(t)
	orgDone, orgErr := run("-trust-domain", "example.org", "-data-dir", filepath.Join(dir, "org"), "-bind", "127.0.0.1:0",
		"-admin-socket", orgSock, "-federation-bind", orgFed, "-federation-profile", "https_spiffe", "-federation-refresh", "1m")
	waitSocket(orgSock, orgErr)
	bundlePath := filepath.Join(dir, "example.org.json")
	require.NoError(t, os.WriteFile(bundlePath, []byte(admin("bundle", "show", "-format", "spiffe", "-admin-socket", orgSock)), 0o600))

	partnerSock := filepath.Join(dir, "partner.sock")
	cfg, err := json.Marshal(FileConfig{
		TrustDomain: "partner.test", DataDir: filepath.Join(dir, "partner"), Bind: "127.0.0.1:0", AdminSocket: partnerSock,
		FederatesWith: []FederatesWith{{
			TrustDomain: "example.org", URL: "https://" + orgFed + "/", Profile: "https_spiffe",
			EndpointSPIFFEID: "spiffe://example.org/spiffekit/server", BundleFile: bundlePath,
		}},
	})
	require.NoError(t, err)
	cfgPath := filepath.Join(dir, "partner.json")
	require.NoError(t, os.WriteFile(cfgPath, cfg, 0o600))
	partnerDone, partnerErr := run("-config", cfgPath)
	waitSocket(partnerSock, partnerErr)
	require.Eventually(t, func() bool {
		return strings.Contains(admin("bundle", "list", "-admin-socket", partnerSock), "example.org")
	}, 20*time.Second, 20*time.Millisecond, partnerErr.String())
	assert.Contains(t, orgErr.String(), "serving the bundle endpoint")

	cancel()
	for _, done := range []chan int{orgDone, partnerDone} {
		select {
		case code := <-done:
			assert.Equal(t, ExitOK, code)
		case <-time.After(20 * time.Second):
			t.Fatal("run did not stop")
		}
	}
}
