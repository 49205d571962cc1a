// Package kubetest gives tests a real Kubernetes API server: kube-apiserver
// on loopback over Debian's etcd, with throwaway certificates, a service
// account issuer and signing key, an admin token and RBAC. There is no
// controller-manager and no kubelet: a test creates the namespaces,
// service accounts, nodes and pods it needs as API objects (a pod with
// its node name set is "scheduled"), and pod-bound service account tokens
// through the TokenRequest API, as the kubelet would. Test only.
//
// The binaries come from scripts/kube-binaries, whose output directory
// [EnvBin] names; etcd is found on PATH. Without them a test skips, saying
// why, unless $SPIFFEKIT_TEST_REQUIRE names kube ([Required]; CI sets it):
// then it fails.
//
// A package's tests share one API server, started on first use and
// stopped by [Main]; [Start] starts another (another cluster, with its own
// issuer) that the test's end stops. All of them share one etcd, each
// under its own key prefix.
//
//	func TestMain(m *testing.M) { kubetest.Main(m) }
//
//	func TestAttest(t *testing.T) {
//		c := kubetest.Shared(t)
//		ns := c.Namespace(t)
//		c.ServiceAccount(t, ns, "agent")
//		node := c.Node(t, "node-1", nil)
//		pod := c.Pod(t, ns, "agent-1", "agent", node.Name, nil)
//		token := c.Token(t, pod, "spiffekit-server")
//		...
//	}
package kubetest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/spiffekit/spiffekit/internal/testing/component"
)

// EnvBin names the environment variable holding the directory of the
// kube-apiserver (and kubelet) binaries: the output of
// scripts/kube-binaries.
const EnvBin = "SPIFFEKIT_KUBE_BIN"

// EnvRequire names the environment variable listing, separated by commas,
// the components tests must not skip for want of; CI sets it. With "kube"
// in it, a test that cannot start an API server fails instead of skipping.
const EnvRequire = component.EnvRequire

// Required reports whether $SPIFFEKIT_TEST_REQUIRE names kube.
func Required() bool {
	return component.Required("kube")
}

// StartTimeout bounds the start of etcd and of each API server, up to a
// ready /readyz. A quiet machine needs a few seconds; a loaded one more.
const StartTimeout = 2 * time.Minute

// pkg is the state of the test binary: the shared etcd and API server,
// started on first use, stopped by Main. Tests only read it after once.
var pkg struct {
	mu      sync.Mutex
	etcd    *process
	etcdURL string
	shared  *Cluster
	err     error // the shared start's failure, reported to every test
	dir     string
	n       int // clusters started, for etcd prefixes and issuers
}

// Main runs the package's tests, stops what they started and exits. A
// TestMain that needs another package's Main too calls [Stop] instead.
func Main(m *testing.M) {
	os.Exit(Run(m))
}

// Run is Main without the exit, for a TestMain with more to do.
func Run(m *testing.M) int {
	code := m.Run()
	Stop()
	return code
}

// Stop stops the shared API server and etcd, for a TestMain that runs the
// tests itself (another package's Main): call it after the tests.
func Stop() {
	pkg.mu.Lock()
	defer pkg.mu.Unlock()
	if pkg.shared != nil {
		pkg.shared.stop()
	}
	if pkg.etcd != nil {
		pkg.etcd.stop()
	}
	if pkg.dir != "" {
		os.RemoveAll(pkg.dir)
	}
	pkg.shared, pkg.etcd, pkg.dir, pkg.err = nil, nil, "", nil
}

// binaries returns the kube-apiserver and etcd paths, or skips t (fails it
// when kube is required) saying what is missing.
func binaries(t testing.TB) (apiserver, etcd string) {
	t.Helper()
	missing := func(what string) {
		t.Helper()
		if Required() {
			t.Fatalf("kubetest: kube is required ($%s) but cannot run here: %s", EnvRequire, what)
		}
		t.Skipf("kubetest: %s", what)
	}
	dir := os.Getenv(EnvBin)
	if dir == "" {
		missing(EnvBin + " is not set: build the binaries with scripts/kube-binaries and set it to the directory it prints")
	}
	apiserver = filepath.Join(dir, "kube-apiserver")
	if _, err := os.Stat(apiserver); err != nil {
		missing(fmt.Sprintf("no kube-apiserver in %s=%s: %v", EnvBin, dir, err))
	}
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		missing("no etcd on PATH: install Debian's etcd-server")
	}
	return apiserver, etcd
}

