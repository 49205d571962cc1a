package cli

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeFile writes data to name in a temporary directory and returns the
// path.
func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(data), 0o600))
	return p
}

// minimal are the flags run needs.
var minimal = []string{"-trust-domain", "example.org", "-server", "127.0.0.1:8081", "-join-token", "id.secret", "-socket", "/tmp/x/api.sock"}

func TestParseRunDefaults(t *testing.T) {
	s, code := parseRun(minimal, &bytes.Buffer{})
	require.Equal(t, ExitOK, code)
	require.NotNil(t, s)
	assert.Equal(t, "example.org", s.trustDomain.Name())
	assert.Equal(t, []string{"127.0.0.1:8081"}, s.cfg.Servers)
	assert.Equal(t, "/tmp/x/api.sock", s.socket)
	assert.Empty(t, s.dataDir)
	assert.Empty(t, s.cfg.MetricsAddr, "metrics are off by default")
	assert.Equal(t, slog.LevelInfo, s.logLevel)
	assert.Equal(t, "text", s.cfg.LogFormat)

	s, code = parseRun([]string{"-trust-domain", "example.org", "-server", "s:1"}, &bytes.Buffer{})
	require.Equal(t, ExitOK, code)
	assert.Equal(t, DefaultSocket, s.socket)
}

func TestServersRepeatedAndCommaSeparated(t *testing.T) {
	args := []string{"-trust-domain", "example.org", "-server", "a:1, b:2", "-server", "c:3", "-server", "d:4,"}
	s, code := parseRun(args, &bytes.Buffer{})
	require.Equal(t, ExitOK, code)
	assert.Equal(t, []string{"a:1", "b:2", "c:3", "d:4"}, s.cfg.Servers)
}

func TestConfigFileAndPrecedence(t *testing.T) {
	cfgPath := writeFile(t, "agent.json", `{
		"trust_domain": "file.example",
		"servers": ["f1:8081", "f2:8081"],
		"trust_bundle": "/etc/bundle.pem",
		"join_token": "file.token",
		"socket": "/run/file/api.sock",
		"data_dir": "/var/lib/file",
		"metrics_addr": "127.0.0.1:9989",
		"log_level": "debug",
		"log_format": "json",
		"workload_attestor": {"unix": {"skip_hash": true, "skip_executable": true, "proc_root": "/host/proc"}}
	}`)

	// The file alone.
	s, code := parseRun([]string{"-config", cfgPath}, &bytes.Buffer{})
	require.Equal(t, ExitOK, code)
	assert.Equal(t, "file.example", s.trustDomain.Name())
	assert.Equal(t, []string{"f1:8081", "f2:8081"}, s.cfg.Servers)
	assert.Equal(t, "/etc/bundle.pem", s.cfg.TrustBundle)
	assert.Equal(t, "file.token", s.cfg.JoinToken)
	assert.Equal(t, "/run/file/api.sock", s.socket)
	assert.Equal(t, "/var/lib/file", s.dataDir)
	assert.Equal(t, "127.0.0.1:9989", s.cfg.MetricsAddr)
	assert.Equal(t, slog.LevelDebug, s.logLevel)
	assert.Equal(t, "json", s.cfg.LogFormat)
	assert.Equal(t, unixConfig{ProcRoot: "/host/proc", SkipExecutable: true, SkipHash: true}, s.cfg.WorkloadAttestor.Unix)

	// Flags given override the file, key by key; the others keep the
	// file's values, whatever order -config comes in.
	s, code = parseRun([]string{"-server", "cli:1", "-trust-domain", "cli.example", "-config", cfgPath,
		"-log-level", "warn", "-metrics-addr", "", "-data-dir", "rel"}, &bytes.Buffer{})
	require.Equal(t, ExitOK, code)
	assert.Equal(t, "cli.example", s.trustDomain.Name())
	assert.Equal(t, []string{"cli:1"}, s.cfg.Servers, "-server replaces the file's list")
	assert.Equal(t, slog.LevelWarn, s.logLevel)
	assert.Empty(t, s.cfg.MetricsAddr, "an empty flag value overrides too")
	assert.True(t, filepath.IsAbs(s.dataDir))
	assert.Equal(t, "rel", filepath.Base(s.dataDir))
	assert.Equal(t, "file.token", s.cfg.JoinToken)
	assert.Equal(t, "json", s.cfg.LogFormat)
}

