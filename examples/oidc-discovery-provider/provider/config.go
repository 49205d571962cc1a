package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl"

	"github.com/spiffekit/spiffekit/spiffeid"
)

// Defaults of the configuration file, as SPIRE's provider has them.
const (
	DefaultLogLevel         = "info"
	DefaultPollInterval     = 10 * time.Second
	DefaultServingAddr      = ":443"
	DefaultFileSyncInterval = time.Minute
	DefaultHealthPort       = 8008
	DefaultReadyPath        = "/ready"
	DefaultLivePath         = "/live"

	// MaxConfigBytes bounds the configuration file.
	MaxConfigBytes = 1 << 20

	// maxDomains bounds the domains allow-list.
	maxDomains = 1000
)

// Config is the provider's configuration file, with SPIRE's key names:
// JSON, or HCL as SPIRE's files are written (sections as blocks:
// workload_api { ... }). It is decoded strictly: a key the provider does
// not know is an error, and the keys of SPIRE it does not support are
// refused with the reason (see refusedKeys).
type Config struct {
	// Domains are the host names the provider answers for (the Host of a
	// request, without its port); a request for another gets 400.
	// Required.
	Domains []string `json:"domains"`

	// JWTIssuer is the "issuer" of the discovery document; empty means the
	// URL of the request's host (https://HOST). Set it apart from the
	// serving domain to match the iss claim the server puts in JWT-SVIDs.
	JWTIssuer string `json:"jwt_issuer"`

	// JWKSURI is the "jwks_uri" of the discovery document; empty means
	// SCHEME://HOST/keys of the request.
	JWKSURI string `json:"jwks_uri"`

	// AllowInsecureScheme, with insecure_addr or listen_socket_path, makes
	// the URLs of the discovery document http instead of https.
	AllowInsecureScheme bool `json:"allow_insecure_scheme"`

	// SetKeyUse puts "use": "sig" in every key of the JWKS.
	SetKeyUse bool `json:"set_key_use"`

	// InsecureAddr serves plain HTTP on this address, which must be on the
	// loopback interface (behind a TLS-terminating proxy, or for tests).
	InsecureAddr string `json:"insecure_addr"`

	// ListenSocketPath serves plain HTTP on this unix socket, for a proxy
	// on the same host.
	ListenSocketPath string `json:"listen_socket_path"`

	// ServingCertFile serves HTTPS with a certificate and key read from
	// files, read again when they change.
	ServingCertFile *ServingCertFile `json:"serving_cert_file"`

	// WorkloadAPI takes the keys from an agent's Workload API.
	WorkloadAPI *WorkloadAPIConfig `json:"workload_api"`

	// ServerAPI takes the keys from the server's admin socket.
	ServerAPI *ServerAPIConfig `json:"server_api"`

	// HealthChecks serves liveness and readiness on localhost.
	HealthChecks *HealthChecks `json:"health_checks"`

	// LogLevel is debug, info (the default), warn or error; LogFormat
	// text (the default) or json, in any case; LogPath a file the logs are
	// appended to instead of stderr. LogRequests logs every request at
	// debug level.
	LogLevel    string `json:"log_level"`
	LogFormat   string `json:"log_format"`
	LogPath     string `json:"log_path"`
	LogRequests bool   `json:"log_requests"`
}

// ServingCertFile is the serving_cert_file section.
type ServingCertFile struct {
	// CertFilePath is a PEM file of the certificate chain, leaf first;
	// KeyFilePath the PEM file of its private key. Both required.
	CertFilePath string `json:"cert_file_path"`
	KeyFilePath  string `json:"key_file_path"`
	// Addr is the HTTPS address; empty means ":443".
	Addr string `json:"addr"`
	// FileSyncInterval is how often the files are checked for a change
	// (a Go duration string); empty means one minute.
	FileSyncInterval Duration `json:"file_sync_interval"`
}

