package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/examples/internal/metrics"
	"github.com/spiffekit/spiffekit/internal/atomicfile"
	issuing "github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Main runs spiffe-server with the command line args (after the program
// name): "run" starts the server until ctx is done; every other command
// goes to [Admin]. It returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "run" {
		return Run(ctx, args[1:], stderr)
	}
	return Admin(ctx, args, stdout, stderr)
}

// FileConfig is the JSON configuration file of "spiffe-server run"
// (-config FILE). Every key is optional; a flag given on the command line
// wins over the file. Durations are Go duration strings ("24h", "5m").
type FileConfig struct {
	TrustDomain     string `json:"trust_domain"`
	DataDir         string `json:"data_dir"`
	Bind            string `json:"bind"`
	AdminSocket     string `json:"admin_socket"`
	Datastore       string `json:"datastore"`
	X509PoPCABundle string `json:"x509pop_ca_bundle"`
	CATTL           string `json:"ca_ttl"`
	X509SVIDTTL     string `json:"x509_svid_ttl"`
	JWTSVIDTTL      string `json:"jwt_svid_ttl"`
	AgentSVIDTTL    string `json:"agent_svid_ttl"`
	MetricsAddr     string `json:"metrics_addr"`
	LogLevel        string `json:"log_level"`
	LogFormat       string `json:"log_format"`

	// FederationBind, FederationProfile, FederationCert and FederationKey
	// configure the trust domain's bundle endpoint (flags -federation-bind,
	// -federation-profile, -federation-cert, -federation-key).
	FederationBind    string `json:"federation_bind"`
	FederationProfile string `json:"federation_profile"`
	FederationCert    string `json:"federation_cert"`
	FederationKey     string `json:"federation_key"`
	// FederationRefresh is the longest time between two polls of a bundle
	// endpoint (flag -federation-refresh, default 5m).
	FederationRefresh string `json:"federation_refresh"`

	// FederatesWith lists the federation relationships: the bundle
	// endpoints of foreign trust domains that the server polls. Only the
	// file sets them.
	FederatesWith []FederatesWith `json:"federates_with"`
}

// FederatesWith is one federation relationship of the configuration file
// (see server.Relationship). Every field but BundleFile and WebPKIRoots is
// required, as the profile asks; nothing is inferred from the URL.
type FederatesWith struct {
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

// runFlags declares the flags of run, bound to fc, and returns the config
// file flag.
func runFlags(fs *flag.FlagSet, fc *FileConfig) *string {
	config := fs.String("config", "", "JSON configuration file (flags win over it)")
	fs.StringVar(&fc.TrustDomain, "trust-domain", "", "trust domain to issue identities in (required)")
	fs.StringVar(&fc.DataDir, "data-dir", "", "directory for the CA keys, journal and SQLite database (required)")
	fs.StringVar(&fc.Bind, "bind", issuing.DefaultBindAddr, "address of the node API")
	fs.StringVar(&fc.AdminSocket, "admin-socket", DefaultAdminSocket, "path of the admin socket")
	fs.StringVar(&fc.Datastore, "datastore", "", "PostgreSQL connection string (postgres://...); default SQLite in -data-dir")
	fs.StringVar(&fc.X509PoPCABundle, "x509pop-ca-bundle", "", "PEM CAs that x509pop node certificates chain to (enables x509pop)")
	fs.StringVar(&fc.CATTL, "ca-ttl", "", "lifetime of each X.509 CA (default 24h)")
	fs.StringVar(&fc.X509SVIDTTL, "x509-svid-ttl", "", "default lifetime of X509-SVIDs (default 1h)")
	fs.StringVar(&fc.JWTSVIDTTL, "jwt-svid-ttl", "", "default lifetime of JWT-SVIDs (default 5m)")
	fs.StringVar(&fc.AgentSVIDTTL, "agent-svid-ttl", "", "lifetime of agent SVIDs (default 1h)")
	fs.StringVar(&fc.MetricsAddr, "metrics-addr", "", "address of /metrics and /healthz (empty: off)")
	fs.StringVar(&fc.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&fc.LogFormat, "log-format", "text", "text or json")
	fs.StringVar(&fc.FederationBind, "federation-bind", "", "address of the bundle endpoint (empty: off)")
	fs.StringVar(&fc.FederationProfile, "federation-profile", "", "bundle endpoint profile: https_spiffe (default) or https_web")
	fs.StringVar(&fc.FederationCert, "federation-cert", "", "PEM certificate chain of an https_web bundle endpoint")
	fs.StringVar(&fc.FederationKey, "federation-key", "", "PEM private key of an https_web bundle endpoint")
	fs.StringVar(&fc.FederationRefresh, "federation-refresh", "", "longest time between two polls of a bundle endpoint (default 5m)")
	return config
}

// Run parses the flags of "spiffe-server run", starts the server and runs
// it until ctx is done. It returns ExitOK after a clean shutdown,
// ExitFailure when the server cannot start or fails, ExitUsage for bad
// flags.
func Run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("spiffe-server run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var flags FileConfig
	configPath := runFlags(fs, &flags)
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "spiffe-server run: unexpected argument %q\n", fs.Arg(0))
		return ExitUsage
	}
	fc := flags
	if *configPath != "" {
		file, err := loadFileConfig(*configPath)
		if err != nil {
			fmt.Fprintln(stderr, "Error:", err)
			return ExitFailure
		}
		fc = mergeConfig(fs, file, flags)
	}
	cfg, log, err := buildConfig(fc, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "Error:", err)
		return ExitUsage
	}
	if err := serve(ctx, cfg, fc.MetricsAddr, log); err != nil {
		log.Error("server stopped", "err", err)
		fmt.Fprintln(stderr, "Error:", err)
		return ExitFailure
	}
	return ExitOK
}

