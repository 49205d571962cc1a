package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest/x509pop"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/pemutil"
)

func TestClientCommandErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "api.sock")
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"x509 extra argument", []string{"api", "fetch", "x509", "now"}, ExitUsage, `unexpected argument "now"`},
		{"x509 no agent", []string{"api", "fetch", "x509", "-socket", missing, "-timeout", "200ms"}, ExitFailure, "spiffe-agent api fetch x509: "},
		{"x509 bad address", []string{"api", "fetch", "x509", "-socket", "http://x"}, ExitUsage, "-socket:"},
		{"x509 zero timeout", []string{"api", "fetch", "x509", "-socket", missing, "-timeout", "0s"}, ExitUsage, "-timeout must be positive"},
		{"x509 bad timeout", []string{"api", "fetch", "x509", "-timeout", "soon"}, ExitUsage, `invalid value "soon" for flag -timeout`},
		{"jwt without audience", []string{"api", "fetch", "jwt", "-socket", missing}, ExitUsage, "-audience is required"},
		{"jwt bad flag", []string{"api", "fetch", "jwt", "-aud", "x"}, ExitUsage, "flag provided but not defined"},
		{"jwt bad spiffe id", []string{"api", "fetch", "jwt", "-audience", "a", "-spiffe-id", "example.org/web"}, ExitUsage, "for flag -spiffe-id: "},
		{"jwt no agent", []string{"api", "fetch", "jwt", "-audience", "a", "-socket", missing, "-timeout", "200ms"}, ExitFailure, "spiffe-agent api fetch jwt: "},
		{"jwt bad address", []string{"api", "fetch", "jwt", "-audience", "a", "-socket", "unix://host/x"}, ExitUsage, "-socket:"},
		{"healthcheck bad address", []string{"healthcheck", "-socket", "ftp://x"}, ExitUsage, "-socket:"},
		{"healthcheck zero timeout", []string{"healthcheck", "-socket", "tcp://127.0.0.1:1", "-timeout", "0s"}, ExitUsage, "-timeout must be positive"},
		{"healthcheck nothing listening", []string{"healthcheck", "-socket", "tcp://127.0.0.1:1", "-timeout", "500ms"}, ExitFailure,
			"spiffe-agent healthcheck: unhealthy: the Workload API at tcp://127.0.0.1:1 did not answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := cli(t, tt.args...)
			assert.Equal(t, tt.code, code)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, tt.stderr)
			if tt.code == ExitFailure {
				assert.Equal(t, 1, strings.Count(stderr, "\n"), stderr)
			}
			if tt.code == ExitUsage {
				// The problem on one line, then where to find help.
				assert.Equal(t, 2, strings.Count(stderr, "\n"), stderr)
				assert.Contains(t, stderr, `for help.`)
			}
		})
	}
}

func TestClientCommandHelp(t *testing.T) {
	for _, args := range [][]string{
		{"api", "fetch", "x509", "-h"},
		{"api", "fetch", "jwt", "-help"},
		{"healthcheck", "--help"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := cli(t, args...)
			assert.Equal(t, ExitOK, code)
			assert.Empty(t, stderr)
			assert.Contains(t, stdout, "Usage: spiffe-agent "+strings.Join(args[:len(args)-1], " ")+" [flags]")
			assert.Contains(t, stdout, "-socket path")
			assert.Contains(t, stdout, "-timeout duration")
			assert.Contains(t, stdout, "environment SPIFFE_ENDPOINT_SOCKET, then SPIFFE_AGENT_SOCKET")
			assert.Contains(t, stdout, "also -socketPath")
		})
	}
}