func TestX509PoPFromFileAndFlags(t *testing.T) {
	cfgPath := writeFile(t, "agent.json", `{"trust_domain": "example.org", "servers": ["s:1"],
		"node_attestor": {"x509pop": {"certificate": "/etc/node.pem", "private_key": "/etc/node.key"}}}`)
	s, code := parseRun([]string{"-config", cfgPath}, &bytes.Buffer{})
	require.Equal(t, ExitOK, code)
	assert.Equal(t, &x509popConfig{Certificate: "/etc/node.pem", PrivateKey: "/etc/node.key"}, s.cfg.NodeAttestor.X509PoP)

	s, code = parseRun([]string{"-config", cfgPath, "-x509pop-key", "/other.key"}, &bytes.Buffer{})
	require.Equal(t, ExitOK, code)
	assert.Equal(t, &x509popConfig{Certificate: "/etc/node.pem", PrivateKey: "/other.key"}, s.cfg.NodeAttestor.X509PoP)

	s, code = parseRun([]string{"-trust-domain", "example.org", "-server", "s:1", "-x509pop-cert", "c.pem", "-x509pop-key", "k.pem"}, &bytes.Buffer{})
	require.Equal(t, ExitOK, code)
	assert.Equal(t, &x509popConfig{Certificate: "c.pem", PrivateKey: "k.pem"}, s.cfg.NodeAttestor.X509PoP)
}

func TestParseRunErrors(t *testing.T) {
	longSocket := "/" + strings.Repeat("s", 120)
	tests := []struct {
		name   string
		args   []string
		config string // written to a file passed with -config, if set
		code   int
		stderr string
	}{
		{"unknown flag", []string{"-nope"}, "", ExitUsage, "flag provided but not defined: -nope"},
		{"help", []string{"-h"}, "", ExitUsage, "Usage: spiffe-agent run"},
		{"extra argument", append(minimal[:len(minimal):len(minimal)], "extra"), "", ExitUsage, `unexpected argument "extra"`},
		{"flag without value", []string{"-server"}, "", ExitUsage, "flag needs an argument"},
		{"no trust domain", []string{"-server", "s:1"}, "", ExitFailure, "a trust domain is required"},
		{"bad trust domain", []string{"-trust-domain", "Example.ORG!", "-server", "s:1"}, "", ExitFailure, "-trust-domain"},
		{"no server", []string{"-trust-domain", "example.org"}, "", ExitFailure, "at least one server is required"},
		{"server without port", []string{"-trust-domain", "example.org", "-server", "localhost"}, "", ExitFailure, `-server "localhost"`},
		{"server port zero", []string{"-trust-domain", "example.org", "-server", "h:0"}, "", ExitFailure, "port must be a number"},
		{"server port text", []string{"-trust-domain", "example.org", "-server", "h:http"}, "", ExitFailure, "port must be a number"},
		{"bundle and insecure", []string{"-trust-domain", "example.org", "-server", "s:1", "-trust-bundle", "b.pem", "-insecure-bootstrap"}, "", ExitFailure, "not both"},
		{"half x509pop", []string{"-trust-domain", "example.org", "-server", "s:1", "-x509pop-cert", "c.pem"}, "", ExitFailure, "needs both a certificate and a private key"},
		{"two attestors", []string{"-trust-domain", "example.org", "-server", "s:1", "-join-token", "t", "-x509pop-cert", "c", "-x509pop-key", "k"}, "", ExitFailure, "one node attestor"},
		{"empty socket", []string{"-trust-domain", "example.org", "-server", "s:1", "-socket", ""}, "", ExitFailure, "a socket path is required"},
		{"socket path too long", []string{"-trust-domain", "example.org", "-server", "s:1", "-socket", longSocket}, "", ExitFailure, "longer than the 107 bytes"},
		{"bad metrics addr", []string{"-trust-domain", "example.org", "-server", "s:1", "-metrics-addr", "9989"}, "", ExitFailure, "-metrics-addr"},
		{"bad log level", []string{"-trust-domain", "example.org", "-server", "s:1", "-log-level", "loud"}, "", ExitFailure, `-log-level "loud"`},
		{"bad log format", []string{"-trust-domain", "example.org", "-server", "s:1", "-log-format", "xml"}, "", ExitFailure, `-log-format "xml"`},
		{"missing config file", []string{"-config", "/nonexistent/agent.json"}, "", ExitFailure, "no such file"},
		{"config not JSON", nil, "trust_domain = 'x'", ExitFailure, "the config file"},
		{"config unknown key", nil, `{"trust_domian": "example.org"}`, ExitFailure, `unknown field "trust_domian"`},
		{"config wrong type", nil, `{"servers": "s:1"}`, ExitFailure, "the config file"},
		{"config trailing data", nil, `{"servers": ["s:1"]} {}`, ExitFailure, "unexpected data after the JSON object"},
		{"config too large", nil, `{"trust_domain": "` + strings.Repeat("a", maxConfigSize) + `"}`, ExitFailure, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.config != "" {
				args = append([]string{"-config", writeFile(t, "agent.json", tt.config)}, args...)
			}
			var stderr bytes.Buffer
			s, code := parseRun(args, &stderr)
			assert.Nil(t, s)
			assert.Equal(t, tt.code, code)
			assert.Contains(t, stderr.String(), tt.stderr)
			if tt.code == ExitFailure {
				// One line, naming the command, without a package prefix.
				assert.Equal(t, 1, strings.Count(stderr.String(), "\n"), stderr.String())
				assert.True(t, strings.HasPrefix(stderr.String(), "spiffe-agent run: "), stderr.String())
				assert.NotContains(t, stderr.String(), "cli:")
			}
		})
	}
}

