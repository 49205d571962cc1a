// Package swtpmtest starts software TPMs (swtpm, from Debian's swtpm and
// swtpm-tools packages) for tests: each is manufactured by swtpm_setup with
// RSA-2048 and ECC P-384 endorsement keys, their certificates issued by a
// local CA ([CA]) and stored in NV (0x01c00002 and 0x01c00016), and serves
// TPM commands on a unix socket in the test's temporary directory.
//
//	ca := swtpmtest.NewCA(t)
//	tpm := swtpmtest.New(t, ca) // skips, or fails under SPIFFEKIT_TEST_REQUIRE=swtpm
//	// tpm.Socket is the path to give the TPM client; ca.Roots(t) the EK CAs.
//
// Without the swtpm programs, New skips the test saying what to install,
// unless $SPIFFEKIT_TEST_REQUIRE (a comma-separated list) names swtpm:
// then it fails it, so that CI cannot pass without running the tests.
package swtpmtest

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/component"
)

// Install is what a machine needs for these tests.
const Install = "apt-get install --no-install-recommends swtpm swtpm-tools tpm2-tools"

// Available reports whether the swtpm programs are on PATH, and if not,
// which is missing.
func Available() (bool, string) {
	for _, p := range []string{"swtpm", "swtpm_setup", "swtpm_localca"} {
		if _, err := exec.LookPath(p); err != nil {
			return false, p + " is not installed (" + Install + ")"
		}
	}
	return true, ""
}

// Require skips t when swtpm is missing, or fails it when
// $SPIFFEKIT_TEST_REQUIRE names swtpm.
func Require(t testing.TB) {
	t.Helper()
	ok, why := Available()
	if ok {
		return
	}
	component.Unavailable(t, "swtpm", why)
}

// CA is a local EK CA, swtpm_localca's root and issuing certificates and
// keys in a directory. It is created with the first TPM it provisions.
type CA struct {
	dir string
	mu  sync.Mutex // swtpm_localca locks the directory too; this keeps our own calls in order
}

// NewCA returns a CA in a temporary directory of t.
func NewCA(t testing.TB) *CA {
	t.Helper()
	return &CA{dir: t.TempDir()}
}

// Roots returns the CA's certificates, root and issuer, as a server would
// configure them. It fails t before the CA has provisioned a TPM.
func (ca *CA) Roots(t testing.TB) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for _, name := range []string{"swtpm-localca-rootca-cert.pem", "issuercert.pem"} {
		b, err := os.ReadFile(filepath.Join(ca.dir, name))
		if err != nil {
			t.Fatalf("swtpmtest: CA certificate: %v", err)
		}
		c, err := pemutil.ParseCertificates(b)
		if err != nil {
			t.Fatalf("swtpmtest: CA certificate %s: %v", name, err)
		}
		certs = append(certs, c...)
	}
	return certs
}

