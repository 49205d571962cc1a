package provider_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/examples/oidc-discovery-provider/provider"
)

// spireConfig is a configuration of SPIRE's provider, in JSON, with every
// key this provider supports.
const spireConfig = `{
  "log_level": "DEBUG",
  "log_format": "JSON",
  "log_requests": true,
  "domains": ["oidc.example.org", "OIDC.internal", "10.0.0.7"],
  "jwt_issuer": "https://issuer.example.org",
  "jwks_uri": "https://oidc.example.org/keys",
  "set_key_use": true,
  "serving_cert_file": {
    "cert_file_path": "/etc/oidc/tls.crt",
    "key_file_path": "/etc/oidc/tls.key",
    "addr": ":8443",
    "file_sync_interval": "30s"
  },
  "workload_api": {
    "socket_path": "/run/spire/sockets/agent.sock",
    "trust_domain": "example.org",
    "poll_interval": "5s"
  },
  "health_checks": {"bind_port": 8088, "ready_path": "/r", "live_path": "/l"}
}`

func TestParseConfig(t *testing.T) {
	cfg, err := provider.ParseConfig([]byte(spireConfig))
	require.NoError(t, err)
	assert.Equal(t, &provider.Config{
		Domains:   []string{"oidc.example.org", "oidc.internal", "10.0.0.7"},
		JWTIssuer: "https://issuer.example.org", JWKSURI: "https://oidc.example.org/keys", SetKeyUse: true,
		ServingCertFile: &provider.ServingCertFile{CertFilePath: "/etc/oidc/tls.crt", KeyFilePath: "/etc/oidc/tls.key",
			Addr: ":8443", FileSyncInterval: provider.Duration{Duration: 30 * time.Second}},
		WorkloadAPI: &provider.WorkloadAPIConfig{SocketPath: "/run/spire/sockets/agent.sock", TrustDomain: "example.org",
			PollInterval: provider.Duration{Duration: 5 * time.Second}},
		HealthChecks: &provider.HealthChecks{BindPort: 8088, ReadyPath: "/r", LivePath: "/l"},
		LogLevel:     "debug", LogFormat: "json", LogRequests: true,
	}, cfg)

	t.Run("defaults", func(t *testing.T) {
		cfg, err := provider.ParseConfig([]byte(`{"domains": ["localhost"],
		  "serving_cert_file": {"cert_file_path": "/c", "key_file_path": "/k"},
		  "server_api": {"address": "unix:///run/spiffe-server/admin.sock"},
		  "health_checks": {}}`))
		require.NoError(t, err)
		assert.Equal(t, ":443", cfg.ServingCertFile.Addr)
		assert.Equal(t, time.Minute, cfg.ServingCertFile.FileSyncInterval.Duration)
		assert.Equal(t, 10*time.Second, cfg.ServerAPI.PollInterval.Duration)
		assert.Equal(t, "info", cfg.LogLevel)
		assert.Equal(t, "text", cfg.LogFormat)
		assert.Equal(t, &provider.HealthChecks{BindPort: 8008, ReadyPath: "/ready", LivePath: "/live"}, cfg.HealthChecks)
	})
	t.Run("plain HTTP on loopback and a unix socket", func(t *testing.T) {
		for _, serving := range []string{`"insecure_addr": "127.0.0.1:8080"`, `"insecure_addr": "[::1]:8080"`,
			`"insecure_addr": "localhost:80"`, `"listen_socket_path": "/run/oidc/server.sock"`} {
			_, err := provider.ParseConfig([]byte(`{"domains": ["localhost"], "allow_insecure_scheme": true,
			  "jwt_issuer": "http://localhost", ` + serving + `, "server_api": {"address": "/run/admin.sock", "poll_interval": "1s"}}`))
			assert.NoError(t, err, serving)
		}
	})
}

// spireHCL is spireConfig as SPIRE's files are written, in HCL.
const spireHCL = `
log_level = "DEBUG"
log_format = "JSON"
log_requests = true
domains = ["oidc.example.org", "OIDC.internal", "10.0.0.7"]
jwt_issuer = "https://issuer.example.org"
jwks_uri = "https://oidc.example.org/keys"
set_key_use = true
serving_cert_file {
  cert_file_path = "/etc/oidc/tls.crt"
  key_file_path = "/etc/oidc/tls.key"
  addr = ":8443"
  file_sync_interval = "30s"
}
workload_api {
  socket_path = "/run/spire/sockets/agent.sock"
  trust_domain = "example.org"
  poll_interval = "5s"
}
health_checks {
  bind_port = 8088
  ready_path = "/r"
  live_path = "/l"
}
`

