package cli

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca/keymanager"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/registry/memstore"
	issuing "github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// startMintingServer runs an issuing server (in-memory CA and registry)
// until the test ends, and returns its admin socket and its log.
func startMintingServer(t *testing.T) (string, *logtest.Buffer) {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "admin.sock")
	logs := &logtest.Buffer{}
	s, err := issuing.New(t.Context(), issuing.Config{
		TrustDomain: td,
		Stores:      issuing.StoresOf(memstore.New(memstore.Config{})),
		KeyManager:  keymanager.NewMemory(),
		BindAddr:    "127.0.0.1:0",
		AdminSocket: socket,
		JWTSVIDTTL:  5 * time.Minute,
		Logger:      slog.New(slog.NewTextHandler(logs, nil)),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, s.Close())
	})
	return socket, logs
}

// pemBlocks splits the pretty output of x509 mint into its three parts.
func pemBlocks(t *testing.T, out string) (svid, key, roots []byte) {
	t.Helper()
	rest, ok := strings.CutPrefix(out, "X509-SVID:\n")
	require.True(t, ok, out)
	svidPart, rest, ok := strings.Cut(rest, "\nPrivate key:\n")
	require.True(t, ok, out)
	keyPart, rootsPart, ok := strings.Cut(rest, "\nRoot CAs:\n")
	require.True(t, ok, out)
	return []byte(svidPart), []byte(keyPart), []byte(rootsPart)
}

func TestX509Mint(t *testing.T) {
	socket, logs := startMintingServer(t)
	bundleDoc := okAt(t, socket, "bundle", "show")
	roots, err := pemutil.ParseCertificates([]byte(bundleDoc))
	require.NoError(t, err)
	bundle := x509bundle.FromX509Authorities(td, roots)

	out := okAt(t, socket, "x509", "mint", "-spiffeID", "spiffe://example.org/bootstrap", "-dns", "db.example.org,db", "-ttl", "600")
	svidPEM, keyPEM, rootsPEM := pemBlocks(t, out)
	svid, err := x509svid.Parse(svidPEM, keyPEM)
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/bootstrap", svid.ID.String())
	assert.Equal(t, []string{"db.example.org", "db"}, svid.Certificates[0].DNSNames)
	assert.WithinDuration(t, time.Now().Add(10*time.Minute), svid.Certificates[0].NotAfter, time.Minute)
	_, _, err = x509svid.Verify(svid.Certificates, bundle)
	require.NoError(t, err)
	assert.Equal(t, bundleDoc, string(rootsPEM))

	// The server logs the mint at Info, never the key.
	assert.Contains(t, logs.String(), `level=INFO msg="admin: minted an X509-SVID" component=admin spiffe_id=spiffe://example.org/bootstrap dns_names="[db.example.org db]" serial=`+svid.Certificates[0].SerialNumber.Text(16))
	block, _ := pem.Decode(keyPEM)
	require.NotNil(t, block)
	assert.NotContains(t, logs.String(), "PRIVATE KEY")

	// -write: the three files, the key private.
	dir := filepath.Join(t.TempDir(), "minted")
	out = okAt(t, socket, "x509", "mint", "-spiffe-id", "spiffe://example.org/bootstrap", "-write", dir)
	assert.Equal(t, "X509-SVID written to "+filepath.Join(dir, "svid.pem")+"\nPrivate key written to "+filepath.Join(dir, "key.pem")+
		"\nRoot CAs written to "+filepath.Join(dir, "bundle.pem")+"\n", out)
	svid, err = x509svid.Load(filepath.Join(dir, "svid.pem"), filepath.Join(dir, "key.pem"))
	require.NoError(t, err)
	_, _, err = x509svid.Verify(svid.Certificates, bundle)
	require.NoError(t, err)
	for name, perm := range map[string]os.FileMode{"svid.pem": 0o644, "key.pem": 0o600, "bundle.pem": 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		assert.Equal(t, perm, fi.Mode().Perm(), name)
	}
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())

	// JSON, with SPIRE's field names.
	r := runAt(t, socket, "x509", "mint", "-spiffeID", "spiffe://example.org/bootstrap", "-output", "json")
	require.Equal(t, ExitOK, r.code, r.stderr)
	golden(t, "x509_mint", r.stdout)
	var j mintedX509JSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &j))
	leaf, err := x509.ParseCertificate(j.X509SVID[0])
	require.NoError(t, err)
	assert.Equal(t, leaf.NotAfter.UTC(), j.ExpiresAt)
	_, err = x509.ParsePKCS8PrivateKey(j.PrivateKey)
	require.NoError(t, err)
	r = runAt(t, socket, "x509", "mint", "-spiffeID", "spiffe://example.org/bootstrap", "-output", "json", "-write", dir)
	require.Equal(t, ExitOK, r.code, r.stderr)
	golden(t, "x509_mint_write", r.stdout)

	// A lifetime beyond the CA's is shortened, and the command says so.
	r = runAt(t, socket, "x509", "mint", "-spiffeID", "spiffe://example.org/bootstrap", "-ttl", "8760h")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.True(t, strings.HasPrefix(r.stderr, "X509-SVID lifetime was capped shorter than the -ttl asked for; it expires "), r.stderr)
}