// WorkloadAPIConfig is the workload_api section.
type WorkloadAPIConfig struct {
	// SocketPath is the agent's Workload API socket: a path, or a
	// workloadapi address (unix:///path, or npipe:NAME on Windows).
	// Required.
	SocketPath string `json:"socket_path"`
	// TrustDomain is the trust domain whose JWT keys are published.
	// Required.
	TrustDomain string `json:"trust_domain"`
	// PollInterval is accepted for SPIRE's files; the Workload API pushes
	// every change of the bundle, so nothing is polled.
	PollInterval Duration `json:"poll_interval"`
}

// ServerAPIConfig is the server_api section.
type ServerAPIConfig struct {
	// Address is the server's admin socket: a path or unix:///path.
	// Required.
	Address string `json:"address"`
	// PollInterval is how often the bundle is read; empty means 10s.
	PollInterval Duration `json:"poll_interval"`
}

// HealthChecks is the health_checks section: GET ReadyPath answers 200
// once the keys are known, 500 before; GET LivePath answers 200 while the
// provider runs. It listens on localhost:BindPort.
type HealthChecks struct {
	BindPort  int    `json:"bind_port"`
	ReadyPath string `json:"ready_path"`
	LivePath  string `json:"live_path"`
}

// Duration is a Go duration string in the file ("10s", "1m30s").
type Duration struct{ time.Duration }

// UnmarshalJSON reads a duration string; a number is refused, as its unit
// would be a guess.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"10s\", not %s", truncate(string(b)))
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q", truncate(s))
	}
	if v <= 0 {
		return fmt.Errorf("duration %q must be positive", s)
	}
	d.Duration = v
	return nil
}

// refusedKeys are SPIRE's keys this provider does not support, with why.
var refusedKeys = map[string]string{
	"acme": "ACME needs the provider to reach a certificate authority over the network and to answer its " +
		"challenges; obtain the certificate with an ACME client and give it with serving_cert_file",
	"registration_api": "the Registration API is gone from SPIRE too; use server_api (the server's admin socket)",
	"experimental":     "no experimental settings are supported",
	"domain":           "the single domain key was replaced by domains, a list",
}

// LoadConfig reads and checks the configuration file at path.
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("configuration %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes and checks a configuration file, and fills in the
// defaults. A file whose first character (after white space) is '{' is
// JSON; any other is HCL.
func ParseConfig(data []byte) (*Config, error) {
	if len(data) > MaxConfigBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxConfigBytes)
	}
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		j, err := hclToJSON(data)
		if err != nil {
			return nil, err
		}
		data = j
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	for _, k := range sortedKeys(keys) {
		if why, ok := refusedKeys[k]; ok {
			return nil, fmt.Errorf("%s is not supported: %s", k, why)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("invalid: %w", err)
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// sections are the keys of SPIRE's file that are blocks in HCL.
var sections = map[string]bool{
	"serving_cert_file": true, "workload_api": true, "server_api": true, "health_checks": true,
	"acme": true, "registration_api": true, "experimental": true,
}

// hclToJSON decodes an HCL file into the JSON form of the same keys: a
// section written as a block (a list of one object once decoded) becomes
// that object; a section given twice is an error.
func hclToJSON(data []byte) (out []byte, err error) {
	defer func() {
		// The HCL v1 parser is not hardened against every input: a panic
		// in it is an invalid file, not a crash.
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("not valid HCL: the parser failed on it (%v)", truncate(fmt.Sprint(r)))
		}
	}()
	var m map[string]any
	if err := hcl.Decode(&m, string(data)); err != nil {
		return nil, fmt.Errorf("not valid JSON or HCL: %w", err)
	}
	for k, v := range m {
		list, ok := v.([]map[string]any)
		if !ok || !sections[k] {
			continue
		}
		if len(list) != 1 {
			return nil, fmt.Errorf("the %s section is given %d times", k, len(list))
		}
		m[k] = list[0]
	}
	out, err = json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("cannot convert HCL: %w", err)
	}
	return out, nil
}

