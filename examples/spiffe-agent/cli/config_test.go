package cli

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// writeFile writes data to name in a temporary directory and returns the
// path.
func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(data), 0o600))
	return p
}

// parse parses the arguments of run; it returns the settings (nil if
// unusable), the exit code and stderr.
func parse(t *testing.T, args ...string) (*settings, int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	_, s, code := parseRun(args, &stdout, &stderr)
	assert.Empty(t, stdout.String())
	return s, code, stderr.String()
}

// minimal are the flags run needs.
var minimal = []string{"-trust-domain", "example.org", "-server", "127.0.0.1:8081", "-join-token", "id.secret", "-socket", "/tmp/x/api.sock"}

func TestParseRunDefaults(t *testing.T) {
	s, code, _ := parse(t, minimal...)
	require.Equal(t, ExitOK, code)
	require.NotNil(t, s)
	assert.Equal(t, "example.org", s.trustDomain.Name())
	assert.Equal(t, []string{"127.0.0.1:8081"}, s.cfg.Servers)
	assert.Equal(t, "/tmp/x/api.sock", s.socket)
	assert.Empty(t, s.dataDir)
	assert.Empty(t, s.cfg.MetricsAddr, "metrics are off by default")
	assert.Equal(t, slog.LevelInfo, s.logLevel)
	assert.Equal(t, "text", s.cfg.LogFormat)
	assert.Equal(t, &endpoint.RateLimit{Rate: endpoint.DefaultRate, Burst: endpoint.DefaultBurst}, s.rateLimit(),
		"the Workload API is rate limited by default")

	s, code, _ = parse(t, "-trust-domain", "example.org", "-server", "s:1")
	require.Equal(t, ExitOK, code)
	assert.Equal(t, DefaultSocket, s.socket)
}

func TestServersRepeatedAndCommaSeparated(t *testing.T) {
	s, code, _ := parse(t, "-trust-domain", "example.org", "-server", "a:1, b:2", "-server", "c:3", "-server", "d:4,")
	require.Equal(t, ExitOK, code)
	assert.Equal(t, []string{"a:1", "b:2", "c:3", "d:4"}, s.cfg.Servers)
}

const fileConfig = `{
	"trust_domain": "file.example",
	"servers": ["f1:8081", "f2:8081"],
	"trust_bundle": "/etc/bundle.pem",
	"join_token": "file.token",
	"socket": "/run/file/api.sock",
	"data_dir": "/var/lib/file",
	"metrics_addr": "127.0.0.1:9989",
	"log_level": "debug",
	"log_format": "json",
	"ratelimit": {"rate": 12.5, "burst": 40},
	"workload_attestors": {"unix": {"skip_hash": true, "skip_executable": true, "proc_root": "/host/proc"}}
}`

func TestConfigFile(t *testing.T) {
	// The file of the README, every key, as it was before the flags,
	// environment and file were read by one mechanism.
	s, code, stderr := parse(t, "-config", writeFile(t, "agent.json", fileConfig))
	require.Equal(t, ExitOK, code, stderr)
	assert.Equal(t, "file.example", s.trustDomain.Name())
	assert.Equal(t, []string{"f1:8081", "f2:8081"}, s.cfg.Servers)
	assert.Equal(t, "/etc/bundle.pem", s.cfg.TrustBundle)
	assert.Equal(t, "file.token", s.cfg.JoinToken)
	assert.Equal(t, "/run/file/api.sock", s.socket)
	assert.Equal(t, "/var/lib/file", s.dataDir)
	assert.Equal(t, "127.0.0.1:9989", s.cfg.MetricsAddr)
	assert.Equal(t, slog.LevelDebug, s.logLevel)
	assert.Equal(t, "json", s.cfg.LogFormat)
	assert.Equal(t, "/host/proc", s.cfg.UnixProcRoot)
	assert.True(t, s.cfg.UnixSkipExec)
	assert.True(t, s.cfg.UnixSkipHash)
	assert.False(t, s.cfg.InsecureBootstrap)
	assert.Equal(t, &endpoint.RateLimit{Rate: 12.5, Burst: 40}, s.rateLimit())
}