// Shared returns the package's API server, starting it (and etcd) on first
// use. It is never stopped before [Main] returns: tests share it, so each
// works in namespaces of its own ([Cluster.Namespace]).
func Shared(t testing.TB) *Cluster {
	t.Helper()
	apiserver, etcd := binaries(t)
	pkg.mu.Lock()
	defer pkg.mu.Unlock()
	if pkg.shared == nil && pkg.err == nil {
		pkg.shared, pkg.err = startCluster(apiserver, etcd)
	}
	if pkg.err != nil {
		t.Fatalf("kubetest: %v", pkg.err)
	}
	return pkg.shared
}

// Start starts a new API server, a cluster of its own with its own
// service account issuer and key, on the shared etcd. It is stopped when
// t ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	apiserver, etcd := binaries(t)
	pkg.mu.Lock()
	c, err := startCluster(apiserver, etcd)
	pkg.mu.Unlock()
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	t.Cleanup(c.stop)
	return c
}

// startCluster starts etcd if it is not running, then an API server. The
// caller holds pkg.mu.
func startCluster(apiserver, etcd string) (*Cluster, error) {
	if pkg.dir == "" {
		dir, err := os.MkdirTemp("", "kubetest")
		if err != nil {
			return nil, err
		}
		pkg.dir = dir
	}
	if pkg.etcd == nil {
		p, url, err := startEtcd(etcd, filepath.Join(pkg.dir, "etcd"))
		if err != nil {
			return nil, err
		}
		pkg.etcd, pkg.etcdURL = p, url
	}
	pkg.n++
	name := fmt.Sprintf("cluster-%d", pkg.n)
	return startAPIServer(apiserver, name, filepath.Join(pkg.dir, name), pkg.etcdURL)
}

// startEtcd starts etcd with its data in dir, on free loopback ports, and
// waits until it is healthy.
func startEtcd(bin, dir string) (*process, string, error) {
	var lastErr error
	for range 3 { // a free port may be taken before etcd binds it
		client, peer := freePort(), freePort()
		url := "http://" + client
		p, err := startProcess("etcd", dir, bin,
			"--name", "kubetest", "--data-dir", filepath.Join(dir, "data"),
			"--listen-client-urls", url, "--advertise-client-urls", url,
			"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
			"--initial-cluster", "kubetest=http://"+peer, "--log-level", "warn")
		if err != nil {
			return nil, "", err
		}
		err = p.waitReady(func(ctx context.Context) error { return get(ctx, http.DefaultClient, url+"/health", "") })
		if err == nil {
			return p, url, nil
		}
		p.stop()
		lastErr = err
	}
	return nil, "", lastErr
}

// process is a started program whose output goes to a file.
type process struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{}
	err       error
}

func startProcess(name, dir, bin string, args ...string) (*process, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	log := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group: a signal to the test's group (^C) reaches
	// the test, whose clean-up stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, log: log, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// waitReady polls ready until it succeeds, the process exits or
// StartTimeout passes.
func (p *process) waitReady(ready func(context.Context) error) error {
	deadline := time.Now().Add(StartTimeout)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		last = ready(ctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%v) before it was ready; its log:\n%s", p.name, p.err, p.tail())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready after %s (last: %v); its log:\n%s", p.name, StartTimeout, last, p.tail())
}

// tail returns the end of the process's log.
func (p *process) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 8<<10 {
		b = b[len(b)-8<<10:]
	}
	return string(b)
}

