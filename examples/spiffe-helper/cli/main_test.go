package cli

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// The test binary is also the process that cmd starts: with
// RELOADER_LOG set, it appends to that file the serial of the certificate
// in RELOADER_CERT, its arguments and which of the files of RELOADER_FILES
// (a list separated by os.PathListSeparator) are missing, at start and at
// each SIGUSR1, SIGHUP or SIGWINCH, then waits for SIGTERM (which it
// ignores with RELOADER_IGNORE_TERM set).
func TestMain(m *testing.M) {
	if log := os.Getenv("RELOADER_LOG"); log != "" {
		os.Exit(reloader(log, os.Getenv("RELOADER_CERT")))
	}
	os.Exit(m.Run())
}

func reloader(log, certFile string) int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGHUP, syscall.SIGWINCH, syscall.SIGTERM)
	if os.Getenv("RELOADER_IGNORE_TERM") != "" {
		signal.Ignore(syscall.SIGTERM)
	}
	record := func(event string) {
		serial := "unreadable"
		if data, err := os.ReadFile(certFile); err == nil {
			if block, _ := pem.Decode(data); block != nil {
				if cert, err := x509.ParseCertificate(block.Bytes); err == nil {
					serial = cert.SerialNumber.String()
				}
			}
		}
		var missing []string
		for _, path := range filepath.SplitList(os.Getenv("RELOADER_FILES")) {
			if _, err := os.Stat(path); err != nil {
				missing = append(missing, filepath.Base(path))
			}
		}
		f, err := os.OpenFile(log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return
		}
		fmt.Fprintf(f, "%d\t%s\t%s\t%s\t%s\n", os.Getpid(), event, serial, strings.Join(os.Args[1:], ","), strings.Join(missing, ","))
		f.Close()
	}
	record("start")
	for sig := range sigs {
		if sig == syscall.SIGTERM {
			record("term")
			return 0
		}
		record(unix.SignalName(sig.(syscall.Signal)))
	}
	return 0
}

// reloads returns the lines the reloader processes wrote to log.
func reloads(t testing.TB, log string) [][]string {
	t.Helper()
	data, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var out [][]string
	for line := range strings.Lines(string(data)) {
		out = append(out, strings.Split(strings.TrimSuffix(line, "\n"), "\t"))
	}
	return out
}

// server is an in-process Workload API (workloadapi/endpoint) that gives
// this process's uid the SVID of a test CA with an intermediate, and
// JWT-SVIDs.
type server struct {
	addr    string
	td      spiffeid.TrustDomain
	root    *testca.CA
	inter   *testca.CA
	handler *endpoint.MemoryHandler
	jwt     *ca.JWTAuthority
	fed     *spiffebundle.Bundle // a federated trust domain's bundle
	jwtTTL  time.Duration
	// jwtRefused, while set, makes every JWT-SVID request fail.
	jwtRefused atomic.Bool
}

func startServer(t *testing.T, jwtTTL time.Duration) *server {
	t.Helper()
	s := &server{td: spiffeid.RequireTrustDomainFromString("example.org"), jwtTTL: jwtTTL}
	s.root = testca.New(t, s.td)
	s.inter = s.root.NewIntermediate(t)
	var err error
	s.jwt, err = ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: testca.NewECKey(t)})
	require.NoError(t, err)
	other := testca.New(t, spiffeid.RequireTrustDomainFromString("other.org"))
	s.fed = spiffebundle.FromX509Authorities(other.TrustDomain(), []*x509.Certificate{other.Root()})
	s.handler = endpoint.NewMemoryHandler(endpoint.MemoryConfig{
		SignJWT: func(ctx context.Context, id spiffeid.ID, audience []string) (string, error) {
			if s.jwtRefused.Load() {
				return "", errors.New("JWT-SVIDs refused by the test")
			}
			return s.jwt.SignJWTSVID(ctx, ca.JWTSVIDParams{ID: id, Audience: audience, TTL: s.jwtTTL})
		},
	})
	s.rotate(t)
	dir, err := os.MkdirTemp("", "helper")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "api.sock")
	lis, err := endpoint.ListenUnix(path, 0o700)
	require.NoError(t, err)
	srv, err := endpoint.New(endpoint.Config{Handler: s.handler})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() { cancel(); <-done })
	s.addr = "unix://" + path
	return s
}

// rotate gives the caller a new SVID (with hint "main", and a second one
// with hint "other") and returns the first.
func (s *server) rotate(t *testing.T, svids ...*x509svid.SVID) *x509svid.SVID {
	t.Helper()
	if len(svids) == 0 {
		main := s.inter.NewSVID(t, "/web")
		main.Hint = "main"
		second := s.inter.NewSVID(t, "/db")
		second.Hint = "other"
		svids = []*x509svid.SVID{main, second}
	}
	bundle := spiffebundle.FromX509Authorities(s.td, []*x509.Certificate{s.root.Root()})
	require.NoError(t, bundle.AddJWTAuthority(s.jwt.KeyID(), s.jwt.PublicKey()))
	require.NoError(t, s.handler.Set(strconv.Itoa(os.Getuid()), &endpoint.Snapshot{
		TrustDomain: s.td,
		X509SVIDs:   svids,
		Bundles:     []*spiffebundle.Bundle{bundle, s.fed},
	}))
	return svids[0]
}

// readCerts parses the PEM certificates of a file.
func readCerts(t testing.TB, path string) []*x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		require.Equal(t, "CERTIFICATE", block.Type)
		cert, err := x509.ParseCertificate(block.Bytes)
		require.NoError(t, err)
		out = append(out, cert)
	}
	require.Empty(t, strings.TrimSpace(string(data)), "nothing but certificates")
	return out
}

// mode returns the permission bits of the file at path.
func mode(t testing.TB, path string) os.FileMode {
	t.Helper()
	info, err := os.Stat(path)
	require.NoError(t, err)
	return info.Mode().Perm()
}

// waitFor waits, bounded, until f holds.
func waitFor(t testing.TB, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: still not so after 30s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// x509Files are the configuration lines, without a final newline, that
// name the three X.509 files svid.pem, svid_key.pem and svid_bundle.pem.
const x509Files = `svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"`

// writeConfig writes a configuration file and returns its path.
func writeConfig(t testing.TB, dir, text string) string {
	t.Helper()
	path := filepath.Join(dir, "helper.conf")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	return path
}