func TestFlagsWinOverEnvironmentOverFile(t *testing.T) {
	cfgPath := writeFile(t, "agent.json", fileConfig)
	t.Setenv("SPIFFE_AGENT_TRUST_DOMAIN", "env.example")
	t.Setenv("SPIFFE_AGENT_SERVER", "e1:1,e2:2")
	t.Setenv("SPIFFE_AGENT_LOG_LEVEL", "error")
	t.Setenv("SPIFFE_AGENT_UNIX_SKIP_HASH", "false")
	t.Setenv("SPIFFE_AGENT_RATELIMIT_BURST", "7")

	// Environment over file, key by key.
	s, code, stderr := parse(t, "-config", cfgPath)
	require.Equal(t, ExitOK, code, stderr)
	assert.Equal(t, "env.example", s.trustDomain.Name())
	assert.Equal(t, []string{"e1:1", "e2:2"}, s.cfg.Servers, "the variable replaces the file's list")
	assert.Equal(t, slog.LevelError, s.logLevel)
	assert.False(t, s.cfg.UnixSkipHash)
	assert.True(t, s.cfg.UnixSkipExec, "keys the environment leaves out come from the file")
	assert.Equal(t, "file.token", s.cfg.JoinToken)
	assert.Equal(t, &endpoint.RateLimit{Rate: 12.5, Burst: 7}, s.rateLimit())

	// Flags over both, wherever -config comes.
	s, code, stderr = parse(t, "-server", "cli:1", "-trust-domain", "cli.example", "-config", cfgPath,
		"-log-level", "warn", "-metrics-addr", "", "-data-dir", "rel", "-ratelimit-rate", "0")
	require.Equal(t, ExitOK, code, stderr)
	assert.Equal(t, "cli.example", s.trustDomain.Name())
	assert.Equal(t, []string{"cli:1"}, s.cfg.Servers, "-server replaces the list")
	assert.Equal(t, slog.LevelWarn, s.logLevel)
	assert.Empty(t, s.cfg.MetricsAddr, "an empty flag value overrides too")
	assert.True(t, filepath.IsAbs(s.dataDir))
	assert.Equal(t, "rel", filepath.Base(s.dataDir))
	assert.Equal(t, "file.token", s.cfg.JoinToken)
	assert.Equal(t, "json", s.cfg.LogFormat)
	assert.Nil(t, s.rateLimit(), "-ratelimit-rate 0 turns the limit off")

	// The configuration file itself may come from the environment.
	t.Setenv("SPIFFE_AGENT_CONFIG", cfgPath)
	s, code, stderr = parse(t)
	require.Equal(t, ExitOK, code, stderr)
	assert.Equal(t, "/run/file/api.sock", s.socket)
}

// TestSDSKeys: the sds block of SPIRE's agent configuration, its flags,
// and SPIRE's defaults.
func TestMintOnDemandKey(t *testing.T) {
	s, code, _ := parse(t, "-trust-domain", "example.org", "-server", "s:1")
	require.Equal(t, ExitOK, code)
	assert.False(t, s.cfg.MintOnDemand, "every entry's SVID ahead of need by default")
	s, code, stderr := parse(t, "-trust-domain", "example.org", "-server", "s:1",
		"-config", writeFile(t, "agent.json", `{"mint_on_demand": true}`))
	require.Equal(t, ExitOK, code, stderr)
	assert.True(t, s.cfg.MintOnDemand)
	s, code, _ = parse(t, "-trust-domain", "example.org", "-server", "s:1", "-mint-on-demand")
	require.Equal(t, ExitOK, code)
	assert.True(t, s.cfg.MintOnDemand)
}

func TestWITSVIDsKey(t *testing.T) {
	s, code, _ := parse(t, "-trust-domain", "example.org", "-server", "s:1")
	require.Equal(t, ExitOK, code)
	assert.False(t, s.cfg.WITSVIDs, "off by default")
	s, code, stderr := parse(t, "-trust-domain", "example.org", "-server", "s:1",
		"-config", writeFile(t, "agent.json", `{"wit_svids": true}`))
	require.Equal(t, ExitOK, code, stderr)
	assert.True(t, s.cfg.WITSVIDs)
	s, code, _ = parse(t, "-trust-domain", "example.org", "-server", "s:1", "-wit-svids")
	require.Equal(t, ExitOK, code)
	assert.True(t, s.cfg.WITSVIDs)
}

