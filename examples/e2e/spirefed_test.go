package e2e_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/component"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// EnvSPIREBinDir names the directory holding spire-server and spire-agent
// for TestFederationWithSPIRE (scripts/federation-spire builds them).
const EnvSPIREBinDir = "SPIFFEKIT_SPIRE_BIN_DIR"

var spireTD = spiffeid.RequireTrustDomainFromString("spire.test")

// spireProc is a SPIRE program the test started, with its output in a
// file; it is killed when the test ends.
type spireProc struct {
	cmd *exec.Cmd
	log string
}

func startSPIRE(t *testing.T, env []string, logFile, bin string, args ...string) *spireProc {
	t.Helper()
	f, err := os.Create(logFile)
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("output of %s:\n%s", filepath.Base(bin), b)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		f.Close()
	})
	return &spireProc{cmd: cmd, log: logFile}
}

func (p *spireProc) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// webPKI writes a CA and a certificate for 127.0.0.1 that it signed (the
// Web PKI of the https_web bundle endpoints) under dir, and returns the
// files: the CA, the certificate chain and its key.
func webPKI(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test web CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2),
		Subject: pkix.Name{CommonName: "127.0.0.1"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca, key.Public(), caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	caFile, certFile, keyFile = filepath.Join(dir, "web-ca.pem"), filepath.Join(dir, "web-cert.pem"), filepath.Join(dir, "web-key.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644))
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), 0o644))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	return caFile, certFile, keyFile
}

// TestFederationWithSPIRE federates a spiffekit trust domain (example.org,
// the built programs) and a SPIRE v1.13 trust domain (spire.test, SPIRE's
// own server and agent) both ways, over https_spiffe and then over
// https_web, each side's relationship made with its own CLI from the other
// side's bundle document; a workload of each side then authenticates the
// other over mTLS, each authorizing the other's exact SPIFFE ID. It needs
// SPIRE's programs ($SPIFFEKIT_SPIRE_BIN_DIR, built by
// scripts/federation-spire), so CI does not run it.
func TestFederationWithSPIRE(t *testing.T) {
	binDir := os.Getenv(EnvSPIREBinDir)
	if binDir == "" {
		component.Unavailable(t, "spire", "$"+EnvSPIREBinDir+" names no directory of SPIRE's programs (scripts/federation-spire builds them)")
	}
	for _, profile := range []string{"https_spiffe", "https_web"} {
		t.Run(profile, func(t *testing.T) { federateWithSPIRE(t, binDir, profile) })
	}
}

