package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spiffekit/spiffekit/spiffeid"
)

// Defaults of the run command.
const (
	// DefaultSocket is the Workload API socket of run, and the socket the
	// api and healthcheck commands use when neither -socket nor
	// SPIFFE_ENDPOINT_SOCKET is given.
	DefaultSocket = "/run/spiffe-agent/api.sock"
	// maxConfigSize bounds the config file.
	maxConfigSize = 1 << 20
	// maxSocketPath is the longest path a unix socket can be bound to on
	// Linux (sun_path is 108 bytes, with the terminating NUL).
	maxSocketPath = 107
)

// fileConfig is the run command's configuration: the JSON config file, and
// the flags of the same names laid over it. Each key is the flag's name
// with underscores for dashes.
type fileConfig struct {
	TrustDomain       string                 `json:"trust_domain"`
	Servers           []string               `json:"servers"`
	TrustBundle       string                 `json:"trust_bundle"`
	InsecureBootstrap bool                   `json:"insecure_bootstrap"`
	JoinToken         string                 `json:"join_token"`
	NodeAttestor      nodeAttestorConfig     `json:"node_attestor"`
	WorkloadAttestor  workloadAttestorConfig `json:"workload_attestor"`
	Socket            string                 `json:"socket"`
	DataDir           string                 `json:"data_dir"`
	MetricsAddr       string                 `json:"metrics_addr"`
	LogLevel          string                 `json:"log_level"`
	LogFormat         string                 `json:"log_format"`
}

type nodeAttestorConfig struct {
	X509PoP *x509popConfig `json:"x509pop"`
}

type x509popConfig struct {
	Certificate string `json:"certificate"`
	PrivateKey  string `json:"private_key"`
}

type workloadAttestorConfig struct {
	Unix unixConfig `json:"unix"`
}

type unixConfig struct {
	ProcRoot       string `json:"proc_root"`
	SkipExecutable bool   `json:"skip_executable"`
	SkipHash       bool   `json:"skip_hash"`
}

func defaultConfig() fileConfig {
	return fileConfig{Socket: DefaultSocket, LogLevel: "info", LogFormat: "text"}
}

// parseConfig decodes a config file over cfg: keys present replace the
// values in cfg, keys absent leave them. Unknown keys are an error, so that
// a misspelt key does not silently leave a default in place.
func parseConfig(data []byte, cfg *fileConfig) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return fmt.Errorf("cli: the config file: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("cli: the config file: unexpected data after the JSON object")
	}
	return nil
}

func loadConfig(path string, cfg *fileConfig) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cli: the config file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return fmt.Errorf("cli: the config file: %w", err)
	}
	if len(data) > maxConfigSize {
		return fmt.Errorf("cli: the config file %s is larger than %d bytes", path, maxConfigSize)
	}
	if err := parseConfig(data, cfg); err != nil {
		return fmt.Errorf("%w (%s)", err, path)
	}
	return nil
}

// listFlag is a repeatable flag whose values may also be comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// runFlags declares the flags of the run command on fs. The values land in
// fl and cfgPath; apply lays the ones given over a config.
func runFlags(fs *flag.FlagSet, fl *fileConfig, cfgPath *string) {
	fs.StringVar(cfgPath, "config", "", "JSON config `file`; flags given on the command line override its keys")
	fs.StringVar(&fl.TrustDomain, "trust-domain", "", "the agent's trust `domain`, e.g. example.org (required)")
	fs.Var((*listFlag)(&fl.Servers), "server", "issuing server `host:port`; repeat it or separate with commas to fail over (required)")
	fs.StringVar(&fl.TrustBundle, "trust-bundle", "", "`file` of PEM CA certificates, or a SPIFFE bundle JSON document, that verify the servers")
	fs.BoolVar(&fl.InsecureBootstrap, "insecure-bootstrap", false, "attest without verifying the server (trying things out only)")
	fs.StringVar(&fl.JoinToken, "join-token", "", "join `token` for the first attestation")
	fl.NodeAttestor.X509PoP = &x509popConfig{}
	fs.StringVar(&fl.NodeAttestor.X509PoP.Certificate, "x509pop-cert", "", "x509pop node attestation: PEM certificate chain `file`")
	fs.StringVar(&fl.NodeAttestor.X509PoP.PrivateKey, "x509pop-key", "", "x509pop node attestation: PKCS#8 PEM private key `file` (mode 0600)")
	fs.StringVar(&fl.Socket, "socket", DefaultSocket, "`path` of the Workload API socket")
	fs.StringVar(&fl.DataDir, "data-dir", "", "`directory` keeping the agent SVID, key and bundle across restarts (created 0700; empty: keep nothing)")
	fs.StringVar(&fl.MetricsAddr, "metrics-addr", "", "serve /metrics and /healthz on `host:port`, e.g. 127.0.0.1:9989 (empty: disabled)")
	fs.StringVar(&fl.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&fl.LogFormat, "log-format", "text", "text or json")
}