func TestSVIDCacheMaxSizeKey(t *testing.T) {
	s, code, _ := parse(t, "-trust-domain", "example.org", "-server", "s:1")
	require.Equal(t, ExitOK, code)
	assert.Equal(t, agent.DefaultX509SVIDCacheMaxSize, s.cfg.SVIDCacheMaxSize)
	s, code, stderr := parse(t, "-trust-domain", "example.org", "-server", "s:1",
		"-config", writeFile(t, "agent.json", `{"x509_svid_cache_max_size": 250}`))
	require.Equal(t, ExitOK, code, stderr)
	assert.Equal(t, 250, s.cfg.SVIDCacheMaxSize)
	for _, bad := range []string{"0", "-1", "many"} {
		_, code, stderr = parse(t, "-trust-domain", "example.org", "-server", "s:1", "-x509-svid-cache-max-size", bad)
		assert.Equal(t, ExitUsage, code)
		assert.Contains(t, stderr, "want a number of entries, 1 or more")
	}
}

func TestSDSKeys(t *testing.T) {
	s, code, stderr := parse(t, "-trust-domain", "example.org", "-server", "s:1")
	require.Equal(t, ExitOK, code, stderr)
	assert.Equal(t, sdsConfig{DefaultSVIDName: "default", DefaultBundleName: "ROOTCA", DefaultAllBundlesName: "ALL"}, s.cfg.SDS)

	file := writeFile(t, "agent.json", `{"trust_domain": "example.org", "servers": ["s:1"], "sds": {
		"default_svid_name": "svid", "default_bundle_name": "bundle", "default_all_bundles_name": "bundles",
		"disable_spiffe_cert_validation": true}}`)
	s, code, stderr = parse(t, "-config", file)
	require.Equal(t, ExitOK, code, stderr)
	cfg := s.sds(nil)
	assert.Equal(t, "svid", cfg.DefaultSVIDName)
	assert.Equal(t, "bundle", cfg.DefaultBundleName)
	assert.Equal(t, "bundles", cfg.DefaultAllBundlesName)
	assert.True(t, cfg.DisableSPIFFECertValidation)

	s, code, stderr = parse(t, "-config", file, "-sds-default-svid-name", "mine", "-sds-disable-spiffe-cert-validation=false")
	require.Equal(t, ExitOK, code, stderr)
	assert.Equal(t, "mine", s.cfg.SDS.DefaultSVIDName)
	assert.Equal(t, "bundle", s.cfg.SDS.DefaultBundleName)
	assert.False(t, s.cfg.SDS.DisableSPIFFECertValidation)
}

func TestEnvironmentAlone(t *testing.T) {
	t.Setenv("SPIFFE_AGENT_TRUST_DOMAIN", "example.org")
	t.Setenv("SPIFFE_AGENT_SERVER", "s:1")
	t.Setenv("SPIFFE_AGENT_JOIN_TOKEN", "id.secret")
	t.Setenv("SPIFFE_AGENT_INSECURE_BOOTSTRAP", "true")
	t.Setenv("SPIFFE_AGENT_X509POP_CERT", "")
	s, code, stderr := parse(t)
	require.Equal(t, ExitOK, code, stderr)
	assert.Equal(t, "id.secret", s.cfg.JoinToken)
	assert.True(t, s.cfg.InsecureBootstrap)
	assert.Empty(t, s.cfg.X509PoPCert, "an empty variable is not set")
}

func TestX509PoPFromFileAndFlags(t *testing.T) {
	cfgPath := writeFile(t, "agent.json", `{"trust_domain": "example.org", "servers": ["s:1"],
		"node_attestor": {"x509pop": {"certificate": "/etc/node.pem", "private_key": "/etc/node.key"}}}`)
	s, code, _ := parse(t, "-config", cfgPath)
	require.Equal(t, ExitOK, code)
	assert.Equal(t, "/etc/node.pem", s.cfg.X509PoPCert)
	assert.Equal(t, "/etc/node.key", s.cfg.X509PoPKey)

	s, code, _ = parse(t, "-config", cfgPath, "-x509pop-key", "/other.key")
	require.Equal(t, ExitOK, code)
	assert.Equal(t, "/etc/node.pem", s.cfg.X509PoPCert)
	assert.Equal(t, "/other.key", s.cfg.X509PoPKey)

	s, code, _ = parse(t, "-trust-domain", "example.org", "-server", "s:1", "-x509pop-cert", "c.pem", "-x509pop-key", "k.pem")
	require.Equal(t, ExitOK, code)
	assert.Equal(t, "c.pem", s.cfg.X509PoPCert)
	assert.Equal(t, "k.pem", s.cfg.X509PoPKey)
}