func TestJWTMint(t *testing.T) {
	socket, logs := startMintingServer(t)
	doc := okAt(t, socket, "bundle", "show", "-format", "spiffe")
	var keys struct {
		Keys []json.RawMessage `json:"keys"`
	}
	require.NoError(t, json.Unmarshal([]byte(doc), &keys))

	out := okAt(t, socket, "jwt", "mint", "-spiffeID", "spiffe://example.org/batch", "-audience", "db", "-audience", "cache")
	token := strings.TrimSuffix(out, "\n")
	require.NotContains(t, token, "\n")
	svid, err := jwtsvid.ParseInsecure(token, []string{"db", "cache"})
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/batch", svid.ID.String())
	assert.WithinDuration(t, time.Now().Add(5*time.Minute), svid.Expiry, time.Minute, "the server's default JWT-SVID TTL")
	assert.Contains(t, logs.String(), `level=INFO msg="admin: minted a JWT-SVID" component=admin spiffe_id=spiffe://example.org/batch audience="[db cache]"`)
	assert.NotContains(t, logs.String(), token)

	out = okAt(t, socket, "jwt", "mint", "-spiffe-id", "spiffe://example.org/batch", "-audience", "db", "-ttl", "90s")
	svid, err = jwtsvid.ParseInsecure(strings.TrimSpace(out), []string{"db"})
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(90*time.Second), svid.Expiry, 30*time.Second)

	file := filepath.Join(t.TempDir(), "token")
	out = okAt(t, socket, "jwt", "mint", "-spiffeID", "spiffe://example.org/batch", "-audience", "db", "-write", file)
	assert.Equal(t, "JWT-SVID written to "+file+"\n", out)
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	_, err = jwtsvid.ParseInsecure(strings.TrimSpace(string(data)), []string{"db"})
	require.NoError(t, err)
	fi, err := os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	r := runAt(t, socket, "jwt", "mint", "-spiffeID", "spiffe://example.org/batch", "-audience", "db", "-output", "json")
	require.Equal(t, ExitOK, r.code, r.stderr)
	golden(t, "jwt_mint", r.stdout)
	r = runAt(t, socket, "jwt", "mint", "-spiffeID", "spiffe://example.org/batch", "-audience", "db", "-output", "json", "-write", file)
	require.Equal(t, ExitOK, r.code, r.stderr)
	golden(t, "jwt_mint_write", r.stdout)

	r = runAt(t, socket, "jwt", "mint", "-spiffeID", "spiffe://example.org/batch", "-audience", "db", "-ttl", "8760h")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.True(t, strings.HasPrefix(r.stderr, "JWT-SVID lifetime was capped shorter than the -ttl asked for; it expires "), r.stderr)
}

func TestMintErrors(t *testing.T) {
	socket, logs := startMintingServer(t)
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"x509 without ID", []string{"x509", "mint"}, ExitUsage, "-spiffe-id is required"},
		{"x509 bad ID", []string{"x509", "mint", "-spiffeID", "example.org/a"}, ExitUsage, "invalid value \"example.org/a\" for flag -spiffeID"},
		{"x509 bad TTL", []string{"x509", "mint", "-spiffeID", "spiffe://example.org/a", "-ttl", "soon"}, ExitUsage, "-ttl"},
		{"x509 other trust domain", []string{"x509", "mint", "-spiffeID", "spiffe://other.org/a"}, ExitFailure,
			"spiffe-server x509 mint: admin: spiffe://other.org/a is not in trust domain example.org, the only one this server signs for"},
		{"x509 reserved", []string{"x509", "mint", "-spiffeID", "spiffe://example.org/spiffekit/server"}, ExitFailure, "is reserved for the server and its agents"},
		{"x509 bad DNS name", []string{"x509", "mint", "-spiffeID", "spiffe://example.org/a", "-dns", "a_b"}, ExitFailure, `"a_b"`},
		{"x509 unwritable", []string{"x509", "mint", "-spiffeID", "spiffe://example.org/a", "-write", filepath.Join(file, "sub")}, ExitFailure, "-write: mkdir " + file + ": not a directory"},
		{"jwt without audience", []string{"jwt", "mint", "-spiffeID", "spiffe://example.org/a"}, ExitUsage, "-audience is required"},
		{"jwt no audience", []string{"jwt", "mint", "-spiffeID", "spiffe://example.org/a", "-audience", ""}, ExitUsage, "-audience is required"},
		{"jwt reserved", []string{"jwt", "mint", "-spiffeID", "spiffe://example.org/spiffekit/agent/x", "-audience", "db"}, ExitFailure, "is reserved"},
		{"jwt unwritable", []string{"jwt", "mint", "-spiffeID", "spiffe://example.org/a", "-audience", "db", "-write", filepath.Join(file, "token")}, ExitFailure, "-write: "},
		{"unknown subcommand", []string{"x509", "sign"}, ExitUsage, `unknown command "x509 sign"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runAt(t, socket, tt.args...)
			assert.Equal(t, tt.code, r.code, r.stderr)
			assert.Empty(t, r.stdout)
			assert.Contains(t, r.stderr, tt.msg)
			if tt.code == ExitFailure {
				assert.Equal(t, 1, strings.Count(r.stderr, "\n"), r.stderr)
			}
		})
	}
	// Only the two mints whose files could not be written were made.
	assert.Equal(t, 2, strings.Count(logs.String(), "minted"), logs.String())

	// Without a server: one line.
	r := runAt(t, filepath.Join(t.TempDir(), "none.sock"), "jwt", "mint", "-spiffeID", "spiffe://example.org/a", "-audience", "db")
	assert.Equal(t, ExitFailure, r.code)
	assert.Equal(t, 1, strings.Count(r.stderr, "\n"), r.stderr)
}
