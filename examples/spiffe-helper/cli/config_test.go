package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func ptr[T any](v T) *T { return &v }

// Configuration files of spiffe-helper's repository, unchanged, read as
// spiffe-helper reads them.
func TestParseConfigUpstream(t *testing.T) {
	cfg, err := LoadConfig("testdata/upstream/helper.conf")
	require.NoError(t, err)
	assert.Equal(t, &Config{
		AgentAddress: "/tmp/spire-agent/public/api.sock", CertDir: "certs", RenewSignal: "SIGUSR1",
		SVIDFileName: "svid.pem", SVIDKeyFileName: "svid_key.pem", SVIDBundleFileName: "svid_bundle.pem",
		CertFileMode: 0o644, KeyFileMode: 0o600, JWTBundleFileMode: 0o600, JWTSVIDFileMode: 0o600,
		HealthChecks: HealthConfig{BindPort: 8081, LivenessPath: "/live", ReadinessPath: "/ready"},
	}, cfg)

	cfg, err = LoadConfig("testdata/upstream/readme.conf")
	require.NoError(t, err)
	assert.Equal(t, "ghostunnel", cfg.Cmd)
	args, err := splitArgs(cfg.CmdArgs)
	require.NoError(t, err)
	assert.Equal(t, []string{"server", "--listen", "localhost:8002", "--target", "localhost:8001", "--keystore",
		"certs/svid_key.pem", "--cacert", "certs/svid_bundle.pem", "--allow-uri-san", "spiffe://example.org/Database"}, args)
	assert.Equal(t, []JWTSVIDConfig{{Audience: "your-audience", ExtraAudiences: []string{"your-extra-audience-1", "your-extra-audience-2"},
		FileName: "jwt_svid.token"}}, cfg.JWTSVIDs)
	assert.Equal(t, "bundle.json", cfg.JWTBundleFileName)
	// 0444 is octal in HCL, as in spiffe-helper.
	for _, m := range []int{cfg.CertFileMode, cfg.KeyFileMode, cfg.JWTBundleFileMode, cfg.JWTSVIDFileMode} {
		assert.Equal(t, 0o444, m)
	}

	cfg, err = LoadConfig("testdata/upstream/envoy.conf")
	require.NoError(t, err)
	assert.Equal(t, "SIGHUP", cfg.RenewSignal)
	assert.Equal(t, "hot-restarter.py", cfg.Cmd)

	cfg, err = LoadConfig("testdata/upstream/postgresql.conf")
	require.NoError(t, err)
	args, err = splitArgs(cfg.CmdArgs)
	require.NoError(t, err)
	assert.Equal(t, []string{"-p", "5432", "-c", "SELECT pg_reload_conf();"}, args, "double quotes group words and go")
	assert.Empty(t, cfg.RenewSignal)
	assert.Equal(t, "svid.key", cfg.SVIDKeyFileName)

	// spiffe-helper refuses keys it does not know, and so do we.
	_, err = LoadConfig("testdata/upstream/config_testdata.conf")
	require.ErrorContains(t, err, `config_testdata.conf: line 20: unknown key "timeout"`)
	_, err = LoadConfig("testdata/upstream/ghostunnel_camelcase.conf")
	require.ErrorContains(t, err, `line 1: unknown key "agentAddress"`)
}

