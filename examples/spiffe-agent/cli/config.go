package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/attest/gcpiit"
	"github.com/spiffekit/spiffekit/attest/k8spsat"
	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint/sds"
)

// Defaults of the run command.
const (
	// DefaultSocket is the Workload API socket of run, and the socket the
	// api and healthcheck commands use when neither -socket nor
	// SPIFFE_ENDPOINT_SOCKET is given.
	DefaultSocket = "/run/spiffe-agent/api.sock"
	// EnvPrefix begins the name of the environment variable of each key
	// of run: SPIFFE_AGENT_TRUST_DOMAIN for -trust-domain.
	EnvPrefix = "SPIFFE_AGENT"
	// maxSocketPath is the longest path a unix socket can be bound to on
	// Linux (sun_path is 108 bytes, with the terminating NUL).
	maxSocketPath = 107
)

// runConfig is the configuration of the run command, from its flags,
// environment variables and configuration file (see keys).
type runConfig struct {
	TrustDomain       string
	Servers           []string
	TrustBundle       string
	InsecureBootstrap bool
	JoinToken         string
	X509PoPCert       string
	X509PoPKey        string
	K8sPSATCluster    string
	K8sPSATTokenPath  string
	TPMDevice         string
	TPMDevID          *tpmDevIDConfig      // nil: no tpm_devid node attestor
	TPMKeyManager     *tpmKeyManagerConfig // nil: the agent's key in memory
	AWSIID            bool
	AWSIIDEndpoint    string
	AWSIIDTimeout     time.Duration
	GCPIIT            bool
	GCPIITHost        string
	GCPIITAccount     string
	GCPIITAudience    string
	GCPIITTimeout     time.Duration
	AzureMSI          bool
	AzureMSIResource  string
	AzureMSIEndpoint  string
	AzureMSITimeout   time.Duration
	AzureIMDSTenant   string
	AzureIMDSEndpoint string
	AzureIMDSTimeout  time.Duration
	UnixProcRoot      string
	UnixSkipExec      bool
	UnixSkipHash      bool
	MintOnDemand      bool
	WITSVIDs          bool
	SVIDCacheMaxSize  int
	K8s               *k8sConfig    // nil: no k8s workload attestor
	Docker            *dockerConfig // nil: no docker workload attestor
	Socket            string
	SDS               sdsConfig
	RateLimitRate     float64
	RateLimitBurst    int
	DataDir           string
	MetricsAddr       string
	LogLevel          string
	LogFormat         string
}

const runHelp = `Runs the node agent: attests this node to an issuing server, keeps its
registration entries in sync and serves their SVIDs on the Workload API
socket, until SIGINT or SIGTERM.`