// apply lays the flags given on the command line over cfg.
func apply(fs *flag.FlagSet, fl, cfg *fileConfig) {
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "trust-domain":
			cfg.TrustDomain = fl.TrustDomain
		case "server":
			cfg.Servers = fl.Servers
		case "trust-bundle":
			cfg.TrustBundle = fl.TrustBundle
		case "insecure-bootstrap":
			cfg.InsecureBootstrap = fl.InsecureBootstrap
		case "join-token":
			cfg.JoinToken = fl.JoinToken
		case "x509pop-cert", "x509pop-key":
			if cfg.NodeAttestor.X509PoP == nil {
				cfg.NodeAttestor.X509PoP = &x509popConfig{}
			}
			if f.Name == "x509pop-cert" {
				cfg.NodeAttestor.X509PoP.Certificate = fl.NodeAttestor.X509PoP.Certificate
			} else {
				cfg.NodeAttestor.X509PoP.PrivateKey = fl.NodeAttestor.X509PoP.PrivateKey
			}
		case "socket":
			cfg.Socket = fl.Socket
		case "data-dir":
			cfg.DataDir = fl.DataDir
		case "metrics-addr":
			cfg.MetricsAddr = fl.MetricsAddr
		case "log-level":
			cfg.LogLevel = fl.LogLevel
		case "log-format":
			cfg.LogFormat = fl.LogFormat
		}
	})
}

// settings is a checked configuration, ready to build the agent from.
type settings struct {
	cfg         fileConfig
	trustDomain spiffeid.TrustDomain
	socket      string // absolute
	dataDir     string // absolute, or empty
	logLevel    slog.Level
}

// check validates cfg and resolves what run needs from it.
func check(cfg fileConfig) (*settings, error) {
	s := &settings{cfg: cfg}
	var err error
	if cfg.TrustDomain == "" {
		return nil, errors.New("cli: a trust domain is required (-trust-domain)")
	}
	if s.trustDomain, err = spiffeid.TrustDomainFromString(cfg.TrustDomain); err != nil {
		return nil, fmt.Errorf("cli: -trust-domain: %w", err)
	}
	if len(cfg.Servers) == 0 {
		return nil, errors.New("cli: at least one server is required (-server host:port)")
	}
	for _, srv := range cfg.Servers {
		if err := checkHostPort(srv, false); err != nil {
			return nil, fmt.Errorf("cli: -server %q: %w", srv, err)
		}
	}
	if cfg.TrustBundle != "" && cfg.InsecureBootstrap {
		return nil, errors.New("cli: give -trust-bundle or -insecure-bootstrap, not both")
	}
	if x := cfg.NodeAttestor.X509PoP; x != nil && (x.Certificate != "" || x.PrivateKey != "") {
		if x.Certificate == "" || x.PrivateKey == "" {
			return nil, errors.New("cli: x509pop needs both a certificate and a private key")
		}
		if cfg.JoinToken != "" {
			return nil, errors.New("cli: give one node attestor: a join token or x509pop, not both")
		}
	}
	if cfg.Socket == "" {
		return nil, errors.New("cli: a socket path is required (-socket)")
	}
	if s.socket, err = filepath.Abs(cfg.Socket); err != nil {
		return nil, fmt.Errorf("cli: -socket: %w", err)
	}
	if len(s.socket) > maxSocketPath {
		return nil, fmt.Errorf("cli: -socket: the path %s is longer than the %d bytes a unix socket allows", s.socket, maxSocketPath)
	}
	if cfg.DataDir != "" {
		if s.dataDir, err = filepath.Abs(cfg.DataDir); err != nil {
			return nil, fmt.Errorf("cli: -data-dir: %w", err)
		}
	}
	if cfg.MetricsAddr != "" {
		if err := checkHostPort(cfg.MetricsAddr, true); err != nil {
			return nil, fmt.Errorf("cli: -metrics-addr %q: %w", cfg.MetricsAddr, err)
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
		return nil, fmt.Errorf("cli: -log-level %q: want debug, info, warn or error", cfg.LogLevel)
	}
	switch cfg.LogFormat {
	case "text", "json", "":
	default:
		return nil, fmt.Errorf("cli: -log-format %q: want text or json", cfg.LogFormat)
	}
	return s, nil
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
