package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// caPEM returns a self-signed CA certificate in PEM.
func caPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubelet-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestCheckK8s(t *testing.T) {
	env := map[string]string{"MY_NODE_NAME": "", "OTHER_NODE": "node-7"}
	getenv := func(k string) string { return env[k] }
	for _, tt := range []struct {
		name    string
		cfg     k8sConfig
		env     string // MY_NODE_NAME
		want    k8sSettings
		wantErr string
	}{
		{
			name: "defaults: the secure port on this host, the service account's CA and token",
			want: k8sSettings{url: "https://127.0.0.1:10250", caPath: defaultKubeletCAPath, tokenPath: defaultTokenPath,
				interval: 500 * time.Millisecond, deadline: 30 * time.Second},
		},
		{
			name: "the node's name from MY_NODE_NAME is reached and verified",
			env:  "node-1",
			want: k8sSettings{url: "https://node-1:10250", serverName: "node-1", caPath: defaultKubeletCAPath, tokenPath: defaultTokenPath,
				interval: 500 * time.Millisecond, deadline: 30 * time.Second},
		},
		{
			name: "node_name_env names another variable",
			cfg:  k8sConfig{NodeNameEnv: "OTHER_NODE"},
			env:  "node-1",
			want: k8sSettings{url: "https://node-7:10250", serverName: "node-7", caPath: defaultKubeletCAPath, tokenPath: defaultTokenPath,
				interval: 500 * time.Millisecond, deadline: 30 * time.Second},
		},
		{
			name: "node_name wins over the variable",
			cfg: k8sConfig{NodeName: "10.0.0.5", KubeletSecurePort: 11250, KubeletCAPath: "/ca.pem", TokenPath: "/token",
				MaxPollAttempts: 4, PollRetryInterval: "2s"},
			env: "node-1",
			want: k8sSettings{url: "https://10.0.0.5:11250", serverName: "10.0.0.5", caPath: "/ca.pem", tokenPath: "/token",
				interval: 2 * time.Second, deadline: 8 * time.Second},
		},
		{
			name: "skip_kubelet_verification",
			cfg:  k8sConfig{SkipKubeletVerification: true},
			want: k8sSettings{url: "https://127.0.0.1:10250", insecure: true, tokenPath: defaultTokenPath,
				interval: 500 * time.Millisecond, deadline: 30 * time.Second},
		},
		{
			name: "the read-only port: plain HTTP, no token",
			cfg:  k8sConfig{KubeletReadOnlyPort: 10255},
			want: k8sSettings{url: "http://127.0.0.1:10255", interval: 500 * time.Millisecond, deadline: 30 * time.Second},
		},
		{name: "both ports", cfg: k8sConfig{KubeletSecurePort: 10250, KubeletReadOnlyPort: 10255}, wantErr: "not both"},
		{name: "a port out of range", cfg: k8sConfig{KubeletSecurePort: 70000}, wantErr: "from 1 to 65535"},
		{name: "a negative port", cfg: k8sConfig{KubeletReadOnlyPort: -1}, wantErr: "from 1 to 65535"},
		{name: "negative attempts", cfg: k8sConfig{MaxPollAttempts: -1}, wantErr: "max_poll_attempts"},
		{name: "a bad interval", cfg: k8sConfig{PollRetryInterval: "soon"}, wantErr: "poll_retry_interval"},
		{name: "a zero interval", cfg: k8sConfig{PollRetryInterval: "0s"}, wantErr: "poll_retry_interval"},
		{name: "a token for the read-only port", cfg: k8sConfig{KubeletReadOnlyPort: 10255, TokenPath: "/t"}, wantErr: "takes no"},
		{name: "a CA and no verification", cfg: k8sConfig{SkipKubeletVerification: true, KubeletCAPath: "/ca"}, wantErr: "not both"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env["MY_NODE_NAME"] = tt.env
			got, err := checkK8s(&tt.cfg, getenv)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, *got)
		})
	}
}