func TestSocketFlagDefaultsToTheEnvironment(t *testing.T) {
	t.Setenv("SPIFFE_ENDPOINT_SOCKET", "unix:///run/elsewhere.sock")
	code, _, stderr := cli(t, "healthcheck")
	assert.Equal(t, ExitFailure, code)
	assert.Equal(t, "spiffe-agent healthcheck: unhealthy: no socket at /run/elsewhere.sock\n", stderr)

	t.Setenv("SPIFFE_AGENT_SOCKET", "/run/agent.sock")
	code, _, stderr = cli(t, "healthcheck")
	assert.Equal(t, ExitFailure, code)
	assert.Equal(t, "spiffe-agent healthcheck: unhealthy: no socket at /run/elsewhere.sock\n", stderr, "SPIFFE_ENDPOINT_SOCKET first")

	t.Setenv("SPIFFE_ENDPOINT_SOCKET", "")
	code, _, stderr = cli(t, "healthcheck")
	assert.Equal(t, ExitFailure, code)
	assert.Equal(t, "spiffe-agent healthcheck: unhealthy: no socket at /run/agent.sock\n", stderr, "then run's own variable")

	code, _, stderr = cli(t, "healthcheck", "-socketPath", "/run/flag.sock")
	assert.Equal(t, ExitFailure, code)
	assert.Equal(t, "spiffe-agent healthcheck: unhealthy: no socket at /run/flag.sock\n", stderr, "a flag wins")

	t.Setenv("SPIFFE_AGENT_SOCKET", "")
	code, _, stderr = cli(t, "healthcheck")
	assert.Equal(t, ExitFailure, code)
	assert.Equal(t, "spiffe-agent healthcheck: unhealthy: no socket at "+DefaultSocket+"\n", stderr)
}

func TestRelativeSocketPath(t *testing.T) {
	c := clientFlags{socket: "api.sock", timeout: time.Second}
	addr, err := c.check()
	require.NoError(t, err)
	wd, err := os.Getwd()
	require.NoError(t, err)
	assert.Equal(t, "unix://"+filepath.Join(wd, "api.sock"), addr)
}

func TestLoadTrustBundle(t *testing.T) {
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	roots := m.Bundle().X509Authorities()
	doc, err := m.Bundle().Marshal()
	require.NoError(t, err)
	s := &settings{trustDomain: td}

	for name, data := range map[string][]byte{
		"pem":                    pemutil.EncodeCertificates(roots),
		"spiffe bundle":          doc,
		"spiffe bundle, spacing": append([]byte("\n  "), doc...),
	} {
		t.Run(name, func(t *testing.T) {
			b, err := loadTrustBundle(s, writeFile(t, "bundle", string(data)))
			require.NoError(t, err)
			assert.Equal(t, roots, b.X509Authorities())
			assert.Equal(t, td, b.TrustDomain())
		})
	}

	t.Run("too large", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "big.pem")
		require.NoError(t, os.WriteFile(f, make([]byte, 4<<20+1), 0o644))
		_, err := loadTrustBundle(s, f)
		require.ErrorContains(t, err, "larger than")
	})
	t.Run("a directory", func(t *testing.T) {
		dir := t.TempDir()
		_, err := loadTrustBundle(s, dir)
		require.ErrorIs(t, err, syscall.EISDIR)
		assert.EqualError(t, err, "-trust-bundle: read "+dir+": is a directory")
	})
}

func TestX509PoPAttestorFromFiles(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "node1"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	keyPEM, err := pemutil.EncodePKCS8PrivateKey(key)
	require.NoError(t, err)
	certFile := writeFile(t, "node.pem", string(pemutil.EncodeCertificates([]*x509.Certificate{cert})))
	keyFile := writeFile(t, "node.key", string(keyPEM))

	cfg := writeFile(t, "agent.json", `{"trust_domain": "example.org", "servers": ["s:1"],
		"node_attestor": {"x509pop": {"certificate": "`+certFile+`", "private_key": "`+keyFile+`"}}}`)
	s, code, _ := parse(t, "-config", cfg)
	require.Equal(t, ExitOK, code)
	a, err := newNodeAttestor(s)
	require.NoError(t, err)
	assert.Equal(t, x509pop.Type, a.Type())

	// A key readable by others is refused.
	require.NoError(t, os.Chmod(keyFile, 0o644))
	_, err = newNodeAttestor(s)
	require.ErrorContains(t, err, "x509pop")
}
