package provider_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/examples/oidc-discovery-provider/provider"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/server"
)

// get does a GET with Host host on the client and returns the status and
// body.
func get(t *testing.T, c *http.Client, url, host string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	require.NoError(t, err)
	req.Host = host
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// serverAPIConfig returns the source of a running server: its admin
// socket.
func startServerAPI(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(shortDir(t), "admin.sock")
	nodetest.StartServer(t, server.Config{AdminSocket: sock})
	return fmt.Sprintf(`"server_api": {"address": %q, "poll_interval": "50ms"}`, sock)
}

// TestPlainHTTPServing: insecure_addr and listen_socket_path serve plain
// HTTP, with http URLs when allowed; health checks answer on localhost.
func TestPlainHTTPServing(t *testing.T) {
	src := startServerAPI(t)
	port := freePort(t)
	p := runProvider(t, `{"domains": ["localhost"], "allow_insecure_scheme": true, "insecure_addr": "127.0.0.1:0",
	  "health_checks": {"bind_port": `+port+`}, `+src+`}`, nil)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	base := "http://" + p.Addr().String()
	code, body := get(t, c, base+provider.DiscoveryPath, "localhost:8080")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `"issuer": "http://localhost:8080"`)
	code, body = get(t, c, base+provider.KeysPath, "localhost")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `"kty": "EC"`)
	code, _ = get(t, c, base+provider.KeysPath, "evil.example")
	assert.Equal(t, http.StatusBadRequest, code)

	for _, path := range []string{"/ready", "/live"} {
		code, body = get(t, c, "http://localhost:"+port+path, "localhost")
		assert.Equal(t, http.StatusOK, code, path)
		assert.Equal(t, "ok\n", body)
	}

	t.Run("unix socket", func(t *testing.T) {
		sock := filepath.Join(shortDir(t), "oidc.sock")
		require.NoError(t, os.WriteFile(sock, nil, 0o600), "a stale file where the socket goes is replaced")
		runProvider(t, fmt.Sprintf(`{"domains": ["oidc.example.org"], "listen_socket_path": %q, %s}`, sock, src), nil)
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}
		defer tr.CloseIdleConnections()
		code, body := get(t, &http.Client{Transport: tr}, "http://unix"+provider.DiscoveryPath, "oidc.example.org")
		assert.Equal(t, http.StatusOK, code)
		assert.Contains(t, body, `"issuer": "https://oidc.example.org"`, "https without allow_insecure_scheme, as behind a TLS proxy")
	})
}

// TestHealthBeforeKeys: ready says 500 until the keys are known, live
// says 200 at once.
func TestHealthBeforeKeys(t *testing.T) {
	defer leaktest.Check(t)()
	port := freePort(t)
	sock := filepath.Join(shortDir(t), "nobody.sock")
	cfg, err := provider.ParseConfig([]byte(fmt.Sprintf(`{"domains": ["localhost"], "insecure_addr": "127.0.0.1:0",
	  "health_checks": {"bind_port": %s}, "server_api": {"address": %q, "poll_interval": "20ms"}}`, port, sock)))
	require.NoError(t, err)
	var logs logtest.Buffer
	p, err := provider.New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	<-p.Ready()
	tr := &http.Transport{}
	c := &http.Client{Transport: tr}
	code, _ := get(t, c, "http://localhost:"+port+"/live", "localhost")
	assert.Equal(t, http.StatusOK, code)
	code, body := get(t, c, "http://localhost:"+port+"/ready", "localhost")
	assert.Equal(t, http.StatusInternalServerError, code)
	assert.Equal(t, "the keys are not known yet\n", body)
	code, _ = get(t, c, "http://"+p.Addr().String()+provider.KeysPath, "localhost")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "cannot read the bundle from the server") },
		nodetest.Timeout, 10*time.Millisecond, "the failed poll is logged")
	tr.CloseIdleConnections()
	cancel()
	require.NoError(t, <-done)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return portOf(t, l.Addr())
}