// newRunCommand declares the keys of run, each once: its flag, its
// environment variable (EnvPrefix_NAME) and its configuration file key.
func newRunCommand(c *runConfig) *cmdline.Command {
	c.RateLimitRate, c.RateLimitBurst = endpoint.DefaultRate, endpoint.DefaultBurst
	c.SVIDCacheMaxSize = defaultSVIDCacheMaxSize
	cmd := cmdline.New("spiffe-agent run", runHelp)
	cmd.Configurable(EnvPrefix)
	cmd.String(&c.TrustDomain, "trust-domain", "", "the agent's trust `domain`, e.g. example.org (required)")
	cmd.Var(cmdline.NewList(&c.Servers, cmdline.Text, ","), "server",
		"issuing server `host:port`; repeat it or separate with commas to fail over (required)").File("servers")
	cmd.String(&c.TrustBundle, "trust-bundle", "", "`file` of PEM CA certificates, or a SPIFFE bundle JSON document, that verify the servers")
	cmd.Bool(&c.InsecureBootstrap, "insecure-bootstrap", false, "attest without verifying the server (trying things out only)")
	cmd.String(&c.JoinToken, "join-token", "", "join `token` for the first attestation")
	cmd.String(&c.X509PoPCert, "x509pop-cert", "", "x509pop node attestation: PEM certificate chain `file`").
		File("node_attestor.x509pop.certificate")
	cmd.String(&c.X509PoPKey, "x509pop-key", "", "x509pop node attestation: PKCS#8 PEM private key `file` (mode 0600)").
		File("node_attestor.x509pop.private_key")
	cmd.String(&c.K8sPSATCluster, "k8s-psat-cluster", "", "k8s_psat node attestation: the `name` of this node's Kubernetes cluster, as the server knows it").
		File("node_attestor.k8s_psat.cluster")
	cmd.String(&c.K8sPSATTokenPath, "k8s-psat-token-path", "", "k8s_psat node attestation: the projected service account token `file` (default "+k8spsat.DefaultTokenPath+")").
		File("node_attestor.k8s_psat.token_path")
	cmd.String(&c.TPMDevice, "tpm-device", "", "tpm node attestation: the TPM 2.0 `device` (/dev/tpmrm0) or a unix socket serving TPM commands").
		File("node_attestor.tpm.device")
	cmd.Bool(&c.AWSIID, "aws-iid", false, "aws_iid node attestation: present this EC2 instance's identity document, fetched through IMDSv2")
	cmd.String(&c.AWSIIDEndpoint, "aws-iid-endpoint", "", "aws_iid node attestation: the instance metadata service's `URL` (default http://169.254.169.254; implies -aws-iid)").
		File("node_attestor.aws_iid.ec2_metadata_endpoint")
	cmd.Duration(&c.AWSIIDTimeout, "aws-iid-timeout", 0, "aws_iid node attestation: how long one fetch from the metadata service may take (0: 10s; implies -aws-iid)").
		File("node_attestor.aws_iid.timeout")
	cmd.Bool(&c.GCPIIT, "gcp-iit", false, "gcp_iit node attestation: present an instance identity token of this Compute Engine instance, fetched from the metadata server")
	cmd.String(&c.GCPIITHost, "gcp-iit-host", "", "gcp_iit node attestation: the metadata server's `host[:port]` (default: $GCE_METADATA_HOST, or 169.254.169.254; implies -gcp-iit)").
		File("node_attestor.gcp_iit.identity_token_host")
	cmd.String(&c.GCPIITAccount, "gcp-iit-service-account", "", "gcp_iit node attestation: the service `account` whose identity endpoint issues the token (default \"default\"; implies -gcp-iit)").
		File("node_attestor.gcp_iit.service_account")
	cmd.String(&c.GCPIITAudience, "gcp-iit-audience", "", "gcp_iit node attestation: the token's `audience`, the server's (default "+gcpiit.DefaultAudience+"; implies -gcp-iit)").
		File("node_attestor.gcp_iit.audience")
	cmd.Duration(&c.GCPIITTimeout, "gcp-iit-timeout", 0, "gcp_iit node attestation: how long one fetch from the metadata server may take (0: 10s; implies -gcp-iit)").
		File("node_attestor.gcp_iit.timeout")
	cmd.Bool(&c.AzureMSI, "azure-msi", false, "azure_msi node attestation: present this Azure VM's managed identity token, fetched from the instance metadata service")
	cmd.String(&c.AzureMSIResource, "azure-msi-resource-id", "", "azure_msi node attestation: the `resource` to get the token for, its audience (default https://management.azure.com/; implies -azure-msi)").
		File("node_attestor.azure_msi.resource_id")
	cmd.String(&c.AzureMSIEndpoint, "azure-msi-endpoint", "", "azure_msi node attestation: the instance metadata service's `URL` (default http://169.254.169.254; implies -azure-msi)").
		File("node_attestor.azure_msi.metadata_endpoint")
	cmd.Duration(&c.AzureMSITimeout, "azure-msi-timeout", 0, "azure_msi node attestation: how long one fetch from the metadata service may take (0: 10s; implies -azure-msi)").
		File("node_attestor.azure_msi.timeout")
	cmd.String(&c.AzureIMDSTenant, "azure-imds-tenant-domain", "", "azure_imds node attestation: this Azure VM's tenant, its `ID or domain` as the server's allow-list names it; answers the server's nonce with an attested document").
		File("node_attestor.azure_imds.tenant_domain")
	cmd.String(&c.AzureIMDSEndpoint, "azure-imds-endpoint", "", "azure_imds node attestation: the instance metadata service's `URL` (default http://169.254.169.254)").
		File("node_attestor.azure_imds.metadata_endpoint")
	cmd.Duration(&c.AzureIMDSTimeout, "azure-imds-timeout", 0, "azure_imds node attestation: how long one fetch from the metadata service may take (0: 10s)").
		File("node_attestor.azure_imds.timeout")
	cmd.String(&c.UnixProcRoot, "unix-proc-root", "", "where the host's proc filesystem is mounted (default /proc)").
		File("workload_attestors.unix.proc_root")
	cmd.Bool(&c.UnixSkipExec, "unix-skip-executable", false, "leave out the unix:path and unix:sha256 selectors").
		File("workload_attestors.unix.skip_executable")
	cmd.Bool(&c.UnixSkipHash, "unix-skip-hash", false, "leave out the unix:sha256 selector").
		File("workload_attestors.unix.skip_hash")
	cmd.Section(tpmDevIDKey, tpmDevIDHelp, &c.TPMDevID)
	cmd.Section(tpmKeyManagerKey, tpmKeyManagerHelp, &c.TPMKeyManager)
	cmd.Section("workload_attestors.k8s", k8sHelp, &c.K8s)
	cmd.Section("workload_attestors.docker", dockerHelp, &c.Docker)
	cmd.String(&c.Socket, "socket", DefaultSocket, "`path` of the Workload API socket")
	cmd.String(&c.SDS.DefaultSVIDName, "sds-default-svid-name", sds.DefaultSVIDName,
		"SDS resource `name` of the caller's default X509-SVID").File("sds.default_svid_name")
	cmd.String(&c.SDS.DefaultBundleName, "sds-default-bundle-name", sds.DefaultBundleName,
		"SDS resource `name` of the bundle of the agent's trust domain").File("sds.default_bundle_name")
	cmd.String(&c.SDS.DefaultAllBundlesName, "sds-default-all-bundles-name", sds.DefaultAllBundlesName,
		"SDS resource `name` of every bundle the caller trusts, as one SPIFFE certificate validator").File("sds.default_all_bundles_name")
	cmd.Bool(&c.SDS.DisableSPIFFECertValidation, "sds-disable-spiffe-cert-validation", false,
		"send bundles to Envoy over SDS as trusted_ca, not as SPIFFE certificate validators").File("sds.disable_spiffe_cert_validation")
	cmd.Var(cmdline.NewValue(&c.RateLimitRate, parseRate), "ratelimit-rate",
		"Workload API `calls` per second each local uid may make, sustained (0: no limit)").File("ratelimit.rate")
	cmd.Var(cmdline.NewValue(&c.RateLimitBurst, parseBurst), "ratelimit-burst",
		"Workload API `calls` each local uid may make at once, after a pause").File("ratelimit.burst")
	cmd.Bool(&c.MintOnDemand, "mint-on-demand", false, "hold X509-SVIDs only for the workloads connected now, each minted on its first request,\nnot one for every entry ahead of need").
		File("mint_on_demand")
	cmd.Bool(&c.WITSVIDs, "wit-svids", false, "serve WIT-SVIDs (FetchWITSVID, FetchWITBundles), signed by a server run with -wit-svids\nfor keys the agent generates when a workload asks (incubating standard)").
		File("wit_svids")
	cmd.Var(cmdline.NewValue(&c.SVIDCacheMaxSize, parseCacheSize), "x509-svid-cache-max-size",
		"most `entries` whose X509-SVIDs are kept ahead of need; the others are minted when a workload asks (default 1000)").
		File("x509_svid_cache_max_size")
	cmd.String(&c.DataDir, "data-dir", "", "`directory` keeping the agent SVID, key and bundle across restarts (created 0700; empty: keep nothing)")
	cmd.String(&c.MetricsAddr, "metrics-addr", "", "serve /metrics and /healthz on `host:port`, e.g. 127.0.0.1:9989 (empty: disabled)")
	cmd.String(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	cmd.String(&c.LogFormat, "log-format", "text", "text or json")
	return cmd
}

// sdsConfig holds the keys of the sds block, SPIRE's. Envoy's SDS is
// always served on the Workload API socket, as by SPIRE's agent.
type sdsConfig struct {
	DefaultSVIDName             string
	DefaultBundleName           string
	DefaultAllBundlesName       string
	DisableSPIFFECertValidation bool
}

// settings is a checked configuration, ready to build the agent from.
type settings struct {
	cfg          runConfig
	trustDomain  spiffeid.TrustDomain
	socket       string       // absolute
	dataDir      string       // absolute, or empty
	k8s          *k8sSettings // nil: no k8s workload attestor
	dockerSocket string       // "": no docker workload attestor
	logLevel     slog.Level
}

// check validates cfg and resolves what run needs from it. Its errors are
// usage errors.
func check(cfg runConfig) (*settings, error) {
	s := &settings{cfg: cfg}
	var err error
	if cfg.TrustDomain == "" {
		return nil, errors.New("a trust domain is required (-trust-domain)")
	}
	if s.trustDomain, err = spiffeid.TrustDomainFromString(cfg.TrustDomain); err != nil {
		return nil, fmt.Errorf("-trust-domain: %w", err)
	}
	if len(cfg.Servers) == 0 {
		return nil, errors.New("at least one server is required (-server host:port)")
	}
	for _, srv := range cfg.Servers {
		if err := checkHostPort(srv, false); err != nil {
			return nil, fmt.Errorf("-server %q: %w", srv, err)
		}
	}
	if cfg.TrustBundle != "" && cfg.InsecureBootstrap {
		return nil, errors.New("give -trust-bundle or -insecure-bootstrap, not both")
	}
	if cfg.X509PoPCert != "" || cfg.X509PoPKey != "" {
		if cfg.X509PoPCert == "" || cfg.X509PoPKey == "" {
			return nil, errors.New("x509pop needs both a certificate and a private key (-x509pop-cert, -x509pop-key)")
		}
	}
	if cfg.K8sPSATTokenPath != "" && cfg.K8sPSATCluster == "" {
		return nil, errors.New("k8s_psat needs the cluster's name (-k8s-psat-cluster)")
	}
	if cfg.AWSIIDTimeout < 0 {
		return nil, errors.New("-aws-iid-timeout must not be negative")
	}
	if cfg.AWSIIDEndpoint != "" || cfg.AWSIIDTimeout != 0 {
		s.cfg.AWSIID = true
	}
	if cfg.GCPIITTimeout < 0 {
		return nil, errors.New("-gcp-iit-timeout must not be negative")
	}
	if cfg.GCPIITHost != "" || cfg.GCPIITAccount != "" || cfg.GCPIITAudience != "" || cfg.GCPIITTimeout != 0 {
		s.cfg.GCPIIT = true
	}
	if cfg.AzureMSITimeout < 0 {
		return nil, errors.New("-azure-msi-timeout must not be negative")
	}
	if cfg.AzureMSIResource != "" || cfg.AzureMSIEndpoint != "" || cfg.AzureMSITimeout != 0 {
		s.cfg.AzureMSI = true
	}
	if cfg.AzureIMDSTimeout < 0 {
		return nil, errors.New("-azure-imds-timeout must not be negative")
	}
	azureIMDS := cfg.AzureIMDSTenant != "" || cfg.AzureIMDSEndpoint != "" || cfg.AzureIMDSTimeout != 0
	if azureIMDS && cfg.AzureIMDSTenant == "" {
		return nil, errors.New("azure_imds needs the VM's tenant (-azure-imds-tenant-domain)")
	}
	given := 0
	for _, set := range []bool{cfg.JoinToken != "", cfg.X509PoPCert != "", cfg.K8sPSATCluster != "", cfg.TPMDevice != "", cfg.TPMDevID != nil, s.cfg.AWSIID, s.cfg.GCPIIT, s.cfg.AzureMSI, azureIMDS} {
		if set {
			given++
		}
	}
	if given > 1 {
		return nil, errors.New("give one node attestor: a join token, x509pop, k8s_psat, tpm, tpm_devid, aws_iid, gcp_iit, azure_msi or azure_imds")
	}
	if cfg.K8s != nil {
		if s.k8s, err = checkK8s(cfg.K8s, os.Getenv); err != nil {
			return nil, err
		}
	}
	if cfg.Docker != nil {
		if s.dockerSocket, err = dockerSocket(cfg.Docker); err != nil {
			return nil, err
		}
	}
	if cfg.Socket == "" {
		return nil, errors.New("a socket path is required (-socket)")
	}
	if s.socket, err = filepath.Abs(cfg.Socket); err != nil {
		return nil, fmt.Errorf("-socket: %w", err)
	}
	if len(s.socket) > maxSocketPath {
		return nil, fmt.Errorf("-socket: the path %s is longer than the %d bytes a unix socket allows", s.socket, maxSocketPath)
	}
	if _, err := sds.New(s.sds(endpoint.NewMemoryHandler(endpoint.MemoryConfig{}))); err != nil {
		return nil, fmt.Errorf("the sds names: %w", err)
	}
	if cfg.DataDir != "" {
		if s.dataDir, err = filepath.Abs(cfg.DataDir); err != nil {
			return nil, fmt.Errorf("-data-dir: %w", err)
		}
	}
	if cfg.MetricsAddr != "" {
		if err := checkHostPort(cfg.MetricsAddr, true); err != nil {
			return nil, fmt.Errorf("-metrics-addr %q: %w", cfg.MetricsAddr, err)
		}
	}
	switch strings.ToLower(cfg.LogLevel) {
	case "debug":
		s.logLevel = slog.LevelDebug
	case "info", "":
		s.logLevel = slog.LevelInfo
	case "warn", "warning":
		s.logLevel = slog.LevelWarn
	case "error":
		s.logLevel = slog.LevelError
	default:
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", cfg.LogLevel)
	}
	switch cfg.LogFormat {
	case "text", "json", "":
	default:
		return nil, fmt.Errorf("-log-format %q: want text or json", cfg.LogFormat)
	}
	return s, nil
}

// parseRate parses -ratelimit-rate: a number of calls per second, 0 or
// more.
func parseRate(s string) (float64, error) {
	r, err := strconv.ParseFloat(s, 64)
	if err != nil || r < 0 || math.IsInf(r, 0) || math.IsNaN(r) {
		return 0, errors.New("want a number of calls per second, 0 or more")
	}
	return r, nil
}

// defaultSVIDCacheMaxSize is agent.DefaultX509SVIDCacheMaxSize, the
// default of -x509-svid-cache-max-size.
const defaultSVIDCacheMaxSize = 1000

// parseCacheSize parses -x509-svid-cache-max-size: a number of entries,
// 1 or more.
func parseCacheSize(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, errors.New("want a number of entries, 1 or more (-mint-on-demand keeps none ahead of need)")
	}
	return n, nil
}