func TestK8sPSATFromFileAndFlags(t *testing.T) {
	cfgPath := writeFile(t, "agent.json", `{"trust_domain": "example.org", "servers": ["s:1"],
		"node_attestor": {"k8s_psat": {"cluster": "prod-eu", "token_path": "/var/run/secrets/tokens/agent"}}}`)
	s, code, _ := parse(t, "-config", cfgPath)
	require.Equal(t, ExitOK, code)
	assert.Equal(t, "prod-eu", s.cfg.K8sPSATCluster)
	assert.Equal(t, "/var/run/secrets/tokens/agent", s.cfg.K8sPSATTokenPath)

	s, code, _ = parse(t, "-config", cfgPath, "-k8s-psat-cluster", "prod-us")
	require.Equal(t, ExitOK, code)
	assert.Equal(t, "prod-us", s.cfg.K8sPSATCluster)

	// The token file is read at start: a missing one stops the agent,
	// naming the file; a readable one gives a k8s_psat attestor.
	_, err := newNodeAttestor(s)
	require.ErrorContains(t, err, "/var/run/secrets/tokens/agent")
	token := writeFile(t, "token", "header.claims.signature")
	s, code, _ = parse(t, "-trust-domain", "example.org", "-server", "s:1", "-k8s-psat-cluster", "c", "-k8s-psat-token-path", token)
	require.Equal(t, ExitOK, code)
	a, err := newNodeAttestor(s)
	require.NoError(t, err)
	assert.Equal(t, "k8s_psat", a.Type())
	s.cfg.K8sPSATCluster = "not/valid"
	_, err = newNodeAttestor(s)
	require.ErrorContains(t, err, "cluster name")
}

func TestTPMFromFileAndFlags(t *testing.T) {
	cfgPath := writeFile(t, "agent.json", `{"trust_domain": "example.org", "servers": ["s:1"],
		"node_attestor": {"tpm": {"device": "/dev/tpmrm7"}}}`)
	s, code, _ := parse(t, "-config", cfgPath)
	require.Equal(t, ExitOK, code)
	assert.Equal(t, "/dev/tpmrm7", s.cfg.TPMDevice)
	// The device is opened at start: a missing one stops the agent,
	// naming it.
	_, err := newNodeAttestor(s)
	require.ErrorContains(t, err, "-tpm-device: tpm: stat /dev/tpmrm7")
	// Any device or socket that opens gives a tpm attestor; the TPM
	// itself answers at attestation.
	s, code, _ = parse(t, "-config", cfgPath, "-tpm-device", "/dev/null")
	require.Equal(t, ExitOK, code)
	a, err := newNodeAttestor(s)
	require.NoError(t, err)
	assert.Equal(t, "tpm", a.Type())
}

func TestAWSIIDFromFileAndFlags(t *testing.T) {
	// SPIRE's plugin_data key, ec2_metadata_endpoint, enables it.
	cfgPath := writeFile(t, "agent.json", `{"trust_domain": "example.org", "servers": ["s:1"],
		"node_attestor": {"aws_iid": {"ec2_metadata_endpoint": "http://127.0.0.1:1338", "timeout": "3s"}}}`)
	s, code, _ := parse(t, "-config", cfgPath)
	require.Equal(t, ExitOK, code)
	assert.True(t, s.cfg.AWSIID)
	assert.Equal(t, "http://127.0.0.1:1338", s.cfg.AWSIIDEndpoint)
	assert.Equal(t, 3*time.Second, s.cfg.AWSIIDTimeout)
	// Nothing is fetched at start: the service is asked at each
	// attestation.
	a, err := newNodeAttestor(s)
	require.NoError(t, err)
	assert.Equal(t, "aws_iid", a.Type())

	// -aws-iid alone: the default endpoint.
	s, code, _ = parse(t, "-trust-domain", "example.org", "-server", "s:1", "-aws-iid")
	require.Equal(t, ExitOK, code)
	assert.True(t, s.cfg.AWSIID)
	assert.Empty(t, s.cfg.AWSIIDEndpoint)

	s.cfg.AWSIIDEndpoint = "169.254.169.254"
	_, err = newNodeAttestor(s)
	require.ErrorContains(t, err, "want an http:// or https:// URL")
}