// TestServingCertificateReload: a new certificate written over the files
// is served without a restart; a broken pair keeps the previous one.
func TestServingCertificateReload(t *testing.T) {
	src := startServerAPI(t)
	dir := shortDir(t)
	certPath, keyPath, pool1 := servingCert(t, dir)
	var logs logtest.Buffer
	p := runProvider(t, fmt.Sprintf(`{"domains": ["localhost"], "serving_cert_file": {"cert_file_path": %q,
	  "key_file_path": %q, "addr": "127.0.0.1:0", "file_sync_interval": "20ms"}, %s}`, certPath, keyPath, src),
		slog.New(slog.NewTextHandler(&logs, nil)))
	url := "https://" + p.Addr().String() + provider.KeysPath
	trusts := func(pool *x509.CertPool) bool {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}, DisableKeepAlives: true}
		resp, err := (&http.Client{Transport: tr}).Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusBadRequest // Host is 127.0.0.1:port, not an allowed domain
	}
	require.True(t, trusts(pool1))

	// A broken pair is refused and logged; the old certificate stays.
	require.NoError(t, os.WriteFile(certPath, []byte("not PEM"), 0o644))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "cannot load the new serving certificate") },
		nodetest.Timeout, 10*time.Millisecond)
	require.True(t, trusts(pool1))

	dir2 := shortDir(t)
	newCert, newKey, pool2 := servingCert(t, dir2)
	for _, f := range [][2]string{{newCert, certPath}, {newKey, keyPath}} {
		data, err := os.ReadFile(f[0])
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(f[1], data, 0o600))
	}
	require.Eventually(t, func() bool { return trusts(pool2) }, nodetest.Timeout, 10*time.Millisecond, "the new certificate is served")
	assert.False(t, trusts(pool1))
	assert.Contains(t, logs.String(), "serving certificate reloaded")
}

// TestRunFailures: what keeps the provider from starting is an error of
// Run, and nothing is left running.
func TestRunFailures(t *testing.T) {
	defer leaktest.Check(t)()
	dir := shortDir(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	const src = `"server_api": {"address": "/nonexistent/admin.sock"}`
	for _, tc := range []struct{ name, config, want string }{
		{"missing certificate", fmt.Sprintf(`{"domains": ["a"], "serving_cert_file": {"cert_file_path": %q, "key_file_path": %q}, %s}`,
			filepath.Join(dir, "none.crt"), filepath.Join(dir, "none.key"), src), "provider: serving certificate: stat "},
		{"busy address", fmt.Sprintf(`{"domains": ["a"], "insecure_addr": %q, %s}`, busy.Addr(), src), "address already in use"},
		{"busy health port", fmt.Sprintf(`{"domains": ["a"], "insecure_addr": "127.0.0.1:0", "health_checks": {"bind_port": %s}, %s}`,
			portOf(t, busy.Addr()), src), "provider: health checks: "},
		{"socket in a missing directory", fmt.Sprintf(`{"domains": ["a"], "listen_socket_path": %q, %s}`,
			filepath.Join(dir, "missing", "s.sock"), src), "provider: listen unix"},
		{"bad Workload API address", `{"domains": ["a"], "insecure_addr": "127.0.0.1:0",
		  "workload_api": {"socket_path": "ftp://x", "trust_domain": "example.org"}}`, "workload API: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := provider.ParseConfig([]byte(tc.config))
			require.NoError(t, err)
			p, err := provider.New(cfg, nil)
			require.NoError(t, err)
			err = p.Run(t.Context())
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	_, err = provider.New(nil, nil)
	assert.ErrorContains(t, err, "provider: no configuration")
	_, err = provider.New(&provider.Config{}, nil)
	assert.ErrorContains(t, err, "provider: no key source configured")
}

// TestWorkloadAPIUnavailable: while the agent is away the provider keeps
// trying and says so; its keys arrive once the agent serves.
func TestWorkloadAPIUnavailable(t *testing.T) {
	sock := filepath.Join(shortDir(t), "api.sock")
	var logs logtest.Buffer
	cfg, err := provider.ParseConfig([]byte(fmt.Sprintf(`{"domains": ["localhost"], "insecure_addr": "127.0.0.1:0",
	  "workload_api": {"socket_path": %q, "trust_domain": "example.org"}}`, sock)))
	require.NoError(t, err)
	s := nodetest.StartServer(t, server.Config{})
	p, err := provider.New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "Workload API stream failed") },
		nodetest.Timeout, 10*time.Millisecond)

	acfg := s.AgentConfig(t)
	acfg = nodetest.AgentDefaults(t, acfg)
	acfg.Listener.Close()
	lis, err := net.Listen("unix", sock)
	require.NoError(t, err)
	acfg.Listener = lis
	a := nodetest.StartAgent(t, acfg)
	s.Register(t, a.ID(), "/oidc")
	select {
	case <-p.Keys().Ready():
	case <-time.After(nodetest.Timeout):
		t.Fatal("no keys once the agent serves")
	}
	kids := p.Keys().KeyIDs()
	require.Len(t, kids, 1)
	_, ok := s.Bundle().FindJWTAuthority(kids[0])
	assert.True(t, ok, "the key is the trust domain's")
}