func loadFileConfig(path string) (FileConfig, error) {
	b, err := atomicfile.Read(path, 1<<20)
	if err != nil {
		return FileConfig{}, fmt.Errorf("reading the configuration: %w", err)
	}
	var fc FileConfig
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return FileConfig{}, fmt.Errorf("configuration %s: %w", path, err)
	}
	return fc, nil
}

// mergeConfig starts from the file and overrides every key whose flag was
// given on the command line; keys the file leaves empty take the flag's
// default.
func mergeConfig(fs *flag.FlagSet, file, flags FileConfig) FileConfig {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	pick := func(name string, fromFile, fromFlag string) string {
		if set[name] || fromFile == "" {
			return fromFlag
		}
		return fromFile
	}
	return FileConfig{
		TrustDomain:     pick("trust-domain", file.TrustDomain, flags.TrustDomain),
		DataDir:         pick("data-dir", file.DataDir, flags.DataDir),
		Bind:            pick("bind", file.Bind, flags.Bind),
		AdminSocket:     pick("admin-socket", file.AdminSocket, flags.AdminSocket),
		Datastore:       pick("datastore", file.Datastore, flags.Datastore),
		X509PoPCABundle: pick("x509pop-ca-bundle", file.X509PoPCABundle, flags.X509PoPCABundle),
		CATTL:           pick("ca-ttl", file.CATTL, flags.CATTL),
		X509SVIDTTL:     pick("x509-svid-ttl", file.X509SVIDTTL, flags.X509SVIDTTL),
		JWTSVIDTTL:      pick("jwt-svid-ttl", file.JWTSVIDTTL, flags.JWTSVIDTTL),
		AgentSVIDTTL:    pick("agent-svid-ttl", file.AgentSVIDTTL, flags.AgentSVIDTTL),
		MetricsAddr:     pick("metrics-addr", file.MetricsAddr, flags.MetricsAddr),
		LogLevel:        pick("log-level", file.LogLevel, flags.LogLevel),
		LogFormat:       pick("log-format", file.LogFormat, flags.LogFormat),

		FederationBind:    pick("federation-bind", file.FederationBind, flags.FederationBind),
		FederationProfile: pick("federation-profile", file.FederationProfile, flags.FederationProfile),
		FederationCert:    pick("federation-cert", file.FederationCert, flags.FederationCert),
		FederationKey:     pick("federation-key", file.FederationKey, flags.FederationKey),
		FederationRefresh: pick("federation-refresh", file.FederationRefresh, flags.FederationRefresh),
		FederatesWith:     file.FederatesWith,
	}
}

