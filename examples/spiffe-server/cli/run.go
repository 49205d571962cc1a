package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spiffekit/spiffekit/attest/k8spsat"
	"github.com/spiffekit/spiffekit/attest/k8spsat/psatserver"
	"github.com/spiffekit/spiffekit/ca/upstream/vault"
	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
	"github.com/spiffekit/spiffekit/examples/internal/metrics"
	"github.com/spiffekit/spiffekit/examples/internal/version"
	issuing "github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// EnvPrefix begins the name of the environment variable of each key of
// run: SPIFFE_SERVER_TRUST_DOMAIN for -trust-domain.
const EnvPrefix = "SPIFFE_SERVER"

// Main runs spiffe-server with the command line args (after the program
// name): "run" starts the server until ctx is done; every other command
// goes to [Admin]. Results and asked-for help go to stdout; logs, errors
// and usage errors to stderr. It returns the exit code: [ExitOK],
// [ExitFailure] or [ExitUsage].
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "version" || version.IsFlag(args[0])) {
		return printVersion(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "run" {
		return runServer(ctx, args[1:], stdout, stderr)
	}
	return Admin(ctx, args, stdout, stderr)
}

// printVersion answers "spiffe-server version" and "spiffe-server
// -version": the program's module version and VCS revision.
func printVersion(args []string, stdout, stderr io.Writer) int {
	cmd := cmdline.New("spiffe-server version", "Prints the version of spiffe-server and the VCS revision it was built from.")
	if code, ok := cmd.Parse(args, stdout, stderr); !ok {
		return code
	}
	version.Print(stdout, "spiffe-server")
	return ExitOK
}

// runConfig is the configuration of the run command, from its flags,
// environment variables and configuration file (see newRunCommand).
type runConfig struct {
	TrustDomain       string
	DataDir           string
	Bind              string
	AdminSocket       string
	Datastore         string
	X509PoPCABundle   string
	UpstreamCACert    string
	UpstreamCAKey     string
	CATTL             time.Duration
	X509SVIDTTL       time.Duration
	JWTSVIDTTL        time.Duration
	JWTSVIDJTI        bool
	JWTIssuer         string
	WITSVIDs          bool
	WITSVIDTTL        time.Duration
	AgentSVIDTTL      time.Duration
	MetricsAddr       string
	LogLevel          string
	LogFormat         string
	FederationBind    string
	FederationProfile string
	FederationCert    string
	FederationKey     string
	FederationRefresh time.Duration
	EntryPrune        time.Duration
	MaxHandshakes     int
	HandshakeWait     time.Duration
	FederationRoots   string // PEM roots of the stored relationships' https_web endpoints
	FederatesWith     []relationshipConfig
	K8sPSAT           *k8sPSATConfig      // nil: k8s_psat is off
	AWSIID            *awsIIDConfig       // nil: aws_iid is off
	GCPIIT            *gcpIITConfig       // nil: gcp_iit is off
	AzureMSI          *azureMSIConfig     // nil: azure_msi is off
	AzureIMDS         *azureIMDSConfig    // nil: azure_imds is off
	JoinTokenSection  *struct{}           // node_attestors.join_token: no keys; join_token is always on
	X509PoPSection    *x509popConfig      // node_attestors.x509pop, SPIRE's place for -x509pop-ca-bundle
	TPM               *tpmConfig          // node_attestors.tpm; nil: tpm is off
	TPMDevID          *tpmDevIDConfig     // node_attestors.tpm_devid; nil: tpm_devid is off
	UpstreamSection   *upstreamDiskConfig // upstream_authority.disk, SPIRE's place for -upstream-ca-cert and -upstream-ca-key
	Vault             *vaultConfig        // upstream_authority.vault; nil: no Vault upstream
	Nested            *nestedConfig       // upstream_authority.spire; nil: not a nested server
	DataStoreSection  *dataStoreSQLConfig // data_store.sql, SPIRE's place for -datastore

	// The token exchange endpoint (exchange.go); nil: off.
	TokenExchange *tokenExchangeConfig
	// The launcher API (launcher.go); nil: off.
	Launcher *launcherConfig

	// The key manager (keymanager.go); both nil: the CA keys are files in DataDir.
	PKCS11KeyManager *pkcs11KeyManagerConfig // key_manager.pkcs11
	TPMKeyManager    *tpmKeyManagerConfig    // key_manager.tpm
}

// dataStoreSQLConfig is data_store.sql of the configuration file, with the
// keys of SPIRE's DataStore "sql" plugin_data.
type dataStoreSQLConfig struct {
	// DatabaseType is "postgres" or "mysql"; SPIRE's "sqlite3" is
	// refused: SQLite is the default, in -data-dir.
	DatabaseType string `json:"database_type"`
	// ConnectionString is a PostgreSQL connection string, or a MySQL DSN
	// of github.com/go-sql-driver/mysql (user:password@tcp(host:3306)/db),
	// as SPIRE takes them.
	ConnectionString string `json:"connection_string"`
}

// upstreamDiskConfig is upstream_authority.disk of the configuration file,
// with the keys of SPIRE's UpstreamAuthority "disk" plugin_data.
type upstreamDiskConfig struct {
	// CertFilePath is -upstream-ca-cert.
	CertFilePath string `json:"cert_file_path"`
	// KeyFilePath is -upstream-ca-key.
	KeyFilePath string `json:"key_file_path"`
	// BundleFilePath is SPIRE's file of the roots above an intermediate
	// upstream CA; refused: they follow the CA in CertFilePath here.
	BundleFilePath string `json:"bundle_file_path"`
}

// x509popConfig is node_attestors.x509pop of the configuration file, with
// the key of SPIRE's x509pop plugin_data.
type x509popConfig struct {
	// CABundlePath is -x509pop-ca-bundle.
	CABundlePath string `json:"ca_bundle_path"`
}

// relationshipConfig is one federation relationship of the configuration
// file (see server.Relationship). Every field but BundleFile and
// WebPKIRoots is required, as the profile asks; nothing is inferred from
// the URL.
type relationshipConfig struct {
	// TrustDomain is the foreign trust domain whose bundle is fetched.
	TrustDomain string `json:"trust_domain"`
	// URL is the https URL of its bundle endpoint.
	URL string `json:"url"`
	// Profile is "https_spiffe" or "https_web".
	Profile string `json:"profile"`
	// EndpointSPIFFEID is the SPIFFE ID of an https_spiffe endpoint.
	EndpointSPIFFEID string `json:"endpoint_spiffe_id"`
	// BundleFile is the bootstrap bundle of a self-serving https_spiffe
	// endpoint: a SPIFFE bundle document or PEM CA certificates.
	BundleFile string `json:"bundle_file"`
	// WebPKIRoots is a PEM file of the roots an https_web endpoint's
	// certificate chains to; empty means the system roots.
	WebPKIRoots string `json:"web_pki_roots"`
}

const runHelp = `Starts the issuing server and runs it until SIGINT or SIGTERM.`

const federatesWithHelp = `the federation relationships: a JSON array of objects with the keys
trust_domain, url, profile (https_spiffe or https_web) and, as the profile
needs, endpoint_spiffe_id, bundle_file, web_pki_roots (see README.md)`

// newRunCommand declares the keys of run, each once: its flag, its
// environment variable (EnvPrefix_NAME) and its configuration file key
// (the flag's name with '_' for '-'). Relationships, a list of objects,
// come from the file only.
func newRunCommand(c *runConfig) *cmdline.Command {
	cmd := cmdline.New("spiffe-server run", runHelp)
	cmd.Configurable(EnvPrefix)
	cmd.String(&c.TrustDomain, "trust-domain", "", "trust `domain` to issue identities in (required)")
	cmd.String(&c.DataDir, "data-dir", "", "`directory` for the CA keys, journal and SQLite database (required)")
	cmd.String(&c.Bind, "bind", issuing.DefaultBindAddr, "`address` of the node API")
	cmd.String(&c.AdminSocket, "admin-socket", DefaultAdminSocket, "`path` of the admin socket")
	cmd.String(&c.Datastore, "datastore", "", "PostgreSQL connection `string` (postgres://...) or MySQL/MariaDB DSN (mysql://user:password@tcp(host:3306)/db); default SQLite in -data-dir")
	cmd.String(&c.X509PoPCABundle, "x509pop-ca-bundle", "", "PEM `file` of the CAs that x509pop node certificates chain to (enables x509pop)")
	cmd.String(&c.UpstreamCACert, "upstream-ca-cert", "", "PEM `file` of an upstream CA certificate (then those above it) that signs the server's CAs (SPIRE's UpstreamAuthority \"disk\")")
	cmd.String(&c.UpstreamCAKey, "upstream-ca-key", "", "PKCS#8 PEM `file` of the upstream CA's private key, mode 0600")
	cmd.Duration(&c.CATTL, "ca-ttl", 0, "lifetime of each X.509 CA (0: 24h)")
	cmd.Duration(&c.X509SVIDTTL, "x509-svid-ttl", 0, "default lifetime of X509-SVIDs (0: 1h)")
	cmd.Duration(&c.JWTSVIDTTL, "jwt-svid-ttl", 0, "default lifetime of JWT-SVIDs (0: 5m)")
	cmd.Bool(&c.JWTSVIDJTI, "jwt-svid-jti", false, "give every JWT-SVID a random jti claim")
	cmd.String(&c.JWTIssuer, "jwt-issuer", "", "`URL` put in the iss claim of every JWT-SVID (empty: none)")
	cmd.Bool(&c.WITSVIDs, "wit-svids", false, "keep a WIT-SVID signing key in the bundle and sign WIT-SVIDs for agents (incubating standard)")
	cmd.Duration(&c.WITSVIDTTL, "wit-svid-ttl", 0, "lifetime of WIT-SVIDs (0: 1h)")
	cmd.Duration(&c.AgentSVIDTTL, "agent-svid-ttl", 0, "lifetime of agent SVIDs (0: 1h)")
	cmd.String(&c.MetricsAddr, "metrics-addr", "", "`address` of /metrics and /healthz (empty: off)")
	cmd.String(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	cmd.String(&c.LogFormat, "log-format", "text", "text or json")
	cmd.String(&c.FederationBind, "federation-bind", "", "`address` of the bundle endpoint (empty: off)")
	cmd.String(&c.FederationProfile, "federation-profile", "", "bundle endpoint profile: https_spiffe (default) or https_web")
	cmd.String(&c.FederationCert, "federation-cert", "", "PEM certificate chain `file` of an https_web bundle endpoint")
	cmd.String(&c.FederationKey, "federation-key", "", "PEM private key `file` of an https_web bundle endpoint")
	cmd.Duration(&c.FederationRefresh, "federation-refresh", 0, "longest time between two polls of a bundle endpoint (0: 5m)")
	cmd.String(&c.FederationRoots, "federation-web-pki-roots", "", "PEM `file` of the CA certificates that the https_web bundle endpoints of relationships made with\n`federation create` must chain to (empty: the system roots); read at start")
	cmd.Duration(&c.EntryPrune, "entry-prune-interval", 0, "how often entries whose expiry has passed are deleted (0: 5m, as SPIRE);\nthey are served to no one from their expiry on either way")
	cmd.Var(cmdline.NewValue(&c.MaxHandshakes, parseMaxHandshakes), "max-handshakes",
		"the `number` of TLS handshakes of agents' connections the node API computes at once; the others wait\ntheir turn (0: two per CPU)")
	cmd.Duration(&c.HandshakeWait, "handshake-wait", 0, "longest an agent's TLS handshake waits for a turn (-max-handshakes) before its connection\nis closed and the agent retries after its backoff (0: 10s)")
	cmd.Section("federates_with", federatesWithHelp, &c.FederatesWith)
	cmd.Section(tokenExchangeKey, tokenExchangeHelp, &c.TokenExchange)
	cmd.Section(launcherKey, launcherHelp, &c.Launcher)
	cmd.Section(k8sPSATKey, k8sPSATHelp, &c.K8sPSAT)
	cmd.Section(awsIIDKey, awsIIDHelp, &c.AWSIID)
	cmd.Section(gcpIITKey, gcpIITHelp, &c.GCPIIT)
	cmd.Section(azureMSIKey, azureMSIHelp, &c.AzureMSI)
	cmd.Section(azureIMDSKey, azureIMDSHelp, &c.AzureIMDS)
	cmd.Section("node_attestors.join_token", "the join_token node attestor, always on: {} (no keys)", &c.JoinTokenSection)
	cmd.Section("node_attestors.x509pop", `the x509pop node attestor: {"ca_bundle_path": "<PEM file>"}, SPIRE's name for -x509pop-ca-bundle`, &c.X509PoPSection)
	cmd.Section(tpmKey, tpmHelp, &c.TPM)
	cmd.Section(tpmDevIDKey, tpmDevIDHelp, &c.TPMDevID)
	cmd.Section("data_store.sql", `the shared datastore: {"database_type": "postgres" or "mysql", "connection_string": "<DSN>"}, SPIRE's names for -datastore (a MySQL DSN without mysql://)`, &c.DataStoreSection)
	cmd.Section(pkcs11KeyManagerKey, pkcs11KeyManagerHelp, &c.PKCS11KeyManager)
	cmd.Section(tpmKeyManagerKey, tpmKeyManagerHelp, &c.TPMKeyManager)
	cmd.Section("upstream_authority.disk", `the upstream CA from files: {"cert_file_path": "<PEM file>", "key_file_path": "<PEM file>"}, SPIRE's names for -upstream-ca-cert and -upstream-ca-key`, &c.UpstreamSection)
	cmd.Section(vaultKey, vaultHelp, &c.Vault)
	cmd.Section(nestedKey, nestedHelp, &c.Nested)
	return cmd
}

// runServer parses the flags, environment and configuration file of
// "spiffe-server run", starts the server and runs it until ctx is done. It
// returns ExitOK after a clean shutdown (or help), ExitFailure when the
// server cannot start or fails, ExitUsage for a bad configuration.
func runServer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var rc runConfig
	cmd := newRunCommand(&rc)
	if code, ok := cmd.Parse(args, stdout, stderr); !ok {
		return code
	}
	if err := nodeAttestorKeys(&rc); err != nil {
		return cmd.Misuse(stderr, err)
	}
	if err := upstreamKeys(&rc); err != nil {
		return cmd.Misuse(stderr, err)
	}
	if err := checkVault(&rc); err != nil {
		return cmd.Misuse(stderr, err)
	}
	if err := checkNested(&rc); err != nil {
		return cmd.Misuse(stderr, err)
	}
	if err := dataStoreKeys(&rc); err != nil {
		return cmd.Misuse(stderr, err)
	}
	cfg, log, err := buildConfig(rc, stderr)
	if err != nil {
		return cmd.Misuse(stderr, err)
	}
	if err := serve(ctx, rc, cfg, log, rereader(args)); err != nil {
		// A configuration the server refuses is found before anything is
		// opened or created (see assemble): a usage error.
		if _, ok := errors.AsType[*usageError](err); ok || errors.Is(err, issuing.ErrInvalidConfig) {
			return cmd.Misuse(stderr, err)
		}
		log.Error("server failed", "err", err)
		return cmd.Fail(stderr, err)
	}
	log.Info("server stopped")
	return ExitOK
}

// nodeAttestorKeys takes node_attestors.x509pop.ca_bundle_path, SPIRE's
// place for the x509pop CA bundle, as -x509pop-ca-bundle. Given both, they
// must agree.
func nodeAttestorKeys(rc *runConfig) error {
	x := rc.X509PoPSection
	if x == nil {
		return nil
	}
	switch {
	case x.CABundlePath == "":
		return errors.New("node_attestors.x509pop: ca_bundle_path is required")
	case rc.X509PoPCABundle != "" && rc.X509PoPCABundle != x.CABundlePath:
		return fmt.Errorf("the x509pop CA bundle is given twice: -x509pop-ca-bundle %s and node_attestors.x509pop.ca_bundle_path %s",
			rc.X509PoPCABundle, x.CABundlePath)
	}
	rc.X509PoPCABundle = x.CABundlePath
	return nil
}

// upstreamKeys takes upstream_authority.disk, SPIRE's place for the
// upstream CA's files, as -upstream-ca-cert and -upstream-ca-key. Given
// both ways, they must agree.
func upstreamKeys(rc *runConfig) error {
	u := rc.UpstreamSection
	if u == nil {
		return nil
	}
	switch {
	case u.BundleFilePath != "":
		return errors.New("upstream_authority.disk: bundle_file_path is not supported: put the certificates above the upstream CA after it in cert_file_path; the last one is the root")
	case u.CertFilePath == "" || u.KeyFilePath == "":
		return errors.New("upstream_authority.disk: cert_file_path and key_file_path are required")
	case rc.UpstreamCACert != "" && rc.UpstreamCACert != u.CertFilePath:
		return fmt.Errorf("the upstream CA certificate is given twice: -upstream-ca-cert %s and upstream_authority.disk.cert_file_path %s",
			rc.UpstreamCACert, u.CertFilePath)
	case rc.UpstreamCAKey != "" && rc.UpstreamCAKey != u.KeyFilePath:
		return fmt.Errorf("the upstream CA key is given twice: -upstream-ca-key %s and upstream_authority.disk.key_file_path %s",
			rc.UpstreamCAKey, u.KeyFilePath)
	}
	rc.UpstreamCACert, rc.UpstreamCAKey = u.CertFilePath, u.KeyFilePath
	return nil
}

// mysqlScheme starts a -datastore that is a MySQL DSN.
const mysqlScheme = "mysql://"

// dataStoreKeys takes data_store.sql, SPIRE's place for the datastore, as
// -datastore: a PostgreSQL connection string as it is, a MySQL DSN with
// mysql:// in front. Given both ways, they must agree.
func dataStoreKeys(rc *runConfig) error {
	d := rc.DataStoreSection
	if d == nil {
		return nil
	}
	var ds string
	switch d.DatabaseType {
	case "postgres":
		ds = d.ConnectionString
	case "mysql":
		ds = mysqlScheme + d.ConnectionString
	case "sqlite3":
		return errors.New("data_store.sql: database_type sqlite3 is the default, a database in -data-dir: leave data_store.sql out")
	default:
		return fmt.Errorf("data_store.sql: database_type %q is not postgres or mysql", d.DatabaseType)
	}
	switch {
	case d.ConnectionString == "":
		return errors.New("data_store.sql: connection_string is required")
	case rc.Datastore != "" && rc.Datastore != ds:
		return fmt.Errorf("the datastore is given twice: -datastore and data_store.sql differ")
	}
	rc.Datastore = ds
	return nil
}

// buildConfig checks the configuration and builds the server's, but for
// what assemble opens and reads. Its errors are usage errors.
func buildConfig(rc runConfig, stderr io.Writer) (issuing.Config, *slog.Logger, error) {
	log, err := newLogger(rc.LogLevel, rc.LogFormat, stderr)
	if err != nil {
		return issuing.Config{}, nil, err
	}
	if rc.TrustDomain == "" {
		return issuing.Config{}, nil, errors.New("-trust-domain is required")
	}
	td, err := spiffeid.TrustDomainFromString(rc.TrustDomain)
	if err != nil {
		return issuing.Config{}, nil, fmt.Errorf("-trust-domain: %w", err)
	}
	if rc.DataDir == "" {
		return issuing.Config{}, nil, errors.New("-data-dir is required")
	}
	if rc.AdminSocket != "" {
		if rc.AdminSocket, err = filepath.Abs(rc.AdminSocket); err != nil {
			return issuing.Config{}, nil, fmt.Errorf("-admin-socket: %w", err)
		}
		if len(rc.AdminSocket) > issuing.MaxSocketPath {
			return issuing.Config{}, nil, fmt.Errorf("-admin-socket: the path %s is longer than the %d bytes a unix socket allows", rc.AdminSocket, issuing.MaxSocketPath)
		}
	}
	if rc.MetricsAddr != "" {
		if err := checkHostPort(rc.MetricsAddr); err != nil {
			return issuing.Config{}, nil, fmt.Errorf("-metrics-addr %q: %w", rc.MetricsAddr, err)
		}
	}
	for _, d := range []struct {
		name string
		val  time.Duration
	}{
		{"ca-ttl", rc.CATTL},
		{"x509-svid-ttl", rc.X509SVIDTTL},
		{"jwt-svid-ttl", rc.JWTSVIDTTL},
		{"agent-svid-ttl", rc.AgentSVIDTTL},
		{"wit-svid-ttl", rc.WITSVIDTTL},
		{"federation-refresh", rc.FederationRefresh},
		{"entry-prune-interval", rc.EntryPrune},
		{"handshake-wait", rc.HandshakeWait},
	} {
		if d.val < 0 {
			return issuing.Config{}, nil, fmt.Errorf("-%s: %s is negative", d.name, d.val)
		}
	}
	cfg := issuing.Config{
		TrustDomain:  td,
		BindAddr:     rc.Bind,
		AdminSocket:  rc.AdminSocket,
		CATTL:        rc.CATTL,
		X509SVIDTTL:  rc.X509SVIDTTL,
		JWTSVIDTTL:   rc.JWTSVIDTTL,
		JWTSVIDJTI:   rc.JWTSVIDJTI,
		JWTIssuer:    rc.JWTIssuer,
		WITSVIDs:     rc.WITSVIDs,
		WITSVIDTTL:   rc.WITSVIDTTL,
		AgentSVIDTTL: rc.AgentSVIDTTL,
		Logger:       log,

		FederationBind:    rc.FederationBind,
		FederationProfile: issuing.Profile(rc.FederationProfile),
		FederationRefresh: rc.FederationRefresh,

		EntryPruneInterval: rc.EntryPrune,

		MaxHandshakes: rc.MaxHandshakes,
		HandshakeWait: rc.HandshakeWait,
	}
	for i, f := range rc.FederatesWith {
		r, err := relationship(f)
		if err != nil {
			return issuing.Config{}, nil, fmt.Errorf("federates_with[%d]: %w", i, err)
		}
		cfg.Federation = append(cfg.Federation, r)
	}
	return cfg, log, nil
}

// relationship converts one federates_with item but for its files, which
// assemble reads; the server checks the rest.
func relationship(f relationshipConfig) (issuing.Relationship, error) {
	if f.TrustDomain == "" {
		return issuing.Relationship{}, errors.New("trust_domain is required")
	}
	td, err := spiffeid.TrustDomainFromString(f.TrustDomain)
	if err != nil {
		return issuing.Relationship{}, fmt.Errorf("trust_domain: %w", err)
	}
	r := issuing.Relationship{
		TrustDomain: td,
		URL:         f.URL,
		Profile:     issuing.Profile(f.Profile),
	}
	if f.EndpointSPIFFEID != "" {
		if r.EndpointSPIFFEID, err = spiffeid.FromString(f.EndpointSPIFFEID); err != nil {
			return issuing.Relationship{}, fmt.Errorf("endpoint_spiffe_id: %w", err)
		}
	}
	return r, nil
}

// parseMaxHandshakes parses -max-handshakes: a number, 0 (the default)
// or more.
func parseMaxHandshakes(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, errors.New("want a number of handshakes, 0 (two per CPU) or more")
	}
	return n, nil
}