func sortedKeys(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// check checks cfg and sets its defaults.
func (cfg *Config) check() error {
	if err := cfg.checkDomains(); err != nil {
		return err
	}
	if err := cfg.checkServing(); err != nil {
		return err
	}
	if err := cfg.checkSource(); err != nil {
		return err
	}
	insecure := cfg.AllowInsecureScheme && cfg.ServingCertFile == nil
	if cfg.AllowInsecureScheme && cfg.ServingCertFile != nil {
		return errors.New("allow_insecure_scheme needs insecure_addr or listen_socket_path: with serving_cert_file the provider serves https")
	}
	if cfg.JWTIssuer != "" {
		if err := checkURL("jwt_issuer", cfg.JWTIssuer, insecure); err != nil {
			return err
		}
	}
	if cfg.JWKSURI != "" {
		if err := checkURL("jwks_uri", cfg.JWKSURI, insecure); err != nil {
			return err
		}
	}
	switch strings.ToLower(cfg.LogLevel) {
	case "":
		cfg.LogLevel = DefaultLogLevel
	case "debug", "info", "warn", "error":
		cfg.LogLevel = strings.ToLower(cfg.LogLevel)
	default:
		return fmt.Errorf("log_level %q is not debug, info, warn or error", truncate(cfg.LogLevel))
	}
	switch strings.ToLower(cfg.LogFormat) {
	case "", "text":
		cfg.LogFormat = "text"
	case "json":
		cfg.LogFormat = "json"
	default:
		return fmt.Errorf("log_format %q is not text or json", truncate(cfg.LogFormat))
	}
	if h := cfg.HealthChecks; h != nil {
		if h.BindPort == 0 {
			h.BindPort = DefaultHealthPort
		}
		if h.BindPort < 0 || h.BindPort > 65535 {
			return fmt.Errorf("health_checks.bind_port %d is not a port", h.BindPort)
		}
		if h.ReadyPath == "" {
			h.ReadyPath = DefaultReadyPath
		}
		if h.LivePath == "" {
			h.LivePath = DefaultLivePath
		}
		if !strings.HasPrefix(h.ReadyPath, "/") || !strings.HasPrefix(h.LivePath, "/") || h.ReadyPath == h.LivePath {
			return errors.New("health_checks: ready_path and live_path must be two different paths starting with /")
		}
	}
	return nil
}

func (cfg *Config) checkDomains() error {
	if len(cfg.Domains) == 0 {
		return errors.New("domains is required: the host names the provider is served under")
	}
	if len(cfg.Domains) > maxDomains {
		return fmt.Errorf("%d domains, more than %d", len(cfg.Domains), maxDomains)
	}
	for i, d := range cfg.Domains {
		d = strings.ToLower(d)
		if !validHost(d) {
			return fmt.Errorf("domains: %q is not a host name or IP address", truncate(d))
		}
		cfg.Domains[i] = d
	}
	return nil
}

func (cfg *Config) checkServing() error {
	n := 0
	for _, set := range []bool{cfg.ServingCertFile != nil, cfg.InsecureAddr != "", cfg.ListenSocketPath != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return errors.New("exactly one of serving_cert_file, insecure_addr and listen_socket_path is required")
	}
	switch {
	case cfg.ServingCertFile != nil:
		s := cfg.ServingCertFile
		if s.CertFilePath == "" || s.KeyFilePath == "" {
			return errors.New("serving_cert_file: cert_file_path and key_file_path are required")
		}
		if s.Addr == "" {
			s.Addr = DefaultServingAddr
		}
		if _, _, err := net.SplitHostPort(s.Addr); err != nil {
			return fmt.Errorf("serving_cert_file.addr: %w", err)
		}
		if s.FileSyncInterval.Duration == 0 {
			s.FileSyncInterval.Duration = DefaultFileSyncInterval
		}
	case cfg.InsecureAddr != "":
		host, _, err := net.SplitHostPort(cfg.InsecureAddr)
		if err != nil {
			return fmt.Errorf("insecure_addr: %w", err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("insecure_addr %q must be on the loopback interface (127.0.0.1, [::1] or localhost): "+
				"plain HTTP is for a proxy on the same host; serve other hosts with serving_cert_file", truncate(cfg.InsecureAddr))
		}
	default:
		if !filepath.IsAbs(cfg.ListenSocketPath) {
			return fmt.Errorf("listen_socket_path %q must be an absolute path", truncate(cfg.ListenSocketPath))
		}
	}
	return nil
}

func (cfg *Config) checkSource() error {
	switch {
	case cfg.WorkloadAPI == nil && cfg.ServerAPI == nil:
		return errors.New("one of workload_api and server_api is required: where the JWT keys come from")
	case cfg.WorkloadAPI != nil && cfg.ServerAPI != nil:
		return errors.New("workload_api and server_api are mutually exclusive")
	case cfg.WorkloadAPI != nil:
		w := cfg.WorkloadAPI
		if w.SocketPath == "" {
			return errors.New("workload_api.socket_path is required")
		}
		if w.TrustDomain == "" {
			return errors.New("workload_api.trust_domain is required")
		}
		if _, err := spiffeid.TrustDomainFromString(w.TrustDomain); err != nil {
			return fmt.Errorf("workload_api.trust_domain: %w", err)
		}
		if _, err := workloadAddr(w.SocketPath); err != nil {
			return fmt.Errorf("workload_api.socket_path: %w", err)
		}
	default:
		s := cfg.ServerAPI
		if s.Address == "" {
			return errors.New("server_api.address is required")
		}
		if _, err := adminPath(s.Address); err != nil {
			return fmt.Errorf("server_api.address: %w", err)
		}
		if s.PollInterval.Duration == 0 {
			s.PollInterval.Duration = DefaultPollInterval
		}
	}
	return nil
}

// workloadAddr turns socket_path into a Workload API address: a path
// becomes unix://PATH; an address with a scheme is kept.
func workloadAddr(p string) (string, error) {
	if strings.Contains(p, ":") {
		return p, nil // a scheme; workloadapi checks it when dialing
	}
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("%q is neither an absolute path nor an address with a scheme", truncate(p))
	}
	return "unix://" + p, nil
}

// adminPath turns server_api.address (a path or unix:///path) into the
// admin socket's path.
func adminPath(addr string) (string, error) {
	p := addr
	if strings.Contains(addr, ":") {
		u, err := url.Parse(addr)
		if err != nil || u.Scheme != "unix" || u.Host != "" || u.Opaque != "" || u.RawQuery != "" || u.Fragment != "" {
			return "", fmt.Errorf("%q is neither an absolute path nor a unix:///path address", truncate(addr))
		}
		p = u.Path
	}
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("%q is not an absolute path", truncate(addr))
	}
	return p, nil
}

// checkURL checks an issuer or JWKS URL: absolute, https (or http when
// plain HTTP is allowed), with a host and no query, fragment or user info.
func checkURL(key, s string, allowHTTP bool) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("%s: not a URL: %w", key, err)
	case u.Scheme != "https" && !(allowHTTP && u.Scheme == "http"):
		if allowHTTP {
			return fmt.Errorf("%s %q is not an http or https URL", key, truncate(s))
		}
		return fmt.Errorf("%s %q is not an https URL (http needs allow_insecure_scheme and plain HTTP serving)", key, truncate(s))
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#"):
		return fmt.Errorf("%s %q must be a URL with a host and no user info, query or fragment", key, truncate(s))
	}
	return nil
}

// validHost reports whether h is an IP address or a DNS name (labels of
// letters, digits and hyphens, not starting or ending with a hyphen).
func validHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const limit = 80
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "... (" + strconv.Itoa(len(s)) + " bytes)"
}
