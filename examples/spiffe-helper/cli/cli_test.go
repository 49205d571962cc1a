package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

func run(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errs bytes.Buffer
	code = Main(ctx, args, &out, &errs)
	return code, out.String(), errs.String()
}

func TestMainUsage(t *testing.T) {
	dir := t.TempDir()
	code, stdout, stderr := run(t.Context(), "-h")
	assert.Equal(t, ExitOK, code)
	assert.Contains(t, stdout, "Usage: spiffe-helper [flags]")
	assert.Contains(t, stdout, "-daemon-mode")
	assert.Empty(t, stderr)

	for _, tt := range []struct {
		name   string
		args   []string
		config string
		stderr string
	}{
		{"unknown flag", []string{"-nope"}, "", "spiffe-helper: flag provided but not defined: -nope"},
		{"stray argument", []string{"x"}, "", `unexpected argument "x"`},
		{"no file", []string{"-config", filepath.Join(dir, "none.conf")}, "", "none.conf: no such file or directory"},
		{"bad key", nil, "svid_file_name = \"a\"\nsvid_key_file_nam = \"b\"", `helper.conf: line 2: unknown key "svid_key_file_nam"`},
		{"pid file without daemon mode", []string{"-daemon-mode=false"}, "jwt_bundle_file_name = \"b\"\npid_file_name = \"p\"\nrenew_signal = \"SIGHUP\"",
			"pid_file_name is set but daemon_mode is false"},
		{"bad address", nil, "jwt_bundle_file_name = \"b\"\nagent_address = \"http://x\"", "agent_address:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.config != "" {
				args = append(args, "-config", writeConfig(t, t.TempDir(), tt.config))
			}
			code, stdout, stderr := run(t.Context(), args...)
			assert.Equal(t, ExitUsage, code)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, tt.stderr)
			assert.Contains(t, stderr, `Run "spiffe-helper -h" for help.`)
		})
	}
}

// TestMainOnce: non-daemon mode, set in the file or by the flag, writes
// the files and exits 0, or exits 1 saying why it could not.
func TestMainOnce(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	s := startServer(t, time.Minute)
	dir := t.TempDir()
	conf := func(extra string) string {
		return writeConfig(t, dir, "agent_address = \""+strings.TrimPrefix(s.addr, "unix://")+"\"\ncert_dir = \""+filepath.Join(dir, "certs")+"\"\n"+
			x509Files+"\n"+extra)
	}
	code, _, stderr := run(t.Context(), "-config", conf("daemon_mode = false"))
	assert.Equal(t, ExitFailure, code)
	assert.Regexp(t, `spiffe-helper: writing the X.509 files: writing \S+/certs/svid_bundle.pem: no such file or directory\n$`, stderr)

	require.NoError(t, os.Mkdir(filepath.Join(dir, "certs"), 0o755))
	code, _, stderr = run(t.Context(), "-config", conf("cmd = \"/bin/false\""), "-daemon-mode=false")
	assert.Equal(t, ExitOK, code, stderr)
	assert.Contains(t, stderr, "cmd is set but daemon_mode is false: cmd is ignored")
	assert.Equal(t, os.FileMode(0o600), mode(t, filepath.Join(dir, "certs", "svid_key.pem")))
	assert.Equal(t, os.FileMode(0o644), mode(t, filepath.Join(dir, "certs", "svid.pem")))
}

// TestMainDaemon: daemon mode runs until its context is done and exits 0;
// it exits 1 when it cannot go on.
func TestMainDaemon(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	s := startServer(t, time.Minute)
	dir := t.TempDir()
	t.Setenv(workloadapi.SocketEnv, s.addr)
	path := writeConfig(t, dir, "cert_dir = \""+dir+"\"\n"+x509Files+"\n")
	ctx, cancel := context.WithCancel(t.Context())
	var stderr logtest.Buffer
	done := make(chan int, 1)
	go func() { done <- Main(ctx, []string{"-config", path}, io.Discard, &stderr) }()
	waitFor(t, "the files", func() bool { return stderr.Contains("X.509 files written") })
	want := s.handler.Snapshot(strconv.Itoa(os.Getuid())).X509SVIDs[0].Certificates[0].SerialNumber.String()
	assert.Equal(t, want, serialOf(t, filepath.Join(dir, "svid.pem")))
	cancel()
	assert.Equal(t, ExitOK, <-done)

	lis, err := net.Listen("tcp", ":0")
	require.NoError(t, err)
	defer lis.Close()
	path = writeConfig(t, dir, fmt.Sprintf("jwt_bundle_file_name = \"b\"\nhealth_checks {\nlistener_enabled = true\nbind_port = %d\n}", lis.Addr().(*net.TCPAddr).Port))
	code, _, errs := run(t.Context(), "-config", path)
	assert.Equal(t, ExitFailure, code)
	assert.Contains(t, errs, "address already in use")
}

// ExampleMain writes the files of an init container: once, without daemon
// mode, from an agent whose socket SPIFFE_ENDPOINT_SOCKET names.
func ExampleMain() {
	addr, stop := exampleServer()
	defer stop()
	dir, err := os.MkdirTemp("", "certs")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	config := filepath.Join(dir, "helper.conf")
	os.WriteFile(config, []byte(`
cert_dir = "`+dir+`"
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
`), 0o600)
	os.Setenv(workloadapi.SocketEnv, addr)
	defer os.Unsetenv(workloadapi.SocketEnv)

	code := Main(context.Background(), []string{"-config", config, "-daemon-mode=false"}, os.Stdout, io.Discard)
	fmt.Println("exit", code)
	for _, name := range []string{"svid.pem", "svid_key.pem", "svid_bundle.pem"} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(name, info.Mode())
	}
	// Output:
	// exit 0
	// svid.pem -rw-r--r--
	// svid_key.pem -rw-------
	// svid_bundle.pem -rw-r--r--
}

// exampleServer runs an in-process CA and Workload API server
// (workloadapi/endpoint) on a unix socket, giving every process of this
// user the identity spiffe://example.org/web, and returns its address.
func exampleServer() (addr string, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	must := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}
	td := spiffeid.RequireTrustDomainFromString("example.org")
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	root, err := ca.CreateRoot(ctx, ca.RootParams{Signer: caKey, TrustDomain: td})
	must(err)
	authority, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: caKey, Certificate: root})
	must(err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	id := spiffeid.RequireFromPath(td, "/web")
	chain, err := authority.SignX509SVID(ctx, ca.X509SVIDParams{PublicKey: key.Public(), ID: id})
	must(err)
	handler := endpoint.NewMemoryHandler(endpoint.MemoryConfig{})
	must(handler.Set(strconv.Itoa(os.Getuid()), &endpoint.Snapshot{
		TrustDomain: td,
		X509SVIDs:   []*x509svid.SVID{{ID: id, Certificates: chain, PrivateKey: key}},
		Bundles:     []*spiffebundle.Bundle{spiffebundle.FromX509Authorities(td, []*x509.Certificate{root})},
	}))
	dir, err := os.MkdirTemp("", "wl")
	must(err)
	lis, err := endpoint.ListenUnix(filepath.Join(dir, "agent.sock"), 0o700)
	must(err)
	srv, err := endpoint.New(endpoint.Config{Handler: handler})
	must(err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	return "unix://" + filepath.Join(dir, "agent.sock"), func() {
		cancel()
		<-done
		os.RemoveAll(dir)
	}
}
