package servercli

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