// TestMain runs the program: usage errors, a bad configuration, and a
// provider that runs until its context ends.
func TestMainProgram(t *testing.T) {
	var stderr bytes.Buffer
	assert.Equal(t, provider.ExitOK, provider.Main(t.Context(), []string{"-h"}, &stderr))
	assert.Contains(t, stderr.String(), "-config file")
	stderr.Reset()
	assert.Equal(t, provider.ExitUsage, provider.Main(t.Context(), []string{"-bogus"}, &stderr))
	assert.Equal(t, provider.ExitUsage, provider.Main(t.Context(), []string{"extra"}, &stderr))
	assert.Contains(t, stderr.String(), `unexpected arguments ["extra"]`)
	stderr.Reset()
	dir := shortDir(t)
	assert.Equal(t, provider.ExitUsage, provider.Main(t.Context(), []string{"-config", filepath.Join(dir, "none.conf")}, &stderr))
	assert.Contains(t, stderr.String(), "oidc-discovery-provider: configuration: open ")

	write := func(config string) string {
		path := filepath.Join(dir, "oidc.conf")
		require.NoError(t, os.WriteFile(path, []byte(config), 0o600))
		return path
	}
	stderr.Reset()
	path := write(`{"domains": ["a"], "insecure_addr": "127.0.0.1:0", "log_path": "` + filepath.Join(dir, "missing", "log") + `",
	  "server_api": {"address": "/x"}}`)
	assert.Equal(t, provider.ExitUsage, provider.Main(t.Context(), []string{"-config", path}, &stderr))
	assert.Contains(t, stderr.String(), "log_path: open ")

	stderr.Reset()
	path = write(`{"domains": ["a"], "listen_socket_path": "` + filepath.Join(dir, "missing", "s.sock") + `", "server_api": {"address": "/x"}}`)
	assert.Equal(t, provider.ExitFailure, provider.Main(t.Context(), []string{"-config", path}, &stderr))
	assert.Contains(t, stderr.String(), "provider failed")

	t.Run("runs until cancelled, logging to a file as JSON", func(t *testing.T) {
		defer leaktest.Check(t)()
		logPath := filepath.Join(dir, "oidc.log")
		path := write(`{"domains": ["a"], "insecure_addr": "127.0.0.1:0", "log_format": "json", "log_path": "` + logPath + `",
		  "server_api": {"address": "/nonexistent/admin.sock", "poll_interval": "20ms"}}`)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan int, 1)
		go func() { done <- provider.Main(ctx, []string{"-config", path}, io.Discard) }()
		require.Eventually(t, func() bool {
			data, _ := os.ReadFile(logPath)
			return bytes.Contains(data, []byte(`"msg":"serving"`))
		}, nodetest.Timeout, 10*time.Millisecond)
		cancel()
		assert.Equal(t, provider.ExitOK, <-done)
		data, err := os.ReadFile(logPath)
		require.NoError(t, err)
		assert.Contains(t, string(data), `"msg":"provider stopped"`)
	})
}