// BundleFile writes the CA's certificates to a PEM file in a temporary
// directory of t and returns its path.
func (ca *CA) BundleFile(t testing.TB) string {
	t.Helper()
	var pem []byte
	for _, name := range []string{"swtpm-localca-rootca-cert.pem", "issuercert.pem"} {
		b, err := os.ReadFile(filepath.Join(ca.dir, name))
		if err != nil {
			t.Fatalf("swtpmtest: CA certificate: %v", err)
		}
		pem = append(pem, b...)
	}
	path := filepath.Join(t.TempDir(), "ek-ca.pem")
	if err := os.WriteFile(path, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TPM is a running swtpm.
type TPM struct {
	// Socket is the unix socket serving TPM 2.0 commands (swtpm's unixio
	// server: raw commands, one connection at a time).
	Socket string
	// State is the directory of the TPM's state.
	State string

	pid int // of the swtpm process
}

// CPUTime returns the CPU time, user and system, the TPM's swtpm process
// has used so far, for benchmarks that count the TPM's work beside their
// own (in clock ticks of 10 ms, as /proc tells it).
func (tpm *TPM) CPUTime() (time.Duration, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(tpm.pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("swtpmtest: %w", err)
	}
	// The fields after the command's name, which is in parentheses: utime
	// and stime are the 12th and 13th, in clock ticks (100 Hz).
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("swtpmtest: unexpected /proc/%d/stat", tpm.pid)
	}
	utime, err1 := strconv.Atoi(f[11])
	stime, err2 := strconv.Atoi(f[12])
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("swtpmtest: unexpected /proc/%d/stat", tpm.pid)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// ProcessCPUTime returns the CPU time, user and system, that this process
// and the swtpm of tpm (when not nil) have used, for benchmarks that report
// what an operation costs on cores others share. It fails tb when either
// cannot be read.
func ProcessCPUTime(tb testing.TB, tpm *TPM) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	d := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if tpm != nil {
		t, err := tpm.CPUTime()
		if err != nil {
			tb.Fatal(err)
		}
		d += t
	}
	return d
}

// New manufactures a TPM whose EK certificates ca issues and starts it
// until t ends. It skips or fails t as [Require] says when swtpm is
// missing.
func New(t testing.TB, ca *CA) *TPM {
	t.Helper()
	return NewN(t, ca)[0]
}

// NewN manufactures one TPM for each CA given, at the same time (each
// takes a few seconds), and starts them until t ends. It skips or fails t
// as [Require] says when swtpm is missing.
func NewN(t testing.TB, cas ...*CA) []*TPM {
	t.Helper()
	Require(t)
	tpms := make([]*TPM, len(cas))
	errs := make([]error, len(cas))
	var wg sync.WaitGroup
	for i, ca := range cas {
		wg.Go(func() { tpms[i], errs[i] = start(t, ca) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("swtpmtest: %v", err)
		}
	}
	return tpms
}

// start manufactures and starts one TPM; it may run on any goroutine.
func start(t testing.TB, ca *CA) (*TPM, error) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		return nil, err
	}
	if err := ca.provision(dir, state); err != nil {
		return nil, err
	}
	tpm := &TPM{Socket: filepath.Join(dir, "tpm.sock"), State: state}
	return tpm, tpm.start(t, dir)
}

// provision runs swtpm_setup on state, with configuration files in dir
// that keep everything (the CA's state included) out of /var/lib and /etc.
func (ca *CA) provision(dir, state string) error {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	localca := filepath.Join(dir, "localca.conf")
	if err := os.WriteFile(localca, fmt.Appendf(nil,
		"statedir = %[1]s\nsigningkey = %[1]s/signkey.pem\nissuercert = %[1]s/issuercert.pem\ncertserial = %[1]s/certserial\n",
		ca.dir), 0o600); err != nil {
		return err
	}
	options := filepath.Join(dir, "localca.options")
	if err := os.WriteFile(options, []byte("--platform-manufacturer spiffekit\n--platform-version 2.1\n--platform-model swtpmtest\n"), 0o600); err != nil {
		return err
	}
	setup := filepath.Join(dir, "swtpm_setup.conf")
	if err := os.WriteFile(setup, fmt.Appendf(nil,
		"create_certs_tool = swtpm_localca\ncreate_certs_tool_config = %s\ncreate_certs_tool_options = %s\nactive_pcr_banks = sha256\n",
		localca, options), 0o600); err != nil {
		return err
	}
	cmd := exec.Command("swtpm_setup", "--tpm2", "--tpmstate", state, "--config", setup,
		"--create-ek-cert", "--create-platform-cert", "--lock-nvram", "--overwrite", "--ecc")
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+dir, "HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("swtpm_setup: %w\n%s", err, out)
	}
	return nil
}

// start runs swtpm on the state until t ends.
func (tpm *TPM) start(t testing.TB, dir string) error {
	ctrl := filepath.Join(dir, "ctrl.sock")
	logFile := filepath.Join(dir, "swtpm.log")
	cmd := exec.Command("swtpm", "socket", "--tpm2",
		"--tpmstate", "dir="+tpm.State,
		"--server", "type=unixio,path="+tpm.Socket,
		"--ctrl", "type=unixio,path="+ctrl,
		"--flags", "not-need-init,startup-clear",
		"--log", "file="+logFile)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting swtpm: %w", err)
	}
	tpm.pid = cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The socket's file appears when swtpm binds it, before it
		// listens: ready is when a connection is accepted (swtpm serves
		// the next one once this one closes).
		if c, err := net.Dial("unix", tpm.Socket); err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-done:
			done <- err
			log, _ := os.ReadFile(logFile)
			return fmt.Errorf("swtpm exited: %v\n%s", err, log)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("swtpm did not create %s within 30s", tpm.Socket)
		}
	}
}