func TestParseConfig(t *testing.T) {
	const x509 = "svid_file_name = \"a\"\nsvid_key_file_name = \"b\"\nsvid_bundle_file_name = \"c\"\n"
	good := []struct {
		name, text string
		check      func(t *testing.T, c *Config)
	}{
		{"modes as strings", x509 + `cert_file_mode = "0440"` + "\n" + `key_file_mode = "0400"`, func(t *testing.T, c *Config) {
			assert.Equal(t, 0o440, c.CertFileMode)
			assert.Equal(t, 0o400, c.KeyFileMode)
		}},
		{"decimal mode", x509 + `jwt_svid_file_mode = 292`, func(t *testing.T, c *Config) { assert.Equal(t, 0o444, c.JWTSVIDFileMode) }},
		{"daemon_mode false", x509 + "daemon_mode = false", func(t *testing.T, c *Config) { assert.Equal(t, ptr(false), c.DaemonMode) }},
		{"jwt bundle only", `jwt_bundle_file_name = "b.json"`, func(t *testing.T, c *Config) { assert.Equal(t, "b.json", c.JWTBundleFileName) }},
		{"jwt_svids as blocks", "jwt_svids {\n jwt_audience = \"a\"\n jwt_svid_file_name = \"a.token\"\n}\njwt_svids {\n jwt_audience = \"b\"\n jwt_svid_file_name = \"b.token\"\n}",
			func(t *testing.T, c *Config) {
				assert.Equal(t, []JWTSVIDConfig{{Audience: "a", FileName: "a.token"}, {Audience: "b", FileName: "b.token"}}, c.JWTSVIDs)
			}},
		{"health checks", x509 + "health_checks {\n listener_enabled = true\n bind_port = 9000\n liveness_path = \"/l\"\n}", func(t *testing.T, c *Config) {
			assert.Equal(t, HealthConfig{ListenerEnabled: true, BindPort: 9000, LivenessPath: "/l", ReadinessPath: "/ready"}, c.HealthChecks)
		}},
		{"JSON is HCL too", `{"jwt_svids": [{"jwt_audience": "a", "jwt_svid_file_name": "t"}], "hint": "h", "omit_expired": true}`, func(t *testing.T, c *Config) {
			assert.Equal(t, []JWTSVIDConfig{{Audience: "a", FileName: "t"}}, c.JWTSVIDs)
			assert.Equal(t, "h", c.Hint)
			assert.True(t, c.OmitExpired)
		}},
		{"heredoc", x509 + "cmd_args = <<EOF\n-v\nEOF\n", func(t *testing.T, c *Config) { assert.Equal(t, "-v\n", c.CmdArgs) }},
		{"signal without SIG", x509 + `renew_signal = "hup"`, func(t *testing.T, c *Config) {
			sig, err := parseSignal(c.RenewSignal)
			require.NoError(t, err)
			assert.Equal(t, syscall.SIGHUP, sig)
		}},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.text))
			require.NoError(t, err)
			tt.check(t, c)
		})
	}

	bad := []struct{ name, text, err string }{
		{"nothing to write", `cmd = "x"`, "nothing to write"},
		{"incomplete X.509 set", `svid_file_name = "a"`, "all or none of svid_file_name"},
		{"unknown key", x509 + "agent_adress = \"/x\"", `line 4: unknown key "agent_adress"`},
		{"unknown key in jwt_svids", `jwt_svids = [{jwt_audience = "a", jwt_svid_file_name = "t", file = "x"}]`, `unknown key "jwt_svids[0].file"`},
		{"unknown key in health_checks", x509 + "health_checks { port = 1 }", `unknown key "health_checks.port"`},
		{"key given twice", x509 + `cmd = "a"` + "\n" + `cmd = "b"`, `argument "cmd" at 5:1 was already set`},
		{"block label", x509 + `health_checks "x" { }`, "health_checks takes no block label"},
		{"jwt_svids not objects", `jwt_svids = ["a"]`, "jwt_svids[0]: want an object"},
		{"jwt_svids a string", `jwt_svids = "a"`, "jwt_svids: want an object"},
		{"health_checks a list", x509 + `health_checks = [{listener_enabled = true}]`, "health_checks: want an object"},
		{"jwt svid without file", `jwt_svids = [{jwt_audience = "a"}]`, "jwt_svids[0]: jwt_svid_file_name is required"},
		{"empty extra audience", `jwt_svids = [{jwt_audience = "a", jwt_extra_audiences = [""], jwt_svid_file_name = "t"}]`, "an audience must not be empty"},
		{"jwt svid without audience", `jwt_svids = [{jwt_svid_file_name = "a"}]`, "jwt_svids[0]: jwt_audience is required"},
		{"negative mode", x509 + "cert_file_mode = -1", "cert_file_mode: -01 is not a file mode"},
		{"setuid mode", x509 + "key_file_mode = 04755", "key_file_mode: 04755 is not a file mode"},
		{"mode not a number", x509 + `key_file_mode = "rw"`, `line 4: key_file_mode: "rw" is not a whole number`},
		{"mode a bool", x509 + `key_file_mode = true`, "line 4: key_file_mode: want a number"},
		{"mode too large", x509 + `key_file_mode = 99999999999999999999`, `"99999999999999999999" is not a whole number`},
		{"string a list", x509 + `cmd = ["a"]`, "line 4: cmd: want a string"},
		{"string an object", x509 + `cmd = { a = "b" }`, "line 4: cmd: want a string"},
		{"string a number", x509 + `cmd = 1`, "line 4: cmd: want a string"},
		{"audiences a string", `jwt_svids = [{jwt_audience = "a", jwt_svid_file_name = "t", jwt_extra_audiences = "b"}]`,
			"jwt_svids[0].jwt_extra_audiences: want a list of strings"},
		{"audiences numbers", `jwt_svids = [{jwt_audience = "a", jwt_svid_file_name = "t", jwt_extra_audiences = [1]}]`,
			"jwt_svids[0].jwt_extra_audiences: want a list of strings"},
		{"port a word", x509 + `health_checks { bind_port = "x" }`, `health_checks.bind_port: "x" is not a whole number`},
		{"unknown signal", x509 + `renew_signal = "SIGNOPE"`, `renew_signal: unknown signal "SIGNOPE"`},
		{"pid file without signal", x509 + `pid_file_name = "/run/x.pid"`, "pid_file_name needs renew_signal"},
		{"cmd_args bad quotes", x509 + `cmd_args = "a \"b"`, "cmd_args:"},
		{"cmd_args two lines", x509 + `cmd_args = "a\nb"`, "cmd_args: want one line"},
		{"daemon_mode a string", x509 + `daemon_mode = "false"`, "line 4: daemon_mode: want true or false"},
		{"port out of range", x509 + "health_checks { bind_port = 70000 }", "health_checks.bind_port: 70000 is not a port"},
		{"health path", x509 + `health_checks { liveness_path = "live" }`, `path "live" must start with /`},
		{"same health paths", x509 + `health_checks { liveness_path = "/x"` + "\n" + `readiness_path = "/x" }`, "must differ"},
		{"not HCL", `svid_file_name = "a`, "At 1:"},
		{"not UTF-8", "cmd = \"\xff\"", "not valid UTF-8"},
		{"a list at the top", "[1]", ""},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.text))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.err)
		})
	}

	_, err := ParseConfig(make([]byte, MaxConfigSize+1))
	require.ErrorContains(t, err, "larger than")
	_, err = LoadConfig(filepath.Join(t.TempDir(), "none.conf"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestResolve(t *testing.T) {
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	base := func() *Config {
		c, err := ParseConfig([]byte(`jwt_bundle_file_name = "b"`))
		require.NoError(t, err)
		return c
	}
	var warnings []string
	warn := func(s string) { warnings = append(warnings, s) }

	c := base()
	addr, err := c.Resolve(nil, env(nil), warn)
	require.NoError(t, err)
	assert.Equal(t, "unix:///tmp/spire-agent/public/api.sock", addr, "spiffe-helper's default")
	assert.Equal(t, ptr(true), c.DaemonMode, "daemon mode by default")

	c = base()
	c.DaemonMode = ptr(true)
	_, err = c.Resolve(ptr(false), env(map[string]string{"SPIFFE_ENDPOINT_SOCKET": "unix:///run/a.sock"}), warn)
	require.NoError(t, err)
	assert.Equal(t, ptr(false), c.DaemonMode, "the flag wins over the file")

	c = base()
	addr, err = c.Resolve(nil, env(map[string]string{"SPIFFE_ENDPOINT_SOCKET": "unix:///run/a.sock"}), warn)
	require.NoError(t, err)
	assert.Equal(t, "unix:///run/a.sock", addr)

	warnings = nil
	c = base()
	addr, err = c.Resolve(nil, env(map[string]string{"SPIRE_AGENT_ADDRESS": "/run/b.sock"}), warn)
	require.NoError(t, err)
	assert.Equal(t, "unix:///run/b.sock", addr)
	assert.Equal(t, []string{"SPIRE_AGENT_ADDRESS is deprecated: use SPIFFE_ENDPOINT_SOCKET"}, warnings)

	c = base()
	_, err = c.Resolve(nil, env(map[string]string{"SPIRE_AGENT_ADDRESS": "/a", "SPIFFE_ENDPOINT_SOCKET": "unix:///b"}), warn)
	require.ErrorContains(t, err, "both SPIRE_AGENT_ADDRESS and SPIFFE_ENDPOINT_SOCKET are set")

	c = base()
	c.AgentAddress = "tcp://127.0.0.1:8000"
	addr, err = c.Resolve(nil, env(nil), warn)
	require.NoError(t, err)
	assert.Equal(t, "tcp://127.0.0.1:8000", addr, "a URI is taken as it is")

	c = base()
	c.AgentAddress = "tcp://localhost:8000"
	_, err = c.Resolve(nil, env(nil), warn)
	require.ErrorContains(t, err, "agent_address:", "a host name is not an address")

	t.Chdir(t.TempDir())
	wd, err := os.Getwd()
	require.NoError(t, err)
	c = base()
	c.AgentAddress = "api.sock"
	addr, err = c.Resolve(nil, env(nil), warn)
	require.NoError(t, err)
	assert.Equal(t, "unix://"+filepath.Join(wd, "api.sock"), addr, "a relative path is made absolute")

	// Non-daemon mode ignores cmd and renew_signal, saying so, and refuses
	// pid_file_name, as spiffe-helper does.
	warnings = nil
	c = base()
	c.Cmd, c.RenewSignal = "x", "SIGHUP"
	_, err = c.Resolve(ptr(false), env(nil), warn)
	require.NoError(t, err)
	assert.Equal(t, []string{"cmd is set but daemon_mode is false: cmd is ignored",
		"renew_signal is set but daemon_mode is false: renew_signal is ignored"}, warnings)
	c.PIDFileName = "/run/x.pid"
	_, err = c.Resolve(ptr(false), env(nil), warn)
	require.ErrorContains(t, err, "pid_file_name is set but daemon_mode is false")
}

func TestSplitArgs(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"a b c", []string{"a", "b", "c"}},
		{`"one argument" two`, []string{"one argument", "two"}},
		{`"with ""a"" quote"`, []string{`with "a" quote`}},
		{`-c 'echo hello'`, []string{"-c", "'echo", "hello'"}}, // single quotes are plain characters, as documented
	} {
		got, err := splitArgs(tt.in)
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
	}
}

// FuzzParseConfig checks that no input makes the parser panic, and that a
// configuration it accepts reads back the same from its JSON form (which
// HCL reads too).
func FuzzParseConfig(f *testing.F) {
	for _, name := range []string{"helper.conf", "readme.conf", "envoy.conf", "postgresql.conf", "config_testdata.conf"} {
		data, err := os.ReadFile(filepath.Join("testdata/upstream", name))
		require.NoError(f, err)
		f.Add(data)
	}
	f.Add([]byte(`{"jwt_svids": [{"jwt_audience": "a", "jwt_svid_file_name": "t"}], "health_checks": {"bind_port": 1}}`))
	f.Add([]byte("jwt_svids { jwt_audience = \"a\"\njwt_svid_file_name = \"b\" }\ncmd_args = \"\\\"x y\\\" z\""))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			return
		}
		doc, err := json.Marshal(cfg)
		require.NoError(t, err)
		again, err := ParseConfig(doc)
		require.NoError(t, err, "%s", doc)
		require.Equal(t, cfg, again, "%s", doc)
		require.False(t, strings.ContainsRune(cfg.CmdArgs, '\n'))
	})
}