// stop ends the process (SIGTERM, then SIGKILL after 10 s) and reaps it.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// get fetches url with an optional bearer token and fails unless the
// answer is 200.
func get(ctx context.Context, c *http.Client, url, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// freePort returns a loopback address that was free a moment ago.
func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("kubetest: no free loopback port: %v", err))
	}
	defer l.Close()
	return l.Addr().String()
}

// startAPIServer writes the certificates, keys and token file of cluster
// name into dir and starts its API server on etcdURL, under the prefix
// /<name>, waiting until /readyz answers.
func startAPIServer(bin, name, dir, etcdURL string) (*Cluster, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	pki, err := writePKI(dir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Name: name, Issuer: "https://" + name + ".kubetest.invalid", CA: pki.caPEM, dir: dir,
		adminToken: pki.adminToken}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pki.caPEM)
	probe := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer probe.CloseIdleConnections()
	var lastErr error
	for range 3 { // a free port may be taken before the API server binds it
		addr := freePort()
		_, port, _ := net.SplitHostPort(addr)
		p, err := startProcess("kube-apiserver", dir, bin,
			"--etcd-servers="+etcdURL, "--etcd-prefix=/"+name,
			"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+port,
			"--cert-dir="+filepath.Join(dir, "certs"),
			"--tls-cert-file="+pki.servingCert, "--tls-private-key-file="+pki.servingKey,
			"--service-account-issuer="+c.Issuer,
			"--service-account-key-file="+pki.saPub, "--service-account-signing-key-file="+pki.saKey,
			"--token-auth-file="+pki.tokens, "--anonymous-auth=false",
			"--authorization-mode=RBAC",
			"--service-cluster-ip-range=10.96.0.0/24",
			// Less work for a test server: no request fairness queues,
			// no watch cache, no endpoints of its own to reconcile.
			"--enable-priority-and-fairness=false", "--watch-cache=false",
			"--endpoint-reconciler-type=none", "--profiling=false")
		if err != nil {
			return nil, err
		}
		c.URL = "https://" + addr
		err = p.waitReady(func(ctx context.Context) error { return get(ctx, probe, c.URL+"/readyz", c.adminToken) })
		if err == nil {
			c.proc = p
			break
		}
		p.stop()
		lastErr = err
	}
	if c.proc == nil {
		return nil, lastErr
	}
	c.AdminKubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := c.writeKubeconfig(c.AdminKubeconfig, c.adminToken); err != nil {
		c.stop()
		return nil, err
	}
	c.Client, err = kubernetes.NewForConfig(c.RESTConfig(c.adminToken))
	if err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// Cluster is a running API server and what a test needs to use it.
type Cluster struct {
	// Name names the cluster ("cluster-1"); it is also its etcd prefix.
	Name string
	// URL is the API server's address, https://127.0.0.1:<port>.
	URL string
	// CA is the PEM certificate of the CA of the API server's serving
	// certificate.
	CA []byte
	// Issuer is the service account issuer: the "iss" of its tokens.
	Issuer string
	// AdminKubeconfig is a kubeconfig file of the cluster's admin
	// (system:masters: RBAC does not apply).
	AdminKubeconfig string
	// Client is the admin's client.
	Client kubernetes.Interface

	dir, adminToken string
	proc            *process
}

// RESTConfig returns a client configuration of the API server
// authenticating with the bearer token.
func (c *Cluster) RESTConfig(token string) *rest.Config {
	return &rest.Config{
		Host:            c.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.CA},
	}
}

// stop stops the API server.
func (c *Cluster) stop() {
	if c.proc != nil {
		c.proc.stop()
	}
}

// Log returns the end of the API server's log.
func (c *Cluster) Log() string { return c.proc.tail() }

// ctx returns a context for one API request of t.
func ctx(t testing.TB) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), 30*time.Second)
}

// safeName turns a test name into a Kubernetes name prefix.
func safeName(s string) string {
	s = strings.ToLower(s)
	var b strings.Builder
	for _, r := range s {
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > 40 {
		out = strings.Trim(out[:40], "-")
	}
	if out == "" {
		out = "test"
	}
	return out
}