func federateWithSPIRE(t *testing.T, binDir, profile string) {
	spireServer, spireAgent := filepath.Join(binDir, "spire-server"), filepath.Join(binDir, "spire-agent")
	dir := progtest.ShortTemp(t)
	caFile, certFile, keyFile := webPKI(t, dir)
	kitFed := progtest.FreePort(t)
	extra := []string{"-federation-bind", kitFed}
	if profile == "https_web" {
		extra = append(extra, "-federation-profile", "https_web", "-federation-cert", certFile, "-federation-key", keyFile,
			"-federation-web-pki-roots", caFile)
	}
	e := progtest.NewEnv(t, extra...)
	kit := e.StartServer()
	kitBundle := filepath.Join(dir, "example.org.json")
	require.NoError(t, os.WriteFile(kitBundle, []byte(progtest.Must(t, e.ServerBin, "bundle", "show", "-format", "spiffe", "-admin-socket", e.AdminSock)), 0o644))

	// SPIRE's server, its bundle endpoint on the same profile.
	spirePort, spireFed := progtest.FreePort(t), progtest.FreePort(t)
	_, spireFedPort, _ := net.SplitHostPort(spireFed)
	_, spirePortN, _ := net.SplitHostPort(spirePort)
	endpointProfile := ""
	if profile == "https_web" {
		endpointProfile = fmt.Sprintf(`
            profile "https_web" {
                serving_cert_file {
                    cert_file_path = %q
                    key_file_path = %q
                    file_sync_interval = "1m"
                }
            }`, certFile, keyFile)
	}
	sock := filepath.Join(dir, "spire-server.sock")
	conf := fmt.Sprintf(`server {
    bind_address = "127.0.0.1"
    bind_port = "%s"
    socket_path = %q
    trust_domain = "spire.test"
    data_dir = %q
    log_level = "DEBUG"
    federation {
        bundle_endpoint {
            address = "127.0.0.1"
            port = %s%s
        }
    }
}
plugins {
    DataStore "sql" {
        plugin_data {
            database_type = "sqlite3"
            connection_string = %q
        }
    }
    KeyManager "memory" {
        plugin_data {}
    }
    NodeAttestor "join_token" {
        plugin_data {}
    }
}
`, spirePortN, sock, filepath.Join(dir, "spire-server"), spireFedPort, endpointProfile, filepath.Join(dir, "spire-server", "datastore.sqlite3"))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "server.conf"), []byte(conf), 0o644))
	// SPIRE's https_web client trusts the system roots: the test's CA
	// stands for them.
	srv := startSPIRE(t, []string{"SSL_CERT_FILE=" + caFile}, filepath.Join(dir, "spire-server.log"), spireServer, "run", "-config", filepath.Join(dir, "server.conf"))
	spire := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(spireServer, append(args, "-socketPath", sock)...).CombinedOutput()
		require.NoError(t, err, "spire-server %s: %s\n%s", strings.Join(args, " "), out, srv.output())
		return string(out)
	}
	progtest.WaitFor(t, "SPIRE's server to be ready", func() bool {
		return exec.Command(spireServer, "healthcheck", "-socketPath", sock).Run() == nil
	})
	spireBundle := filepath.Join(dir, "spire.test.json")
	require.NoError(t, os.WriteFile(spireBundle, []byte(spire("bundle", "show", "-format", "spiffe")), 0o644))

	// Each side makes its relationship with its CLI, from the other's
	// bundle document.
	kitURL, spireURL := "https://"+kitFed, "https://"+spireFed
	if profile == "https_spiffe" {
		spire("federation", "create", "-trustDomain", "example.org", "-bundleEndpointURL", kitURL,
			"-bundleEndpointProfile", "https_spiffe", "-endpointSpiffeID", "spiffe://example.org/spiffekit/server",
			"-trustDomainBundlePath", kitBundle, "-trustDomainBundleFormat", "spiffe")
		progtest.Must(t, e.ServerBin, "federation", "create", "-socketPath", e.AdminSock, "-trustDomain", "spire.test",
			"-bundleEndpointURL", spireURL, "-bundleEndpointProfile", "https_spiffe",
			"-endpointSpiffeID", "spiffe://spire.test/spire/server",
			"-trustDomainBundlePath", spireBundle, "-trustDomainBundleFormat", "spiffe")
	} else {
		spire("federation", "create", "-trustDomain", "example.org", "-bundleEndpointURL", kitURL,
			"-bundleEndpointProfile", "https_web")
		progtest.Must(t, e.ServerBin, "federation", "create", "-socketPath", e.AdminSock, "-trustDomain", "spire.test",
			"-bundleEndpointURL", spireURL, "-bundleEndpointProfile", "https_web")
	}

	// Each side fetches the other's bundle from its endpoint.
	progtest.WaitFor(t, "SPIRE to fetch example.org's bundle", func() bool {
		out, err := exec.Command(spireServer, "bundle", "list", "-id", "spiffe://example.org", "-socketPath", sock).CombinedOutput()
		return err == nil && strings.Contains(string(out), "BEGIN CERTIFICATE")
	}, kit)
	progtest.WaitFor(t, "spiffekit to fetch spire.test's bundle", func() bool {
		out, _, code := progtest.Run(t, nil, e.ServerBin, "bundle", "show", "-id", "spire.test", "-admin-socket", e.AdminSock)
		return code == 0 && strings.Contains(out, "BEGIN CERTIFICATE")
	}, kit)

	// A workload on each side, federating with the other.
	uid := strconv.Itoa(os.Getuid())
	e.StartAgent(e.Token())
	e.Entry(e.AgentID(), "spiffe://example.org/kit-web", "unix:uid:"+uid, "-federates-with", "spire.test")

	token := strings.Fields(spire("token", "generate", "-spiffeID", "spiffe://spire.test/agent"))[1]
	agentSock := filepath.Join(dir, "spire-agent.sock")
	agentConf := fmt.Sprintf(`agent {
    data_dir = %q
    log_level = "DEBUG"
    server_address = "127.0.0.1"
    server_port = "%s"
    socket_path = %q
    trust_domain = "spire.test"
    insecure_bootstrap = true
    join_token = %q
}
plugins {
    NodeAttestor "join_token" {
        plugin_data {}
    }
    KeyManager "memory" {
        plugin_data {}
    }
    WorkloadAttestor "unix" {
        plugin_data {}
    }
}
`, filepath.Join(dir, "spire-agent"), spirePortN, agentSock, token)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "agent.conf"), []byte(agentConf), 0o644))
	startSPIRE(t, nil, filepath.Join(dir, "spire-agent.log"), spireAgent, "run", "-config", filepath.Join(dir, "agent.conf"))
	spire("entry", "create", "-parentID", "spiffe://spire.test/agent", "-spiffeID", "spiffe://spire.test/spire-web",
		"-selector", "unix:uid:"+uid, "-federatesWith", "spiffe://example.org")

	kitSrc := federatedSource(t, "unix://"+e.APISock, spireTD)
	spireSrc := federatedSource(t, "unix://"+agentSock, spiffeid.RequireTrustDomainFromString("example.org"))
	kitID, spireID := spiffeid.RequireFromString("spiffe://example.org/kit-web"), spiffeid.RequireFromString("spiffe://spire.test/spire-web")
	require.Equal(t, kitID, mtlsPeer(t, spireSrc, kitSrc, kitID, spireID), "SPIRE's workload serving, spiffekit's dialing")
	require.Equal(t, spireID, mtlsPeer(t, kitSrc, spireSrc, spireID, kitID), "spiffekit's workload serving, SPIRE's dialing")
}

