package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
)

// writeUpstreamCA writes a self-signed CA certificate and its PKCS#8 key
// (mode 0600) into dir, as an operator's upstream CA, and returns the
// certificate and both paths.
func writeUpstreamCA(t *testing.T, dir string) (*x509.Certificate, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "upstream"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(30 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	certPath, keyPath := filepath.Join(dir, "upstream.crt"), filepath.Join(dir, "upstream.key")
	require.NoError(t, os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	require.NoError(t, os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600))
	return cert, certPath, keyPath
}

// TestRunUpstreamCA starts the server with an upstream CA from files: its
// bundle is the upstream root alone, and what it signs chains to that
// root through the server's CA, so that another server under the same
// upstream CA (SPIRE's UpstreamAuthority "disk") trusts it.
func TestRunUpstreamCA(t *testing.T) {
	dir, err := os.MkdirTemp("", "upstream")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	root, certPath, keyPath := writeUpstreamCA(t, dir)
	sock := filepath.Join(dir, "admin.sock")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr logtest.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"run", "-trust-domain", "example.org", "-data-dir", filepath.Join(dir, "data"),
			"-bind", "127.0.0.1:0", "-admin-socket", sock,
			"-upstream-ca-cert", certPath, "-upstream-ca-key", keyPath}, io.Discard, &stderr)
	}()
	waitReady(t, &stderr, done)

	chain := mintChained(t, ctx, sock, root, 2) // the leaf, then the server's CA
	assert.Equal(t, root.Subject.String(), chain[1].Issuer.String())
	stopRuns(t, cancel, &stderr, done)
}

// TestRunUpstreamCARefused checks the upstream CA's files before anything
// is created: one file without the other is a usage error, a key that
// others may read or a key of another certificate fails.
func TestRunUpstreamCARefused(t *testing.T) {
	dir := t.TempDir()
	_, certPath, keyPath := writeUpstreamCA(t, dir)
	other := t.TempDir()
	_, _, otherKey := writeUpstreamCA(t, other)
	openKey := filepath.Join(dir, "open.key")
	b, err := os.ReadFile(keyPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(openKey, b, 0o644))
	require.NoError(t, os.Chmod(openKey, 0o644))
	for _, tt := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"cert alone", []string{"-upstream-ca-cert", certPath}, ExitUsage, "an upstream CA needs both -upstream-ca-cert and -upstream-ca-key"},
		{"key alone", []string{"-upstream-ca-key", keyPath}, ExitUsage, "an upstream CA needs both"},
		{"key readable by others", []string{"-upstream-ca-cert", certPath, "-upstream-ca-key", openKey}, ExitFailure, "upstream: cannot read key"},
		{"key of another CA", []string{"-upstream-ca-cert", certPath, "-upstream-ca-key", otherKey}, ExitFailure, "upstream: invalid CA"},
		{"missing cert", []string{"-upstream-ca-cert", filepath.Join(dir, "none"), "-upstream-ca-key", keyPath}, ExitFailure, "upstream: cannot read certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			var stderr bytes.Buffer
			code := Main(t.Context(), append([]string{"run", "-trust-domain", "example.org", "-data-dir", data,
				"-bind", "127.0.0.1:0", "-admin-socket", ""}, tt.args...), io.Discard, &stderr)
			assert.Equal(t, tt.code, code, stderr.String())
			assert.Contains(t, stderr.String(), tt.stderr)
			_, err := os.Stat(data)
			assert.ErrorIs(t, err, os.ErrNotExist, "nothing is created")
		})
	}
}

