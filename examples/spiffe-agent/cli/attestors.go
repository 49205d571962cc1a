package cli

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/docker"
	"github.com/spiffekit/spiffekit/attest/k8s"
	"github.com/spiffekit/spiffekit/attest/unix"
	"github.com/spiffekit/spiffekit/internal/pemutil"
)

// Defaults of the k8s workload attestor's keys, SPIRE's.
const (
	defaultKubeletSecurePort = 10250
	defaultKubeletCAPath     = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
	defaultTokenPath         = "/var/run/secrets/kubernetes.io/serviceaccount/token" //nolint:gosec // a path, not a secret
	defaultNodeNameEnv       = "MY_NODE_NAME"
	defaultMaxPollAttempts   = 60
	defaultPollRetryInterval = 500 * time.Millisecond
	// maxTokenSize bounds the service account token file.
	maxTokenSize = 64 << 10
	// maxCAFileSize bounds the kubelet CA file.
	maxCAFileSize = 4 << 20
)

// k8sConfig is the "workload_attestors.k8s" object of the configuration
// file, with the keys of SPIRE's k8s workload attestor.
type k8sConfig struct {
	KubeletSecurePort       int    `json:"kubelet_secure_port"`
	KubeletReadOnlyPort     int    `json:"kubelet_read_only_port"`
	KubeletCAPath           string `json:"kubelet_ca_path"`
	SkipKubeletVerification bool   `json:"skip_kubelet_verification"`
	TokenPath               string `json:"token_path"`
	NodeNameEnv             string `json:"node_name_env"`
	NodeName                string `json:"node_name"`
	MaxPollAttempts         int    `json:"max_poll_attempts"`
	PollRetryInterval       string `json:"poll_retry_interval"`
}

// dockerConfig is the "workload_attestors.docker" object of the
// configuration file.
type dockerConfig struct {
	DockerSocketPath string   `json:"docker_socket_path"`
	AllowedEnvVars   []string `json:"allowed_env_vars"`
}

const k8sHelp = `the k8s workload attestor: {"kubelet_secure_port": 10250, "kubelet_read_only_port": 0,
"kubelet_ca_path": "...", "skip_kubelet_verification": false, "token_path": "...",
"node_name_env": "MY_NODE_NAME", "node_name": "", "max_poll_attempts": 60,
"poll_retry_interval": "500ms"}; present, even empty, turns it on`

const dockerHelp = `the docker workload attestor: {"docker_socket_path": "unix:///var/run/docker.sock",
"allowed_env_vars": []}; present, even empty, turns it on`

// k8sSettings are the k8s attestor's checked keys.
type k8sSettings struct {
	url                string
	serverName         string // the node's name when given, else "" (the chain only)
	caPath, tokenPath  string // "" for the read-only port
	insecure           bool
	interval, deadline time.Duration
}