// federatedSource returns an X509 source of the Workload API at addr once
// it holds the bundle of td.
func federatedSource(t *testing.T, addr string, td spiffeid.TrustDomain) *workloadapi.X509Source {
	t.Helper()
	var src *workloadapi.X509Source
	progtest.WaitFor(t, addr+" to hold "+td.Name()+"'s bundle", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		c, err := workloadapi.FetchX509Context(ctx, workloadapi.WithAddr(addr))
		if err != nil {
			progtest.Note(t, "FetchX509Context: "+err.Error())
			return false
		}
		_, err = c.Bundles.GetX509BundleForTrustDomain(td)
		if err != nil {
			progtest.Note(t, err.Error())
		}
		return err == nil
	})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(addr)))
	require.NoError(t, err)
	t.Cleanup(func() { src.Close() })
	return src
}

// mtlsPeer has server listen with mTLS authorizing exactly clientID and
// client dial it authorizing exactly serverID; it returns the ID the
// server saw.
func mtlsPeer(t *testing.T, server, client *workloadapi.X509Source, clientID, serverID spiffeid.ID) spiffeid.ID {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", tlsconfig.MTLSServerConfig(server, server, tlsconfig.AuthorizeID(clientID)))
	require.NoError(t, err)
	defer lis.Close()
	type result struct {
		id  spiffeid.ID
		err error
	}
	got := make(chan result, 1)
	go func() {
		conn, err := lis.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer conn.Close()
		tc := conn.(*tls.Conn)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(tc).ReadString('\n')
		if err != nil {
			got <- result{err: err}
			return
		}
		_, err = tc.Write([]byte("pong " + line))
		if err != nil {
			got <- result{err: err}
			return
		}
		id, err := x509svid.IDFromCert(tc.ConnectionState().PeerCertificates[0])
		got <- result{id, err}
	}()
	conn, err := tls.Dial("tcp", lis.Addr().String(), tlsconfig.MTLSClientConfig(client, client, tlsconfig.AuthorizeID(serverID)))
	require.NoError(t, err)
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = conn.Write([]byte("ping\n"))
	require.NoError(t, err)
	reply, err := bufio.NewReader(conn).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "pong ping\n", reply)
	r := <-got
	require.NoError(t, r.err)
	return r.id
}