func TestDockerSocket(t *testing.T) {
	for in, want := range map[string]string{
		"":                            "/var/run/docker.sock",
		"unix:///var/run/docker.sock": "/var/run/docker.sock",
		"/run/user/1000//docker.sock": "/run/user/1000/docker.sock",
	} {
		got, err := dockerSocket(&dockerConfig{DockerSocketPath: in})
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for in, want := range map[string]string{
		"tcp://127.0.0.1:2375":    "unix socket only",
		"npipe:////./pipe/docker": "unix socket only",
		"docker.sock":             "absolute path",
		"unix://docker.sock":      "absolute path",
	} {
		_, err := dockerSocket(&dockerConfig{DockerSocketPath: in})
		require.ErrorContains(t, err, want, in)
	}
}

func TestWorkloadAttestorsConfig(t *testing.T) {
	t.Setenv("MY_NODE_NAME", "")
	ca := writeFile(t, "ca.pem", caPEM(t))
	token := writeFile(t, "token", "header.payload.signature\n")
	file := writeFile(t, "agent.json", `{"workload_attestors": {
		"unix": {"skip_hash": true},
		"k8s": {"kubelet_ca_path": "`+ca+`", "token_path": "`+token+`"},
		"docker": {"docker_socket_path": "unix:///run/d.sock", "allowed_env_vars": ["ROLE"]}
	}}`)
	s, code, stderr := parse(t, append([]string{"-config", file}, minimal...)...)
	require.Equal(t, ExitOK, code, stderr)
	assert.True(t, s.cfg.UnixSkipHash)
	require.NotNil(t, s.k8s)
	assert.Equal(t, ca, s.k8s.caPath)
	assert.Equal(t, "/run/d.sock", s.dockerSocket)
	as, names, err := newWorkloadAttestors(s, nil)
	require.NoError(t, err)
	assert.Len(t, as, 3)
	assert.Equal(t, []string{"unix", "k8s", "docker"}, names)
	tok, err := readToken(token)
	require.NoError(t, err)
	assert.Equal(t, "header.payload.signature", tok, "without the newline")

	// Without the section, unix alone, as before.
	s, code, stderr = parse(t, minimal...)
	require.Equal(t, ExitOK, code, stderr)
	_, names, err = newWorkloadAttestors(s, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"unix"}, names)

	// Empty objects turn the attestors on, with their defaults.
	file = writeFile(t, "agent.json", `{"workload_attestors": {"unix": {}, "k8s": {"kubelet_read_only_port": 10255}, "docker": {}}}`)
	s, code, stderr = parse(t, append([]string{"-config", file}, minimal...)...)
	require.Equal(t, ExitOK, code, stderr)
	_, names, err = newWorkloadAttestors(s, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"unix", "k8s", "docker"}, names)
}

func TestWorkloadAttestorsConfigErrors(t *testing.T) {
	t.Setenv("MY_NODE_NAME", "")
	ca := writeFile(t, "ca.pem", caPEM(t))
	token := writeFile(t, "token", "t")
	for _, tt := range []struct{ name, section, want string }{
		{"unknown attestor", `"k8ss": {}`, `unknown key "workload_attestors.k8ss"`},
		{"unknown k8s key", `"k8s": {"kubelet_port": 1}`, `unknown field "kubelet_port"`},
		{"unknown docker key", `"docker": {"host": "x"}`, `unknown field "host"`},
		{"k8s of the wrong type", `"k8s": true`, "workload_attestors.k8s: json: cannot unmarshal"},
		{"a bad k8s key", `"k8s": {"kubelet_secure_port": 1, "kubelet_read_only_port": 2}`, "not both"},
		{"a bad docker key", `"docker": {"docker_socket_path": "tcp://h:1"}`, "unix socket only"},
		{"a bad env name", `"docker": {"allowed_env_vars": ["A=B"]}`, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := writeFile(t, "agent.json", `{"workload_attestors": {`+tt.section+`}}`)
			s, code, stderr := parse(t, append([]string{"-config", file}, minimal...)...)
			if tt.want == "" {
				// Checked when the attestor is made.
				require.Equal(t, ExitOK, code, stderr)
				_, _, err := newWorkloadAttestors(s, nil)
				require.ErrorContains(t, err, "is not an environment variable name")
				return
			}
			assert.Equal(t, ExitUsage, code)
			assert.Contains(t, stderr, tt.want)
		})
	}
	for _, tt := range []struct{ name, k8s, want string }{
		{"no CA file", `"kubelet_ca_path": "/nonexistent/ca.pem", "token_path": "` + token + `"`, "kubelet_ca_path: open /nonexistent/ca.pem"},
		{"a CA file without certificates", `"kubelet_ca_path": "` + token + `", "token_path": "` + token + `"`, "no CERTIFICATE PEM blocks"},
		{"no token", `"kubelet_ca_path": "` + ca + `", "token_path": "/nonexistent/token"`, "token_path: open /nonexistent/token"},
		{"an empty token", `"kubelet_ca_path": "` + ca + `", "token_path": "` + writeFile(t, "empty", "\n") + `"`, "is empty"},
		{"a token too large", `"kubelet_ca_path": "` + ca + `", "token_path": "` + writeFile(t, "big", strings.Repeat("x", maxTokenSize+1)) + `"`, "larger than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := writeFile(t, "agent.json", `{"workload_attestors": {"k8s": {`+tt.k8s+`}}}`)
			s, code, stderr := parse(t, append([]string{"-config", file}, minimal...)...)
			require.Equal(t, ExitOK, code, stderr)
			_, _, err := newWorkloadAttestors(s, nil)
			require.ErrorContains(t, err, tt.want)
			assert.NotContains(t, err.Error(), "xxxx", "no token in errors")
		})
	}
}