// checkK8s checks the k8s attestor's keys; getenv reads the node name's
// variable.
func checkK8s(c *k8sConfig, getenv func(string) string) (*k8sSettings, error) {
	if c.KubeletSecurePort < 0 || c.KubeletSecurePort > 65535 || c.KubeletReadOnlyPort < 0 || c.KubeletReadOnlyPort > 65535 {
		return nil, errors.New("workload_attestors.k8s: a kubelet port is from 1 to 65535")
	}
	if c.KubeletSecurePort > 0 && c.KubeletReadOnlyPort > 0 {
		return nil, errors.New("workload_attestors.k8s: give kubelet_secure_port or kubelet_read_only_port, not both")
	}
	if c.MaxPollAttempts < 0 {
		return nil, errors.New("workload_attestors.k8s: max_poll_attempts must not be negative")
	}
	s := &k8sSettings{interval: defaultPollRetryInterval}
	if c.PollRetryInterval != "" {
		d, err := time.ParseDuration(c.PollRetryInterval)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("workload_attestors.k8s: poll_retry_interval %q: want a positive duration such as 500ms", c.PollRetryInterval)
		}
		s.interval = d
	}
	attempts := c.MaxPollAttempts
	if attempts == 0 {
		attempts = defaultMaxPollAttempts
	}
	s.deadline = time.Duration(attempts) * s.interval

	host := c.NodeName
	if host == "" {
		env := c.NodeNameEnv
		if env == "" {
			env = defaultNodeNameEnv
		}
		host = getenv(env)
	}
	if host != "" {
		s.serverName = host
	} else {
		host = "127.0.0.1"
	}
	if c.KubeletReadOnlyPort > 0 {
		if c.KubeletCAPath != "" || c.TokenPath != "" || c.SkipKubeletVerification {
			return nil, errors.New("workload_attestors.k8s: the read-only port takes no kubelet_ca_path, token_path or skip_kubelet_verification")
		}
		s.url = "http://" + net.JoinHostPort(host, strconv.Itoa(c.KubeletReadOnlyPort))
		return s, nil
	}
	port := c.KubeletSecurePort
	if port == 0 {
		port = defaultKubeletSecurePort
	}
	s.url = "https://" + net.JoinHostPort(host, strconv.Itoa(port))
	s.insecure = c.SkipKubeletVerification
	if !s.insecure {
		s.caPath = orString(c.KubeletCAPath, defaultKubeletCAPath)
	} else if c.KubeletCAPath != "" {
		return nil, errors.New("workload_attestors.k8s: give kubelet_ca_path or skip_kubelet_verification, not both")
	}
	s.tokenPath = orString(c.TokenPath, defaultTokenPath)
	return s, nil
}

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// dockerSocket returns the path of the docker_socket_path key: a
// "unix://" URL or an absolute path.
func dockerSocket(c *dockerConfig) (string, error) {
	p := c.DockerSocketPath
	if p == "" {
		return docker.DefaultSocketPath, nil
	}
	if rest, ok := strings.CutPrefix(p, "unix://"); ok {
		p = rest
	} else if strings.Contains(p, "://") {
		return "", fmt.Errorf("workload_attestors.docker: docker_socket_path %q: the daemon is reached on its unix socket only (unix:///path)", c.DockerSocketPath)
	}
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("workload_attestors.docker: docker_socket_path %q: want an absolute path", c.DockerSocketPath)
	}
	return filepath.Clean(p), nil
}

// newWorkloadAttestors returns the workload attestors of s, and their
// names: unix always, then k8s and docker when configured.
func newWorkloadAttestors(s *settings, log *slog.Logger) ([]attest.WorkloadAttestor, []string, error) {
	u, err := unix.New(unix.Config{
		ProcRoot:       s.cfg.UnixProcRoot,
		SkipExecutable: s.cfg.UnixSkipExec,
		SkipHash:       s.cfg.UnixSkipHash,
	})
	if err != nil {
		return nil, nil, err
	}
	as, names := []attest.WorkloadAttestor{u}, []string{"unix"}
	if k := s.k8s; k != nil {
		cfg := k8s.Config{
			KubeletURL:         k.url,
			ServerName:         k.serverName,
			InsecureSkipVerify: k.insecure,
			PollInterval:       k.interval,
			PollTimeout:        k.deadline,
			ProcRoot:           s.cfg.UnixProcRoot,
			Logger:             log,
		}
		if k.caPath != "" {
			if cfg.RootCAs, err = loadCAs(k.caPath); err != nil {
				return nil, nil, fmt.Errorf("workload_attestors.k8s: kubelet_ca_path: %w", err)
			}
		}
		if k.tokenPath != "" {
			path := k.tokenPath
			// Read once now, so that a missing token stops the start-up,
			// then at every request, since a projected token rotates.
			if _, err := readToken(path); err != nil {
				return nil, nil, fmt.Errorf("workload_attestors.k8s: token_path: %w", err)
			}
			cfg.Token = func(context.Context) (string, error) { return readToken(path) }
		}
		a, err := k8s.New(cfg)
		if err != nil {
			return nil, nil, err
		}
		as, names = append(as, a), append(names, "k8s")
	}
	if s.dockerSocket != "" {
		a, err := docker.New(docker.Config{
			SocketPath: s.dockerSocket,
			AllowedEnv: s.cfg.Docker.AllowedEnvVars,
			ProcRoot:   s.cfg.UnixProcRoot,
			Logger:     log,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("workload_attestors.docker: %w", err)
		}
		as, names = append(as, a), append(names, "docker")
	}
	return as, names, nil
}

// loadCAs reads PEM certificates from path.
func loadCAs(path string) (*x509.CertPool, error) {
	data, err := readLimited(path, maxCAFileSize)
	if err != nil {
		return nil, err
	}
	certs, err := pemutil.ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// readToken reads the service account token at path. Its error names the
// file, never the token.
func readToken(path string) (string, error) {
	data, err := readLimited(path, maxTokenSize)
	if err != nil {
		return "", err
	}
	token := string(bytes.TrimSpace(data))
	if token == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return token, nil
}

// readLimited reads the file at path, failing if it holds more than limit
// bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}