func TestGCPIITFromFileAndFlags(t *testing.T) {
	// SPIRE's plugin_data keys, identity_token_host and service_account,
	// enable it.
	cfgPath := writeFile(t, "agent.json", `{"trust_domain": "example.org", "servers": ["s:1"],
		"node_attestor": {"gcp_iit": {"identity_token_host": "127.0.0.1:1339", "service_account": "node@p.iam.gserviceaccount.com",
		"audience": "spiffe://example.org", "timeout": "3s"}}}`)
	s, code, _ := parse(t, "-config", cfgPath)
	require.Equal(t, ExitOK, code)
	assert.True(t, s.cfg.GCPIIT)
	assert.Equal(t, "127.0.0.1:1339", s.cfg.GCPIITHost)
	assert.Equal(t, "node@p.iam.gserviceaccount.com", s.cfg.GCPIITAccount)
	assert.Equal(t, "spiffe://example.org", s.cfg.GCPIITAudience)
	assert.Equal(t, 3*time.Second, s.cfg.GCPIITTimeout)
	// Nothing is fetched at start: the server is asked at each
	// attestation.
	a, err := newNodeAttestor(s)
	require.NoError(t, err)
	assert.Equal(t, "gcp_iit", a.Type())

	// -gcp-iit alone: the defaults.
	s, code, _ = parse(t, "-trust-domain", "example.org", "-server", "s:1", "-gcp-iit")
	require.Equal(t, ExitOK, code)
	assert.True(t, s.cfg.GCPIIT)
	assert.Empty(t, s.cfg.GCPIITHost)
	a, err = newNodeAttestor(s)
	require.NoError(t, err)
	assert.Equal(t, "gcp_iit", a.Type())

	s.cfg.GCPIITHost = "http://metadata.google.internal"
	_, err = newNodeAttestor(s)
	require.ErrorContains(t, err, "no scheme")
}

func TestAzureMSIFromFileAndFlags(t *testing.T) {
	// SPIRE's plugin_data key, resource_id, enables it.
	cfgPath := writeFile(t, "agent.json", `{"trust_domain": "example.org", "servers": ["s:1"],
		"node_attestor": {"azure_msi": {"resource_id": "api://spire", "metadata_endpoint": "http://127.0.0.1:1339", "timeout": "3s"}}}`)
	s, code, _ := parse(t, "-config", cfgPath)
	require.Equal(t, ExitOK, code)
	assert.True(t, s.cfg.AzureMSI)
	assert.Equal(t, "api://spire", s.cfg.AzureMSIResource)
	assert.Equal(t, "http://127.0.0.1:1339", s.cfg.AzureMSIEndpoint)
	assert.Equal(t, 3*time.Second, s.cfg.AzureMSITimeout)
	// Nothing is fetched at start: the service is asked at each
	// attestation.
	a, err := newNodeAttestor(s)
	require.NoError(t, err)
	assert.Equal(t, "azure_msi", a.Type())

	// -azure-msi alone: the default resource and endpoint.
	s, code, _ = parse(t, "-trust-domain", "example.org", "-server", "s:1", "-azure-msi")
	require.Equal(t, ExitOK, code)
	assert.True(t, s.cfg.AzureMSI)
	assert.Empty(t, s.cfg.AzureMSIResource)

	s.cfg.AzureMSIEndpoint = "169.254.169.254"
	_, err = newNodeAttestor(s)
	require.ErrorContains(t, err, "want an http:// or https:// URL")

	_, code, stderr := parse(t, "-trust-domain", "example.org", "-server", "s:1", "-azure-msi-timeout", "-1s")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, "-azure-msi-timeout must not be negative")
	_, code, stderr = parse(t, "-trust-domain", "example.org", "-server", "s:1", "-azure-msi", "-aws-iid")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, "one node attestor")
}