// An HCL file of SPIRE's provider reads as its JSON twin.
func TestParseConfigHCL(t *testing.T) {
	fromJSON, err := provider.ParseConfig([]byte(spireConfig))
	require.NoError(t, err)
	fromHCL, err := provider.ParseConfig([]byte(spireHCL))
	require.NoError(t, err)
	assert.Equal(t, fromJSON, fromHCL)

	// SPIRE's documented example with a unix socket listener.
	cfg, err := provider.ParseConfig([]byte(`
log_level = "debug"
domains = ["mypublicdomain.test"]
listen_socket_path = "/run/oidc-discovery-provider/server.sock"

workload_api {
    socket_path = "/run/spire/sockets/agent.sock"
    trust_domain = "domain.test"
}
`))
	require.NoError(t, err)
	assert.Equal(t, "domain.test", cfg.WorkloadAPI.TrustDomain)
	assert.Equal(t, "/run/oidc-discovery-provider/server.sock", cfg.ListenSocketPath)

	// An empty block is a section with its defaults.
	cfg, err = provider.ParseConfig([]byte("domains = [\"a\"]\ninsecure_addr = \"127.0.0.1:80\"\nserver_api { address = \"/s\" }\nhealth_checks {}\n"))
	require.NoError(t, err)
	assert.Equal(t, &provider.HealthChecks{BindPort: 8008, ReadyPath: "/ready", LivePath: "/live"}, cfg.HealthChecks)
}