// TestUpstreamAuthoritySection reads upstream_authority.disk, with the
// keys of SPIRE's UpstreamAuthority "disk", as the two flags.
func TestUpstreamAuthoritySection(t *testing.T) {
	dir := t.TempDir()
	parse := func(text string, args ...string) (runConfig, error) {
		t.Helper()
		var rc runConfig
		var stdout, stderr bytes.Buffer
		_, ok := newRunCommand(&rc).Parse(append([]string{"-config", writeJSON(t, dir, text)}, args...), &stdout, &stderr)
		require.True(t, ok, stderr.String())
		return rc, upstreamKeys(&rc)
	}
	const both = `{"upstream_authority": {"disk": {"cert_file_path": "/etc/up.crt", "key_file_path": "/etc/up.key"}}}`
	rc, err := parse(both)
	require.NoError(t, err)
	assert.Equal(t, "/etc/up.crt", rc.UpstreamCACert)
	assert.Equal(t, "/etc/up.key", rc.UpstreamCAKey)
	rc, err = parse(both, "-upstream-ca-cert", "/etc/up.crt")
	require.NoError(t, err, "the same file twice")
	assert.Equal(t, "/etc/up.key", rc.UpstreamCAKey)
	_, err = parse(both, "-upstream-ca-cert", "/etc/other.crt")
	require.ErrorContains(t, err, "the upstream CA certificate is given twice")
	_, err = parse(both, "-upstream-ca-key", "/etc/other.key")
	require.ErrorContains(t, err, "the upstream CA key is given twice")
	_, err = parse(`{"upstream_authority": {"disk": {"cert_file_path": "/etc/up.crt"}}}`)
	require.ErrorContains(t, err, "cert_file_path and key_file_path are required")
	_, err = parse(`{"upstream_authority": {"disk": {"cert_file_path": "/etc/up.crt", "key_file_path": "/etc/up.key", "bundle_file_path": "/etc/roots.pem"}}}`)
	require.ErrorContains(t, err, "bundle_file_path is not supported")

	for text, msg := range map[string]string{
		`{"upstream_authority": {"disk": {"cert_path": "x"}}}`: `unknown field "cert_path"`,
		`{"upstream_authority": {"vault": {}}}`:                "upstream_authority.vault",
	} {
		code, _, stderr := runMain(t, "-config", writeJSON(t, dir, text))
		assert.Equal(t, ExitUsage, code, text)
		assert.Contains(t, stderr, msg, text)
	}

	// From the file, the server runs under the upstream CA.
	_, _, keyPath := writeUpstreamCA(t, dir)
	_, other, _ := writeUpstreamCA(t, t.TempDir())
	code, _, stderr := runMain(t, "-config", writeJSON(t, dir, fmt.Sprintf(`{"upstream_authority": {"disk": {"cert_file_path": %q, "key_file_path": %q}}}`, other, keyPath)),
		"-trust-domain", "example.org", "-data-dir", filepath.Join(dir, "data"), "-bind", "127.0.0.1:0", "-admin-socket", "")
	assert.Equal(t, ExitFailure, code, "the file's paths reach the server: a key of another CA")
	assert.Contains(t, stderr, "upstream: invalid CA")
}