func TestAzureIMDSFromFileAndFlags(t *testing.T) {
	// SPIRE's plugin_data key, tenant_domain, enables it.
	cfgPath := writeFile(t, "agent.json", `{"trust_domain": "example.org", "servers": ["s:1"],
		"node_attestor": {"azure_imds": {"tenant_domain": "contoso.onmicrosoft.com", "metadata_endpoint": "http://127.0.0.1:1340", "timeout": "3s"}}}`)
	s, code, _ := parse(t, "-config", cfgPath)
	require.Equal(t, ExitOK, code)
	assert.Equal(t, "contoso.onmicrosoft.com", s.cfg.AzureIMDSTenant)
	assert.Equal(t, "http://127.0.0.1:1340", s.cfg.AzureIMDSEndpoint)
	assert.Equal(t, 3*time.Second, s.cfg.AzureIMDSTimeout)
	a, err := newNodeAttestor(s)
	require.NoError(t, err)
	assert.Equal(t, "azure_imds", a.Type())

	s.cfg.AzureIMDSTenant = "Contoso"
	_, err = newNodeAttestor(s)
	require.ErrorContains(t, err, "want a tenant ID or domain")

	_, code, stderr := parse(t, "-trust-domain", "example.org", "-server", "s:1", "-azure-imds-endpoint", "http://127.0.0.1:1")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, "azure_imds needs the VM's tenant")
	_, code, stderr = parse(t, "-trust-domain", "example.org", "-server", "s:1", "-azure-imds-tenant-domain", "c.example", "-azure-imds-timeout", "-1s")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, "-azure-imds-timeout must not be negative")
	_, code, stderr = parse(t, "-trust-domain", "example.org", "-server", "s:1", "-azure-imds-tenant-domain", "c.example", "-azure-msi")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, "one node attestor")
}