func TestParseConfigRejects(t *testing.T) {
	const source = `"workload_api": {"socket_path": "/run/agent.sock", "trust_domain": "example.org"}`
	const serving = `"insecure_addr": "127.0.0.1:8080"`
	for _, tc := range []struct{ name, config, want string }{
		{"neither JSON nor HCL", `["a"]`, "not valid JSON or HCL"},
		{"not JSON", `{domains = ["a"]}`, "not a JSON object"},
		{"HCL with an unknown key", `domains = ["a"]
listen_addr = "x"`, `unknown field "listen_addr"`},
		{"HCL section twice", `domains = ["a"]
insecure_addr = "127.0.0.1:80"
workload_api { socket_path = "/a" }
workload_api { socket_path = "/b" }`, "the workload_api section is given 2 times"},
		{"HCL acme", `domains = ["a"]
acme { tos_accepted = true }`, "acme is not supported"},
		{"empty", ``, "domains is required"},
		{"trailing data", `{"domains": ["a"], ` + serving + `, ` + source + `} {}`, "not a JSON object"},
		{"unknown key", `{"domains": ["a"], "listen_addr": "x", ` + serving + `, ` + source + `}`, `unknown field "listen_addr"`},
		{"unknown key in a section", `{"domains": ["a"], ` + serving + `, "workload_api": {"socket_path": "/s", "trust_domain": "td", "x": 1}}`, `unknown field "x"`},
		{"acme", `{"domains": ["a"], "acme": {"tos_accepted": true, "email": "a@b"}, ` + source + `}`, "acme is not supported: ACME needs"},
		{"registration_api", `{"domains": ["a"], ` + serving + `, "registration_api": {"socket_path": "/s"}}`, "registration_api is not supported"},
		{"experimental", `{"domains": ["a"], ` + serving + `, ` + source + `, "experimental": {}}`, "experimental is not supported"},
		{"domain", `{"domain": "a", ` + serving + `, ` + source + `}`, "domain is not supported: the single domain key was replaced by domains"},
		{"no domains", `{` + serving + `, ` + source + `}`, "domains is required"},
		{"bad domain", `{"domains": ["a..b"], ` + serving + `, ` + source + `}`, `domains: "a..b" is not a host name`},
		{"domain with a port", `{"domains": ["a:443"], ` + serving + `, ` + source + `}`, `domains: "a:443" is not a host name`},
		{"domain with a hyphen at the end", `{"domains": ["a-.b"], ` + serving + `, ` + source + `}`, "is not a host name"},
		{"domain of a wrong type", `{"domains": "a", ` + serving + `, ` + source + `}`, "cannot unmarshal string"},
		{"too many domains", `{"domains": [` + strings.Repeat(`"a",`, 1000) + `"a"], ` + serving + `, ` + source + `}`, "1001 domains, more than 1000"},
		{"no serving", `{"domains": ["a"], ` + source + `}`, "exactly one of serving_cert_file, insecure_addr and listen_socket_path is required"},
		{"two servings", `{"domains": ["a"], ` + serving + `, "listen_socket_path": "/s", ` + source + `}`, "exactly one of"},
		{"insecure_addr not on loopback", `{"domains": ["a"], "insecure_addr": "0.0.0.0:80", ` + source + `}`, "must be on the loopback interface"},
		{"insecure_addr on a name", `{"domains": ["a"], "insecure_addr": "example.org:80", ` + source + `}`, "must be on the loopback interface"},
		{"insecure_addr without port", `{"domains": ["a"], "insecure_addr": "127.0.0.1", ` + source + `}`, "insecure_addr: address 127.0.0.1: missing port"},
		{"relative socket", `{"domains": ["a"], "listen_socket_path": "s.sock", ` + source + `}`, "must be an absolute path"},
		{"no cert file", `{"domains": ["a"], "serving_cert_file": {"key_file_path": "/k"}, ` + source + `}`, "cert_file_path and key_file_path are required"},
		{"bad serving addr", `{"domains": ["a"], "serving_cert_file": {"cert_file_path": "/c", "key_file_path": "/k", "addr": "443"}, ` + source + `}`, "serving_cert_file.addr"},
		{"bad sync interval", `{"domains": ["a"], "serving_cert_file": {"cert_file_path": "/c", "key_file_path": "/k", "file_sync_interval": "soon"}, ` + source + `}`, `invalid duration "soon"`},
		{"number as interval", `{"domains": ["a"], "serving_cert_file": {"cert_file_path": "/c", "key_file_path": "/k", "file_sync_interval": 60}, ` + source + `}`, `a duration must be a string such as "10s", not 60`},
		{"negative interval", `{"domains": ["a"], ` + serving + `, "server_api": {"address": "/s", "poll_interval": "-1s"}}`, `duration "-1s" must be positive`},
		{"no source", `{"domains": ["a"], ` + serving + `}`, "one of workload_api and server_api is required"},
		{"two sources", `{"domains": ["a"], ` + serving + `, ` + source + `, "server_api": {"address": "/s"}}`, "mutually exclusive"},
		{"no socket path", `{"domains": ["a"], ` + serving + `, "workload_api": {"trust_domain": "td"}}`, "workload_api.socket_path is required"},
		{"relative socket path", `{"domains": ["a"], ` + serving + `, "workload_api": {"socket_path": "agent.sock", "trust_domain": "td"}}`, "neither an absolute path nor an address"},
		{"no trust domain", `{"domains": ["a"], ` + serving + `, "workload_api": {"socket_path": "/s"}}`, "workload_api.trust_domain is required"},
		{"bad trust domain", `{"domains": ["a"], ` + serving + `, "workload_api": {"socket_path": "/s", "trust_domain": "Example.org"}}`, "workload_api.trust_domain:"},
		{"no server address", `{"domains": ["a"], ` + serving + `, "server_api": {}}`, "server_api.address is required"},
		{"tcp server address", `{"domains": ["a"], ` + serving + `, "server_api": {"address": "tcp://127.0.0.1:1"}}`, "neither an absolute path nor a unix:///path address"},
		{"relative server address", `{"domains": ["a"], ` + serving + `, "server_api": {"address": "admin.sock"}}`, "is not an absolute path"},
		{"http issuer without plain HTTP", `{"domains": ["a"], "jwt_issuer": "http://a", ` + serving + `, ` + source + `}`, "is not an https URL (http needs allow_insecure_scheme"},
		{"issuer not a URL", `{"domains": ["a"], "jwt_issuer": "a b", ` + serving + `, ` + source + `}`, "is not an https URL"},
		{"issuer with a query", `{"domains": ["a"], "jwt_issuer": "https://a/?x", ` + serving + `, ` + source + `}`, "no user info, query or fragment"},
		{"unparsable issuer", `{"domains": ["a"], "jwt_issuer": "https://a/%zz", ` + serving + `, ` + source + `}`, "jwt_issuer: not a URL"},
		{"ftp issuer with plain HTTP", `{"domains": ["a"], "allow_insecure_scheme": true, "jwt_issuer": "ftp://a", ` + serving + `, ` + source + `}`, "is not an http or https URL"},
		{"bad jwks_uri", `{"domains": ["a"], "jwks_uri": "https://", ` + serving + `, ` + source + `}`, "jwks_uri"},
		{"insecure scheme with TLS", `{"domains": ["a"], "allow_insecure_scheme": true, "serving_cert_file": {"cert_file_path": "/c", "key_file_path": "/k"}, ` + source + `}`, "allow_insecure_scheme needs insecure_addr or listen_socket_path"},
		{"bad log level", `{"domains": ["a"], "log_level": "trace", ` + serving + `, ` + source + `}`, `log_level "trace" is not`},
		{"bad log format", `{"domains": ["a"], "log_format": "xml", ` + serving + `, ` + source + `}`, `log_format "xml" is not text or json`},
		{"bad health port", `{"domains": ["a"], "health_checks": {"bind_port": 70000}, ` + serving + `, ` + source + `}`, "health_checks.bind_port 70000 is not a port"},
		{"same health paths", `{"domains": ["a"], "health_checks": {"ready_path": "/x", "live_path": "/x"}, ` + serving + `, ` + source + `}`, "two different paths"},
		{"too large", `{"domains": ["` + strings.Repeat("a", provider.MaxConfigBytes) + `"]}`, "larger than 1048576 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := provider.ParseConfig([]byte(tc.config))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "oidc.json")
	require.NoError(t, os.WriteFile(path, []byte(spireConfig), 0o600))
	cfg, err := provider.LoadConfig(path)
	require.NoError(t, err)
	assert.Equal(t, "https://issuer.example.org", cfg.JWTIssuer)

	_, err = provider.LoadConfig(filepath.Join(dir, "missing.json"))
	assert.ErrorContains(t, err, "configuration: open ")
	_, err = provider.LoadConfig(dir)
	assert.ErrorContains(t, err, "is a directory")
	require.NoError(t, os.WriteFile(path, []byte(`{}`), 0o600))
	_, err = provider.LoadConfig(path)
	assert.ErrorContains(t, err, "configuration "+path+": domains is required")
}

// FuzzParseConfig: any input gives a configuration or an error, never a
// panic, and an accepted configuration keeps the rules ParseConfig checks.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(spireConfig))
	f.Add([]byte(`{"domains": ["localhost"], "insecure_addr": "127.0.0.1:0", "allow_insecure_scheme": true,
	  "server_api": {"address": "unix:///run/admin.sock", "poll_interval": "1s"}}`))
	f.Add([]byte(`{"domains": ["a"], "listen_socket_path": "/s", "workload_api": {"socket_path": "npipe:agent", "trust_domain": "td"}}`))
	f.Add([]byte(`{"acme": {}}`))
	f.Add([]byte(`{"domains": [""], "serving_cert_file": {"file_sync_interval": 1}}`))
	f.Add([]byte(spireHCL))
	f.Add([]byte("domains = [\"a\"]\nserver_api { address = \"/s\" }\nserver_api { }"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := provider.ParseConfig(data)
		if err != nil {
			if cfg != nil {
				t.Fatal("a configuration with an error")
			}
			return
		}
		if len(cfg.Domains) == 0 {
			t.Fatal("accepted without domains")
		}
		serving := 0
		for _, set := range []bool{cfg.ServingCertFile != nil, cfg.InsecureAddr != "", cfg.ListenSocketPath != ""} {
			if set {
				serving++
			}
		}
		if serving != 1 || (cfg.WorkloadAPI == nil) == (cfg.ServerAPI == nil) {
			t.Fatalf("accepted %d ways of serving, workload_api %v, server_api %v", serving, cfg.WorkloadAPI != nil, cfg.ServerAPI != nil)
		}
		if cfg.ServerAPI != nil && cfg.ServerAPI.PollInterval.Duration <= 0 {
			t.Fatal("accepted without a poll interval")
		}
		if _, err := provider.New(cfg, nil); err != nil {
			t.Fatalf("New refused an accepted configuration: %v", err)
		}
	})
}