// TestDataStoreSection reads data_store.sql, with the keys of SPIRE's
// DataStore "sql", as -datastore.
func TestDataStoreSection(t *testing.T) {
	dir := t.TempDir()
	parse := func(text string, args ...string) (runConfig, error) {
		t.Helper()
		var rc runConfig
		var stdout, stderr bytes.Buffer
		_, ok := newRunCommand(&rc).Parse(append([]string{"-config", writeJSON(t, dir, text)}, args...), &stdout, &stderr)
		require.True(t, ok, stderr.String())
		return rc, dataStoreKeys(&rc)
	}
	const mysqlFile = `{"data_store": {"sql": {"database_type": "mysql", "connection_string": "spire:pw@tcp(db:3306)/spire"}}}`
	rc, err := parse(mysqlFile)
	require.NoError(t, err)
	assert.Equal(t, "mysql://spire:pw@tcp(db:3306)/spire", rc.Datastore)
	dialect, dsn := parseDatastore(rc.Datastore)
	assert.Equal(t, sqlstore.MySQL, dialect)
	assert.Equal(t, "spire:pw@tcp(db:3306)/spire", dsn)
	assert.Equal(t, "mysql", datastoreKind(rc))
	_, err = parse(mysqlFile, "-datastore", "mysql://spire:pw@tcp(db:3306)/spire")
	require.NoError(t, err, "the same datastore twice")
	_, err = parse(mysqlFile, "-datastore", "postgres://db/spire")
	require.ErrorContains(t, err, "the datastore is given twice")

	rc, err = parse(`{"data_store": {"sql": {"database_type": "postgres", "connection_string": "dbname=spire host=db"}}}`)
	require.NoError(t, err)
	assert.Equal(t, "dbname=spire host=db", rc.Datastore)
	dialect, dsn = parseDatastore(rc.Datastore)
	assert.Equal(t, sqlstore.PostgreSQL, dialect)
	assert.Equal(t, "dbname=spire host=db", dsn)
	assert.Equal(t, "postgres", datastoreKind(rc))
	assert.Equal(t, "sqlite", datastoreKind(runConfig{}))

	for text, msg := range map[string]string{
		`{"data_store": {"sql": {"database_type": "sqlite3", "connection_string": "/var/lib/spire/datastore.sqlite3"}}}`: "sqlite3 is the default",
		`{"data_store": {"sql": {"database_type": "oracle", "connection_string": "x"}}}`:                                 `database_type "oracle" is not postgres or mysql`,
		`{"data_store": {"sql": {"database_type": "mysql"}}}`:                                                            "connection_string is required",
	} {
		_, err := parse(text)
		require.ErrorContains(t, err, msg, text)
		code, _, stderr := runMain(t, "-config", writeJSON(t, dir, text), "-trust-domain", "example.org", "-data-dir", filepath.Join(dir, "data"))
		assert.Equal(t, ExitUsage, code, text)
		assert.Contains(t, stderr, msg, text)
	}
	code, _, stderr := runMain(t, "-config", writeJSON(t, dir, `{"data_store": {"sql": {"database_type": "mysql", "connection_string": "x", "max_open_conns": 5}}}`))
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, `unknown field "max_open_conns"`, "SPIRE's other keys are refused, not ignored")
}

// mintChained checks that the bundle the server at the admin socket sock
// shows is root alone, mints an X509-SVID through it, and checks that the
// SVID has n certificates and chains to root through the others. It returns
// the chain, leaf first.
func mintChained(t *testing.T, ctx context.Context, sock string, root *x509.Certificate, n int) []*x509.Certificate {
	t.Helper()
	var out, errOut bytes.Buffer
	require.Equal(t, ExitOK, Main(ctx, []string{"bundle", "show", "-admin-socket", sock}, &out, &errOut), errOut.String())
	assert.Equal(t, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw})), out.String(),
		"the bundle is the root alone")

	out.Reset()
	require.Equal(t, ExitOK, Main(ctx, []string{"x509", "mint", "-admin-socket", sock, "-output", "json",
		"-spiffe-id", "spiffe://example.org/web"}, &out, &errOut), errOut.String())
	var minted struct {
		X509SVID [][]byte `json:"x509_svid"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &minted))
	require.Len(t, minted.X509SVID, n)
	var chain []*x509.Certificate
	for _, der := range minted.X509SVID {
		c, err := x509.ParseCertificate(der)
		require.NoError(t, err)
		chain = append(chain, c)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	for _, c := range chain[1:] {
		inters.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	require.NoError(t, err, "the SVID chains to the root")
	return chain
}

// stopRuns cancels the runs' context and checks that each run then ends
// with ExitOK; logs, when not nil, is shown if one does not.
func stopRuns(t *testing.T, cancel context.CancelFunc, logs fmt.Stringer, runs ...chan int) {
	t.Helper()
	cancel()
	for _, done := range runs {
		select {
		case code := <-done:
			if logs != nil {
				assert.Equal(t, ExitOK, code, logs.String())
			} else {
				assert.Equal(t, ExitOK, code)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("run did not stop")
		}
	}
}