func TestParseRunErrors(t *testing.T) {
	longSocket := "/" + strings.Repeat("s", 120)
	tests := []struct {
		name   string
		args   []string
		config string // written to a file passed with -config, if set
		stderr string
	}{
		{"unknown flag", []string{"-nope"}, "", "flag provided but not defined: -nope"},
		{"extra argument", append(minimal[:len(minimal):len(minimal)], "extra"), "", `unexpected argument "extra"`},
		{"flag without value", []string{"-server"}, "", "flag needs an argument"},
		{"bad boolean", []string{"-insecure-bootstrap=maybe"}, "", `invalid boolean value "maybe" for -insecure-bootstrap: parse error`},
		{"no trust domain", []string{"-server", "s:1"}, "", "a trust domain is required"},
		{"bad trust domain", []string{"-trust-domain", "Example.ORG!", "-server", "s:1"}, "", "-trust-domain: spiffeid: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores"},
		{"no server", []string{"-trust-domain", "example.org"}, "", "at least one server is required"},
		{"server without port", []string{"-trust-domain", "example.org", "-server", "localhost"}, "", `-server "localhost"`},
		{"server port zero", []string{"-trust-domain", "example.org", "-server", "h:0"}, "", "port must be a number"},
		{"server port text", []string{"-trust-domain", "example.org", "-server", "h:http"}, "", "port must be a number"},
		{"bundle and insecure", []string{"-trust-domain", "example.org", "-server", "s:1", "-trust-bundle", "b.pem", "-insecure-bootstrap"}, "", "not both"},
		{"half x509pop", []string{"-trust-domain", "example.org", "-server", "s:1", "-x509pop-cert", "c.pem"}, "", "needs both a certificate and a private key"},
		{"two attestors", []string{"-trust-domain", "example.org", "-server", "s:1", "-join-token", "t", "-x509pop-cert", "c", "-x509pop-key", "k"}, "", "one node attestor"},
		{"join token and tpm", []string{"-trust-domain", "example.org", "-server", "s:1", "-join-token", "t", "-tpm-device", "/dev/tpmrm0"}, "", "one node attestor"},
		{"join token and k8s_psat", []string{"-trust-domain", "example.org", "-server", "s:1", "-join-token", "t", "-k8s-psat-cluster", "c"}, "", "one node attestor"},
		{"join token and aws_iid", []string{"-trust-domain", "example.org", "-server", "s:1", "-join-token", "t", "-aws-iid-endpoint", "http://127.0.0.1:1"}, "", "one node attestor"},
		{"aws_iid and gcp_iit", []string{"-trust-domain", "example.org", "-server", "s:1", "-aws-iid", "-gcp-iit-host", "127.0.0.1:1"}, "", "one node attestor"},
		{"negative gcp_iit timeout", []string{"-trust-domain", "example.org", "-server", "s:1", "-gcp-iit-timeout", "-1s"}, "", "-gcp-iit-timeout must not be negative"},
		{"negative aws_iid timeout", []string{"-trust-domain", "example.org", "-server", "s:1", "-aws-iid-timeout", "-1s"}, "", "-aws-iid-timeout must not be negative"},
		{"k8s_psat token without cluster", []string{"-trust-domain", "example.org", "-server", "s:1", "-k8s-psat-token-path", "/t"}, "", "needs the cluster's name"},
		{"empty socket", []string{"-trust-domain", "example.org", "-server", "s:1", "-socket", ""}, "", "a socket path is required"},
		{"socket path too long", []string{"-trust-domain", "example.org", "-server", "s:1", "-socket", longSocket}, "", "longer than the 107 bytes"},
		{"bad metrics addr", []string{"-trust-domain", "example.org", "-server", "s:1", "-metrics-addr", "9989"}, "", `-metrics-addr "9989": address 9989: missing port in address`},
		{"bad log level", []string{"-trust-domain", "example.org", "-server", "s:1", "-log-level", "loud"}, "", `-log-level "loud"`},
		{"negative rate", []string{"-trust-domain", "example.org", "-server", "s:1", "-ratelimit-rate", "-1"}, "", `invalid value "-1" for flag -ratelimit-rate: want a number of calls per second, 0 or more`},
		{"rate not a number", []string{"-trust-domain", "example.org", "-server", "s:1", "-ratelimit-rate", "fast"}, "", "want a number of calls per second"},
		{"infinite rate", []string{"-trust-domain", "example.org", "-server", "s:1", "-ratelimit-rate", "+Inf"}, "", "want a number of calls per second"},
		{"zero burst", []string{"-trust-domain", "example.org", "-server", "s:1", "-ratelimit-burst", "0"}, "", "want a number of calls, 1 or more"},
		{"config rate as text", nil, `{"ratelimit": {"rate": "x"}}`, `agent.json: ratelimit.rate: invalid value "x": want a number`},
		{"config unknown ratelimit key", nil, `{"ratelimit": {"fetch_x509_svid": 10}}`, `unknown key "ratelimit.fetch_x509_svid"`},
		{"sds names the same", []string{"-trust-domain", "example.org", "-server", "s:1", "-sds-default-bundle-name", "default"}, "", "the sds names: sds: the default SVID, bundle and all-bundles names must differ"},
		{"config sds unknown key", nil, `{"sds": {"default_svid": "x"}}`, `unknown key "sds.default_svid"`},
		{"bad log format", []string{"-trust-domain", "example.org", "-server", "s:1", "-log-format", "xml"}, "", `-log-format "xml"`},
		{"missing config file", []string{"-config", "/nonexistent/agent.json"}, "", "configuration file: open /nonexistent/agent.json: no such file"},
		{"config a directory", []string{"-config", os.TempDir()}, "", "is not a regular file"},
		{"config not JSON", nil, "trust_domain = 'x'", "agent.json: invalid character"},
		{"config not an object", nil, `["s:1"]`, "agent.json: json: cannot unmarshal array"},
		{"config unknown key", nil, `{"trust_domian": "example.org"}`, `agent.json: unknown key "trust_domian"`},
		{"config flag name as key", nil, `{"trust-domain": "example.org"}`, `unknown key "trust-domain"`},
		{"config unknown nested key", nil, `{"node_attestor": {"x509pop": {"cert": "c"}}}`, `unknown key "node_attestor.x509pop.cert"`},
		{"config bad value", nil, `{"insecure_bootstrap": "maybe"}`, `agent.json: insecure_bootstrap: invalid value "maybe": parse error`},
		{"config trailing data", nil, `{"servers": ["s:1"]} {}`, "unexpected data after the JSON value"},
		{"config too large", nil, `{"trust_domain": "` + strings.Repeat("a", cmdline.MaxFileSize) + `"}`, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.config != "" {
				args = append([]string{"-config", writeFile(t, "agent.json", tt.config)}, args...)
			}
			s, code, stderr := parse(t, args...)
			assert.Nil(t, s)
			assert.Equal(t, ExitUsage, code)
			// The problem on one line, naming the command, then where to
			// find help.
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			require.Len(t, lines, 2, stderr)
			assert.True(t, strings.HasPrefix(lines[0], "spiffe-agent run: "), stderr)
			assert.Contains(t, lines[0], tt.stderr)
			assert.Equal(t, `Run "spiffe-agent run -h" for help.`, lines[1])
		})
	}
}