// parseBurst parses -ratelimit-burst: a number of calls, 1 or more.
func parseBurst(s string) (int, error) {
	b, err := strconv.Atoi(s)
	if err != nil || b < 1 {
		return 0, errors.New("want a number of calls, 1 or more")
	}
	return b, nil
}

// rateLimit returns the Workload API rate limit of the settings, nil for
// none.
func (s *settings) rateLimit() *endpoint.RateLimit {
	if s.cfg.RateLimitRate == 0 {
		return nil
	}
	return &endpoint.RateLimit{Rate: s.cfg.RateLimitRate, Burst: s.cfg.RateLimitBurst}
}

// sds returns the SDS configuration of the settings, serving h.
func (s *settings) sds(h endpoint.Handler) sds.Config {
	c := s.cfg.SDS
	return sds.Config{
		Handler: h, DefaultSVIDName: c.DefaultSVIDName, DefaultBundleName: c.DefaultBundleName,
		DefaultAllBundlesName: c.DefaultAllBundlesName, DisableSPIFFECertValidation: c.DisableSPIFFECertValidation,
	}
}

// checkHostPort checks a "host:port" address; port 0 (any free port) is
// allowed only where the address is listened on.
func checkHostPort(hp string, allowZero bool) error {
	_, port, err := net.SplitHostPort(hp)
	if err != nil {
		return err
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && !allowZero) {
		return errors.New("the port must be a number from 1 to 65535")
	}
	return nil
}

// newLogger returns the logger of the run command, writing to w.
func (s *settings) newLogger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: s.logLevel}
	if s.cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
