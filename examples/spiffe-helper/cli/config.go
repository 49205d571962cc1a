package cli

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"
	"github.com/hashicorp/hcl/hcl/token"
	"golang.org/x/sys/unix"

	"github.com/spiffekit/spiffekit/internal/atomicfile"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// MaxConfigSize bounds a configuration file, in bytes.
const MaxConfigSize = 1 << 20

// Defaults of the configuration file, as spiffe-helper has them.
const (
	DefaultAgentAddress      = "/tmp/spire-agent/public/api.sock"
	DefaultCertFileMode      = 0o644
	DefaultKeyFileMode       = 0o600
	DefaultJWTBundleFileMode = 0o600
	DefaultJWTSVIDFileMode   = 0o600
	DefaultHealthPort        = 8081
	DefaultLivenessPath      = "/live"
	DefaultReadinessPath     = "/ready"
)

// Config is spiffe-helper's configuration file, key for key. Parse fills it
// and checks it; the zero value of a key is its default, which Parse puts
// in place.
type Config struct {
	// AgentAddress is the Workload API socket: a path, or a "unix:" or
	// "tcp:" URI. Empty: $SPIFFE_ENDPOINT_SOCKET, else the deprecated
	// $SPIRE_AGENT_ADDRESS, else DefaultAgentAddress.
	AgentAddress string `hcl:"agent_address" json:"agent_address,omitempty"`
	// Cmd is the program started once every configured file has been
	// written; CmdArgs its
	// arguments, split at spaces except inside double quotes.
	Cmd     string `hcl:"cmd" json:"cmd,omitempty"`
	CmdArgs string `hcl:"cmd_args" json:"cmd_args,omitempty"`
	// PIDFileName names a file holding the pid of a process to signal
	// after each renewal; it is read again each time.
	PIDFileName string `hcl:"pid_file_name" json:"pid_file_name,omitempty"`
	// CertDir is the directory the files are written in (it must exist);
	// empty: the working directory.
	CertDir string `hcl:"cert_dir" json:"cert_dir,omitempty"`
	// The modes of the files written (0 means the default).
	CertFileMode      int `hcl:"cert_file_mode" json:"cert_file_mode,omitempty"`
	KeyFileMode       int `hcl:"key_file_mode" json:"key_file_mode,omitempty"`
	JWTBundleFileMode int `hcl:"jwt_bundle_file_mode" json:"jwt_bundle_file_mode,omitempty"`
	JWTSVIDFileMode   int `hcl:"jwt_svid_file_mode" json:"jwt_svid_file_mode,omitempty"`
	// IncludeFederatedDomains adds the other trust domains' X.509
	// authorities to the bundle file.
	IncludeFederatedDomains bool `hcl:"include_federated_domains" json:"include_federated_domains,omitempty"`
	// AddIntermediatesToBundle writes the SVID's intermediates in the
	// bundle file instead of after the leaf in the SVID file.
	AddIntermediatesToBundle bool `hcl:"add_intermediates_to_bundle" json:"add_intermediates_to_bundle,omitempty"`
	// OmitExpired leaves expired certificates out of the files.
	OmitExpired bool `hcl:"omit_expired" json:"omit_expired,omitempty"`
	// RenewSignal is the signal ("SIGHUP", "SIGUSR1", ...) sent after each
	// renewal to the process started and the process of PIDFileName.
	RenewSignal string `hcl:"renew_signal" json:"renew_signal,omitempty"`
	// DaemonMode: keep the files fresh until stopped (nil: true), or
	// write them once and exit.
	DaemonMode *bool `hcl:"daemon_mode" json:"daemon_mode,omitempty"`
	// Hint picks, among several SVIDs, the one whose hint it is; empty:
	// the first (the default SVID).
	Hint string `hcl:"hint" json:"hint,omitempty"`
	// The X.509 files: all three or none.
	SVIDFileName       string `hcl:"svid_file_name" json:"svid_file_name,omitempty"`
	SVIDKeyFileName    string `hcl:"svid_key_file_name" json:"svid_key_file_name,omitempty"`
	SVIDBundleFileName string `hcl:"svid_bundle_file_name" json:"svid_bundle_file_name,omitempty"`
	// JWTSVIDs are the JWT-SVIDs to keep in files, one per audience set.
	JWTSVIDs []JWTSVIDConfig `hcl:"jwt_svids" json:"jwt_svids,omitempty"`
	// JWTBundleFileName is the file of the JWT bundles (a JSON object of
	// trust domain name to base64 JWK Set).
	JWTBundleFileName string `hcl:"jwt_bundle_file_name" json:"jwt_bundle_file_name,omitempty"`
	// HealthChecks configures the HTTP health endpoints.
	HealthChecks HealthConfig `hcl:"health_checks" json:"health_checks,omitempty"`
}