func TestBadEnvironmentVariable(t *testing.T) {
	t.Setenv("SPIFFE_AGENT_INSECURE_BOOTSTRAP", "maybe")
	s, code, stderr := parse(t, minimal...)
	assert.Nil(t, s)
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, `environment variable "SPIFFE_AGENT_INSECURE_BOOTSTRAP"`)
}

func TestJoinTokenIsNotPrintedInErrors(t *testing.T) {
	_, code, stderr := parse(t, "-trust-domain", "example.org", "-server", "s:1", "-join-token", "id.supersecret", "-log-level", "x")
	require.Equal(t, ExitUsage, code)
	assert.NotContains(t, stderr, "supersecret")
}

func TestRunHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := Main(t.Context(), []string{"run", "-h"}, &stdout, &stderr)
	assert.Equal(t, ExitOK, code)
	assert.Empty(t, stderr.String())
	help := stdout.String()
	assert.Contains(t, help, "Usage: spiffe-agent run [flags]")
	// Each key with its three names.
	for _, want := range []string{
		"-trust-domain domain",
		"environment SPIFFE_AGENT_TRUST_DOMAIN, file key trust_domain",
		"environment SPIFFE_AGENT_SERVER, file key servers",
		"environment SPIFFE_AGENT_X509POP_CERT, file key node_attestor.x509pop.certificate",
		"environment SPIFFE_AGENT_UNIX_SKIP_HASH, file key workload_attestors.unix.skip_hash",
		"-socket path\n    \t`path` of the Workload API socket (default /run/spiffe-agent/api.sock)",
		"environment SPIFFE_AGENT_CONFIG\n",
		"wins over its environment variable",
	} {
		assert.Contains(t, help, strings.ReplaceAll(want, "`path`", "path"))
	}
}

func TestMainUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"no command", nil, ""},
		{"unknown", []string{"start"}, `unknown command "start"`},
		{"api fetch svid", []string{"api", "fetch", "svid"}, `unknown command "api fetch svid"`},
		{"api verify", []string{"api", "verify", "jwt"}, `unknown command "api verify jwt"`},
		{"a flag first", []string{"-socket", "x"}, `unknown command "-socket"`},
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
	// A group of commands without its subcommand: the group's usage.
	for _, args := range [][]string{{"api"}, {"api", "-x"}} {
		var stdout, stderr bytes.Buffer
		assert.Equal(t, ExitUsage, Main(t.Context(), args, &stdout, &stderr), args)
		assert.Empty(t, stdout.String())
		assert.Contains(t, stderr.String(), "Usage: spiffe-agent api <subcommand>")
	}
	for _, help := range []string{"-h", "-help", "--help", "help"} {
		var stdout, stderr bytes.Buffer
		assert.Equal(t, ExitOK, Main(t.Context(), []string{help}, &stdout, &stderr), help)
		assert.Empty(t, stderr.String())
		assert.Contains(t, stdout.String(), "Usage: spiffe-agent <command>")
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"trust_domain": "example.org", "servers": ["s:1"], "join_token": "a.b"}`))
	f.Add([]byte(`{"node_attestor": {"x509pop": {"certificate": "c", "private_key": "k"}}}`))
	f.Add([]byte(`{"workload_attestors": {"unix": {"skip_hash": true}}}`))
	f.Add([]byte(`{} {}`))
	// One file, written again for each input: a directory made and
	// removed per input would cost more than the parse.
	path := filepath.Join(f.TempDir(), "agent.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		require.NoError(t, os.WriteFile(path, data, 0o600))
		var stdout, stderr bytes.Buffer
		_, s, code := parseRun([]string{"-config", path}, &stdout, &stderr)
		if s == nil {
			// Rejected input is fine, as a usage error on one line; a
			// panic is not.
			require.Equal(t, ExitUsage, code)
			require.Equal(t, 2, strings.Count(stderr.String(), "\n"), stderr.String())
			return
		}
		// A checked config names a trust domain, servers and a socket
		// that a unix socket can be bound to.
		require.False(t, s.trustDomain.IsZero())
		require.NotEmpty(t, s.cfg.Servers)
		require.LessOrEqual(t, len(s.socket), maxSocketPath)
	})
}