// checkHostPort checks a listen address: host:port, the port a number
// (0 picks a free one).
func checkHostPort(hp string) error {
	_, port, err := net.SplitHostPort(hp)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return errors.New("the port must be a number from 0 to 65535")
	}
	return nil
}

func newLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level: %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format: %q is not text or json", format)
}

// serve opens what the configuration names, starts the server, and the
// metrics endpoint when asked, and runs them until ctx is done. On SIGHUP
// it reads the configuration again with reread, for the k8s_psat clusters.
func serve(ctx context.Context, rc runConfig, cfg issuing.Config, log *slog.Logger, reread rereadFunc) error {
	var reg *prometheus.Registry
	if rc.MetricsAddr != "" {
		// Without metrics, no observer: the node API then does no
		// accounting at all.
		reg = metrics.NewRegistry()
		cfg.NodeObserver = newNodeMetrics(reg)
	}
	cfg, closeStore, err := assemble(ctx, rc, cfg, log)
	if err != nil {
		return err
	}
	defer closeStore()
	k8s, _ := cfg.NodeAttestors[k8spsat.Type].(*psatserver.Server)
	if k8s != nil {
		defer k8s.Close()
	}
	defer reloadOnHangup(ctx, k8s, reread, log)()
	if up, ok := cfg.Upstream.(*vault.Client); ok {
		// The token is kept alive between two CA rotations.
		defer up.Close()
		runCtx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { up.Run(runCtx) })
		defer wg.Wait()
		defer stop()
	}
	if rc.Nested != nil {
		up, closeUp, err := startNested(ctx, rc.Nested, cfg.TrustDomain, log)
		if err != nil {
			return err
		}
		defer closeUp()
		cfg.Upstream = up
	}
	s, err := issuing.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	if reg != nil {
		reg.MustRegister(newStatsCollector(s))
		h := metrics.Handler(reg, func() error { return s.Healthy(ctx) }, log)
		addr, err := metrics.Serve(ctx, rc.MetricsAddr, h, log)
		if err != nil {
			return err // metrics says "metrics: "
		}
		log.Info("metrics and health", "addr", addr.String())
	}
	// The operator reads why the server goes, as it goes: a signal
	// (SIGTERM from systemd or Kubernetes), or whoever cancelled ctx.
	stop := context.AfterFunc(ctx, func() { log.Info("shutting down", "cause", context.Cause(ctx).Error()) })
	defer stop()
	return s.Run(ctx)
}