// buildConfig checks the merged configuration and builds the server's.
func buildConfig(fc FileConfig, stderr io.Writer) (issuing.Config, *slog.Logger, error) {
	log, err := newLogger(fc.LogLevel, fc.LogFormat, stderr)
	if err != nil {
		return issuing.Config{}, nil, err
	}
	if fc.TrustDomain == "" {
		return issuing.Config{}, nil, errors.New("-trust-domain is required")
	}
	td, err := spiffeid.TrustDomainFromString(fc.TrustDomain)
	if err != nil {
		return issuing.Config{}, nil, fmt.Errorf("-trust-domain: %w", err)
	}
	if fc.DataDir == "" {
		return issuing.Config{}, nil, errors.New("-data-dir is required")
	}
	cfg := issuing.Config{
		TrustDomain:     td,
		DataDir:         fc.DataDir,
		Datastore:       fc.Datastore,
		BindAddr:        fc.Bind,
		AdminSocket:     fc.AdminSocket,
		X509PoPCABundle: fc.X509PoPCABundle,
		Logger:          log,

		FederationBind:     fc.FederationBind,
		FederationProfile:  fc.FederationProfile,
		FederationCertFile: fc.FederationCert,
		FederationKeyFile:  fc.FederationKey,
	}
	for i, f := range fc.FederatesWith {
		r, err := relationship(f)
		if err != nil {
			return issuing.Config{}, nil, fmt.Errorf("federates_with[%d]: %w", i, err)
		}
		cfg.Federation = append(cfg.Federation, r)
	}
	for _, d := range []struct {
		name string
		val  string
		dst  *time.Duration
	}{
		{"ca-ttl", fc.CATTL, &cfg.CATTL},
		{"x509-svid-ttl", fc.X509SVIDTTL, &cfg.X509SVIDTTL},
		{"jwt-svid-ttl", fc.JWTSVIDTTL, &cfg.JWTSVIDTTL},
		{"agent-svid-ttl", fc.AgentSVIDTTL, &cfg.AgentSVIDTTL},
		{"federation-refresh", fc.FederationRefresh, &cfg.FederationRefresh},
	} {
		if d.val == "" {
			continue
		}
		v, err := time.ParseDuration(d.val)
		if err != nil || v <= 0 {
			return issuing.Config{}, nil, fmt.Errorf("-%s: %q is not a positive duration", d.name, d.val)
		}
		*d.dst = v
	}
	return cfg, log, nil
}

// relationship converts one federates_with item; the server checks the
// rest.
func relationship(f FederatesWith) (issuing.Relationship, error) {
	if f.TrustDomain == "" {
		return issuing.Relationship{}, errors.New("trust_domain is required")
	}
	td, err := spiffeid.TrustDomainFromString(f.TrustDomain)
	if err != nil {
		return issuing.Relationship{}, fmt.Errorf("trust_domain: %w", err)
	}
	r := issuing.Relationship{
		TrustDomain:     td,
		URL:             f.URL,
		Profile:         f.Profile,
		BootstrapBundle: f.BundleFile,
		WebPKIRoots:     f.WebPKIRoots,
	}
	if f.EndpointSPIFFEID != "" {
		if r.EndpointSPIFFEID, err = spiffeid.FromString(f.EndpointSPIFFEID); err != nil {
			return issuing.Relationship{}, fmt.Errorf("endpoint_spiffe_id: %w", err)
		}
	}
	return r, nil
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

// serve starts the server, and the metrics endpoint when asked, and runs
// them until ctx is done.
func serve(ctx context.Context, cfg issuing.Config, metricsAddr string, log *slog.Logger) error {
	s, err := issuing.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	if metricsAddr != "" {
		reg := serverMetrics(s)
		addr, err := metrics.Serve(ctx, metricsAddr, metrics.Handler(reg, func() error { return s.Healthy(ctx) }), log)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		log.Info("metrics and health", "addr", addr.String())
	}
	return s.Run(ctx)
}

// serverMetrics registers the server's gauges.
func serverMetrics(s *issuing.Server) *metrics.Registry {
	reg := metrics.New()
	reg.GaugeFunc("spiffe_server_entries", "Registration entries in the server's index.",
		func() float64 { return float64(s.Node().Index().Len()) })
	reg.GaugeFunc("spiffe_server_bundle_x509_authorities", "X.509 authorities in the trust domain's bundle.",
		func() float64 { return float64(len(s.Bundle().X509Authorities())) })
	reg.GaugeFunc("spiffe_server_bundle_sequence", "Sequence number of the trust domain's bundle.",
		func() float64 { n, _ := s.Bundle().SequenceNumber(); return float64(n) })
	reg.GaugeFunc("spiffe_server_ca_next_rotation_timestamp_seconds", "When the CA's next rotation step falls due.",
		func() float64 { return float64(s.CA().NextRotation().Unix()) })
	reg.GaugeFunc("spiffe_server_registry_seq", "Sequence number of the last registry change applied.",
		func() float64 { return float64(s.Node().Index().Seq()) })
	return reg
}