// JWTSVIDConfig is one element of jwt_svids.
type JWTSVIDConfig struct {
	Audience       string   `hcl:"jwt_audience" json:"jwt_audience,omitempty"`
	ExtraAudiences []string `hcl:"jwt_extra_audiences" json:"jwt_extra_audiences,omitempty"`
	FileName       string   `hcl:"jwt_svid_file_name" json:"jwt_svid_file_name,omitempty"`
}

// HealthConfig is the health_checks block.
type HealthConfig struct {
	// ListenerEnabled starts the HTTP health server (daemon mode only).
	ListenerEnabled bool `hcl:"listener_enabled" json:"listener_enabled,omitempty"`
	// BindPort is its port on every interface (0: DefaultHealthPort).
	BindPort int `hcl:"bind_port" json:"bind_port,omitempty"`
	// LivenessPath and ReadinessPath are its two paths.
	LivenessPath  string `hcl:"liveness_path" json:"liveness_path,omitempty"`
	ReadinessPath string `hcl:"readiness_path" json:"readiness_path,omitempty"`
}

// kind is the type of a key's value.
type kind int

const (
	kString  kind = iota // "text"
	kBool                // true or false
	kInt                 // a number, or a string holding one ("0644")
	kStrings             // a list of strings
	kObjects             // objects: checked and decoded by ParseConfig
)

// The keys of each object of the file and their kinds; anything else is
// refused.
var (
	topKeys = map[string]kind{"agent_address": kString, "cmd": kString, "cmd_args": kString, "pid_file_name": kString,
		"cert_dir": kString, "cert_file_mode": kInt, "key_file_mode": kInt, "jwt_bundle_file_mode": kInt,
		"jwt_svid_file_mode": kInt, "include_federated_domains": kBool, "add_intermediates_to_bundle": kBool,
		"omit_expired": kBool, "renew_signal": kString, "daemon_mode": kBool, "hint": kString,
		"svid_file_name": kString, "svid_key_file_name": kString, "svid_bundle_file_name": kString,
		"jwt_svids": kObjects, "jwt_bundle_file_name": kString, "health_checks": kObjects}
	jwtKeys    = map[string]kind{"jwt_audience": kString, "jwt_extra_audiences": kStrings, "jwt_svid_file_name": kString}
	healthKeys = map[string]kind{"listener_enabled": kBool, "bind_port": kInt, "liveness_path": kString, "readiness_path": kString}
)