func TestJoinTokenIsNotPrintedInErrors(t *testing.T) {
	var stderr bytes.Buffer
	_, code := parseRun([]string{"-trust-domain", "example.org", "-server", "s:1", "-join-token", "id.supersecret", "-log-level", "x"}, &stderr)
	require.Equal(t, ExitFailure, code)
	assert.NotContains(t, stderr.String(), "supersecret")
}

func TestMainUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"no command", nil, ""},
		{"help", []string{"-h"}, ""},
		{"help word", []string{"help"}, ""},
		{"unknown", []string{"start"}, `unknown command "start"`},
		{"api alone", []string{"api"}, `unknown command "api"`},
		{"api fetch alone", []string{"api", "fetch"}, `unknown command "api fetch"`},
		{"api fetch svid", []string{"api", "fetch", "svid"}, `unknown command "api fetch svid"`},
		{"api watch", []string{"api", "watch", "x509"}, `unknown command "api watch x509"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(t.Context(), tt.args, &stdout, &stderr)
			assert.Equal(t, ExitUsage, code)
			assert.Empty(t, stdout.String())
			assert.Contains(t, stderr.String(), "Usage: spiffe-agent <command>")
			assert.Contains(t, stderr.String(), tt.msg)
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"trust_domain": "example.org", "servers": ["s:1"], "join_token": "a.b"}`))
	f.Add([]byte(`{"node_attestor": {"x509pop": {"certificate": "c", "private_key": "k"}}}`))
	f.Add([]byte(`{"workload_attestor": {"unix": {"skip_hash": true}}}`))
	f.Add([]byte(`{} {}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := defaultConfig()
		if err := parseConfig(data, &cfg); err != nil {
			return // rejected input is fine; a panic is not
		}
		s, err := check(cfg)
		if err != nil {
			return
		}
		// A checked config names a trust domain, servers and a socket
		// that a unix socket can be bound to.
		require.False(t, s.trustDomain.IsZero())
		require.NotEmpty(t, s.cfg.Servers)
		require.LessOrEqual(t, len(s.socket), maxSocketPath)
	})
}