// LoadConfig reads and parses the configuration file at path (see
// [ParseConfig]); errors name the file.
func LoadConfig(path string) (*Config, error) {
	data, err := atomicfile.Read(path, MaxConfigSize)
	if err != nil {
		return nil, err
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses a configuration file in HCL (version 1, as
// spiffe-helper reads it; JSON is HCL too) and checks it: unknown and
// repeated keys, values of the wrong type, an incomplete set of X.509
// files, a jwt_svids element without audience or file name, a bad mode or
// signal, and cmd_args that do not split are errors. Defaults are filled
// in, except DaemonMode and AgentAddress, which depend on the command
// line and the environment (see [Config.Resolve]).
func ParseConfig(data []byte) (cfg *Config, err error) {
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxConfigSize)
	}
	if !utf8.Valid(data) {
		return nil, errors.New("not valid UTF-8")
	}
	// The HCL parser is old code: a panic in it is bad input, not a crash.
	defer func() {
		if r := recover(); r != nil {
			cfg, err = nil, fmt.Errorf("not a valid HCL file (%v)", r)
		}
	}()
	file, err := hcl.ParseBytes(data)
	if err != nil {
		return nil, err
	}
	root, ok := file.Node.(*ast.ObjectList)
	if !ok {
		return nil, errors.New("not an object of keys")
	}
	if err := checkKeys(root.Items, "", topKeys); err != nil {
		return nil, err
	}
	// jwt_svids and health_checks are decoded here, object by object: the
	// HCL decoder merges a list of objects given as repeated blocks (and
	// JSON, which HCL reads as such blocks) key by key, into one element
	// per key.
	cfg = new(Config)
	var rest []*ast.ObjectItem
	for _, item := range root.Items {
		key, _ := item.Keys[0].Token.Value().(string)
		switch key {
		case "jwt_svids":
			objs, err := objects(item.Val, key, true)
			if err != nil {
				return nil, err
			}
			for i, obj := range objs {
				if err := checkKeys(obj.List.Items, fmt.Sprintf("%s[%d].", key, len(cfg.JWTSVIDs)+i), jwtKeys); err != nil {
					return nil, err
				}
			}
			for _, obj := range objs {
				var j JWTSVIDConfig
				if err := hcl.DecodeObject(&j, obj); err != nil {
					return nil, err
				}
				cfg.JWTSVIDs = append(cfg.JWTSVIDs, j)
			}
		case "health_checks":
			objs, err := objects(item.Val, key, false)
			if err != nil {
				return nil, err
			}
			if err := checkKeys(objs[0].List.Items, key+".", healthKeys); err != nil {
				return nil, err
			}
			if err := hcl.DecodeObject(&cfg.HealthChecks, objs[0]); err != nil {
				return nil, err
			}
		default:
			rest = append(rest, item)
		}
	}
	if err := hcl.DecodeObject(cfg, &ast.ObjectList{Items: rest}); err != nil {
		return nil, err
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// checkKeys refuses keys of items not in known, a key given twice
// (jwt_svids excepted, whose blocks add up), block labels and values of
// the wrong kind, so that the decoder meets none of them: its errors do
// not name the key.
func checkKeys(items []*ast.ObjectItem, at string, known map[string]kind) error {
	seen := map[string]bool{}
	for _, item := range items {
		if len(item.Keys) == 0 {
			return fmt.Errorf("%sitem without a key", at)
		}
		key, _ := item.Keys[0].Token.Value().(string)
		line := item.Keys[0].Pos().Line
		k, ok := known[key]
		if !ok {
			return fmt.Errorf("line %d: unknown key %q%s", line, at+key, knownHint(known))
		}
		if len(item.Keys) > 1 {
			return fmt.Errorf("line %d: %s takes no block label", line, at+key)
		}
		if seen[key] && key != "jwt_svids" {
			return fmt.Errorf("line %d: %s is given twice", line, at+key)
		}
		seen[key] = true
		if err := checkValue(item.Val, k); err != nil {
			return fmt.Errorf("line %d: %s: %w", line, at+key, err)
		}
	}
	return nil
}

// checkValue checks that n is a value of kind k.
func checkValue(n ast.Node, k kind) error {
	lit, _ := n.(*ast.LiteralType)
	switch k {
	case kString:
		if lit == nil || lit.Token.Type != token.STRING && lit.Token.Type != token.HEREDOC {
			return errors.New("want a string")
		}
	case kBool:
		if lit == nil || lit.Token.Type != token.BOOL {
			return errors.New("want true or false")
		}
	case kInt:
		text := ""
		switch {
		case lit != nil && lit.Token.Type == token.NUMBER:
			text = lit.Token.Text
		case lit != nil && lit.Token.Type == token.STRING:
			text, _ = lit.Token.Value().(string)
		default:
			return errors.New("want a number")
		}
		// As the decoder reads it: 0644 and "0644" are octal.
		if _, err := strconv.ParseInt(text, 0, 0); err != nil {
			return fmt.Errorf("%q is not a whole number", text)
		}
	case kStrings:
		list, ok := n.(*ast.ListType)
		if !ok {
			return errors.New("want a list of strings")
		}
		for _, el := range list.List {
			if err := checkValue(el, kString); err != nil {
				return errors.New("want a list of strings")
			}
		}
	}
	return nil
}

func knownHint(known map[string]kind) string {
	if len(known) > 5 {
		return ""
	}
	return " (known: " + strings.Join(slices.Sorted(maps.Keys(known)), ", ") + ")"
}

// objects returns the object n is, or, if list, the objects of the list n
// is.
func objects(n ast.Node, at string, list bool) ([]*ast.ObjectType, error) {
	switch v := n.(type) {
	case *ast.ObjectType:
		return []*ast.ObjectType{v}, nil
	case *ast.ListType:
		if !list {
			break
		}
		var out []*ast.ObjectType
		for i, el := range v.List {
			obj, ok := el.(*ast.ObjectType)
			if !ok {
				return nil, fmt.Errorf("line %d: %s[%d]: want an object", el.Pos().Line, at, i)
			}
			out = append(out, obj)
		}
		return out, nil
	}
	return nil, fmt.Errorf("line %d: %s: want an object", n.Pos().Line, at)
}

// check applies spiffe-helper's rules and fills in the defaults.
func (c *Config) check() error {
	for i := range c.JWTSVIDs {
		j := &c.JWTSVIDs[i]
		if len(j.ExtraAudiences) == 0 {
			j.ExtraAudiences = nil
		}
		if slices.Contains(j.ExtraAudiences, "") {
			return fmt.Errorf("jwt_svids[%d]: jwt_extra_audiences: an audience must not be empty", i)
		}
		if j.FileName == "" {
			return fmt.Errorf("jwt_svids[%d]: jwt_svid_file_name is required", i)
		}
		if j.Audience == "" {
			return fmt.Errorf("jwt_svids[%d]: jwt_audience is required", i)
		}
	}
	switch n := countSet(c.SVIDFileName, c.SVIDKeyFileName, c.SVIDBundleFileName); {
	case n != 0 && n != 3:
		return errors.New("all or none of svid_file_name, svid_key_file_name, svid_bundle_file_name must be given")
	case n == 0 && c.JWTBundleFileName == "" && len(c.JWTSVIDs) == 0:
		return errors.New("nothing to write: give svid_file_name, svid_key_file_name and svid_bundle_file_name, or jwt_svids, or jwt_bundle_file_name")
	}
	for _, m := range []struct {
		key string
		v   *int
		def int
	}{
		{"cert_file_mode", &c.CertFileMode, DefaultCertFileMode},
		{"key_file_mode", &c.KeyFileMode, DefaultKeyFileMode},
		{"jwt_bundle_file_mode", &c.JWTBundleFileMode, DefaultJWTBundleFileMode},
		{"jwt_svid_file_mode", &c.JWTSVIDFileMode, DefaultJWTSVIDFileMode},
	} {
		switch {
		case *m.v < 0 || *m.v > 0o777:
			return fmt.Errorf("%s: %#o is not a file mode: want permission bits, 0 to 0777", m.key, *m.v)
		case *m.v == 0:
			*m.v = m.def
		}
	}
	if c.RenewSignal != "" {
		if _, err := parseSignal(c.RenewSignal); err != nil {
			return err
		}
	}
	if c.PIDFileName != "" && c.RenewSignal == "" {
		return errors.New("pid_file_name needs renew_signal: the signal to send to its process")
	}
	if _, err := splitArgs(c.CmdArgs); err != nil {
		return err
	}
	h := &c.HealthChecks
	if h.BindPort < 0 || h.BindPort > 65535 {
		return fmt.Errorf("health_checks.bind_port: %d is not a port", h.BindPort)
	}
	if h.BindPort == 0 {
		h.BindPort = DefaultHealthPort
	}
	if h.LivenessPath == "" {
		h.LivenessPath = DefaultLivenessPath
	}
	if h.ReadinessPath == "" {
		h.ReadinessPath = DefaultReadinessPath
	}
	for _, p := range []string{h.LivenessPath, h.ReadinessPath} {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("health_checks: path %q must start with /", p)
		}
	}
	if h.LivenessPath == h.ReadinessPath {
		return errors.New("health_checks: liveness_path and readiness_path must differ")
	}
	return nil
}

func countSet(s ...string) int {
	n := 0
	for _, v := range s {
		if v != "" {
			n++
		}
	}
	return n
}

// Resolve settles what the file alone cannot: daemon mode (the
// -daemon-mode flag, when given, wins over daemon_mode, which defaults to
// true) and the agent's address (see [Config.AgentAddress]), which it
// returns as a Workload API address. getenv reads the environment. warn
// receives what spiffe-helper warns about: keys that non-daemon mode
// ignores, the deprecated variable. It refuses pid_file_name without
// daemon mode, as spiffe-helper does, and both agent variables at once.
func (c *Config) Resolve(daemonFlag *bool, getenv func(string) string, warn func(string)) (addr string, err error) {
	switch {
	case daemonFlag != nil:
		c.DaemonMode = daemonFlag
	case c.DaemonMode == nil:
		t := true
		c.DaemonMode = &t
	}
	if !*c.DaemonMode {
		if c.PIDFileName != "" {
			return "", errors.New("pid_file_name is set but daemon_mode is false: pid_file_name works in daemon mode only")
		}
		if c.Cmd != "" {
			warn("cmd is set but daemon_mode is false: cmd is ignored")
		}
		if c.RenewSignal != "" {
			warn("renew_signal is set but daemon_mode is false: renew_signal is ignored")
		}
	}
	addr = c.AgentAddress
	if addr == "" {
		spire, spiffe := getenv("SPIRE_AGENT_ADDRESS"), getenv(workloadapi.SocketEnv)
		switch {
		case spire != "" && spiffe != "":
			return "", errors.New("both SPIRE_AGENT_ADDRESS and " + workloadapi.SocketEnv + " are set: use " + workloadapi.SocketEnv + " only")
		case spire != "":
			warn("SPIRE_AGENT_ADDRESS is deprecated: use " + workloadapi.SocketEnv)
			addr = spire
		case spiffe != "":
			addr = spiffe
		default:
			addr = DefaultAgentAddress
		}
	}
	return agentAddr(addr)
}

// agentAddr turns agent_address into a Workload API address: a path is a
// unix socket (spiffe-helper's form), a URI is taken as it is.
func agentAddr(a string) (string, error) {
	if strings.HasPrefix(a, "/") {
		a = "unix://" + a
	} else if !strings.Contains(a, ":") {
		// A relative path: unix: URIs must be absolute.
		abs, err := filepath.Abs(a)
		if err != nil {
			return "", fmt.Errorf("agent_address %q: %w", a, err)
		}
		a = "unix://" + abs
	}
	if err := workloadapi.ValidateAddress(a); err != nil {
		return "", fmt.Errorf("agent_address: %w", err)
	}
	return a, nil
}

// parseSignal returns the signal named s, with or without "SIG".
func parseSignal(s string) (syscall.Signal, error) {
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	if sig == 0 {
		return 0, fmt.Errorf("renew_signal: unknown signal %q", s)
	}
	return sig, nil
}

// splitArgs splits cmd_args as spiffe-helper does: at each space, except
// inside double quotes, which are removed ("" inside quotes is one ").
func splitArgs(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	r := csv.NewReader(strings.NewReader(s))
	r.Comma = ' '
	args, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("cmd_args: %w", err)
	}
	if _, err := r.Read(); !errors.Is(err, io.EOF) {
		return nil, errors.New("cmd_args: want one line")
	}
	return args, nil
}

// fileMode converts a checked mode of the file.
func fileMode(m int) fs.FileMode { return fs.FileMode(m) & fs.ModePerm }
