package swtpmtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spiffekit/spiffekit/internal/pemutil"
)

func TestNew(t *testing.T) {
	ca := NewCA(t)
	tpm := New(t, ca)
	if fi, err := os.Stat(tpm.Socket); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %s: %v", tpm.Socket, err)
	}
	roots := ca.Roots(t)
	if len(roots) != 2 || roots[1].Subject.CommonName != "swtpm-localca" || roots[1].CheckSignatureFrom(roots[0]) != nil {
		t.Fatalf("CA certificates %v", roots)
	}
	b, err := os.ReadFile(ca.BundleFile(t))
	if err != nil {
		t.Fatal(err)
	}
	if certs, err := pemutil.ParseCertificates(b); err != nil || len(certs) != 2 {
		t.Fatalf("bundle: %d certificates, %v", len(certs), err)
	}
	if d, err := tpm.CPUTime(); err != nil || d < 0 {
		t.Fatalf("CPUTime: %v, %v", d, err)
	}
	if _, err := (&TPM{pid: 1 << 30}).CPUTime(); err == nil {
		t.Fatal("CPUTime of a process that does not exist")
	}
	self := ProcessCPUTime(t, nil)
	if both := ProcessCPUTime(t, tpm); self <= 0 || both < self {
		t.Fatalf("ProcessCPUTime: %v alone, %v with the TPM", self, both)
	}
}

func TestRequire(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no swtpm here
	if ok, why := Available(); ok || !strings.Contains(why, "apt-get install") {
		t.Fatalf("Available: %v %q", ok, why)
	}
	t.Setenv("SPIFFEKIT_TEST_REQUIRE", "docker,swtpm")
	r := &recorder{TB: t}
	func() {
		defer func() { recover() }()
		Require(r)
	}()
	if !r.failed || r.skipped {
		t.Errorf("required and missing: failed %v, skipped %v", r.failed, r.skipped)
	}
	t.Setenv("SPIFFEKIT_TEST_REQUIRE", "docker")
	r = &recorder{TB: t}
	func() {
		defer func() { recover() }()
		Require(r)
	}()
	if r.failed || !r.skipped {
		t.Errorf("missing: failed %v, skipped %v", r.failed, r.skipped)
	}
}

func TestRootsBeforeProvisioning(t *testing.T) {
	r := &recorder{TB: t}
	func() {
		defer func() { recover() }()
		NewCA(t).Roots(r)
	}()
	if !r.failed {
		t.Error("Roots of an empty CA did not fail")
	}
	r = &recorder{TB: t}
	func() {
		defer func() { recover() }()
		NewCA(t).BundleFile(r)
	}()
	if !r.failed {
		t.Error("BundleFile of an empty CA did not fail")
	}
}

func TestStartFails(t *testing.T) {
	Require(t)
	dir := t.TempDir()
	// No state directory: swtpm exits at once, and start says why.
	tpm := &TPM{Socket: filepath.Join(dir, "tpm.sock"), State: filepath.Join(dir, "missing")}
	if err := tpm.start(t, dir); err == nil || !strings.Contains(err.Error(), "swtpm exited") {
		t.Fatalf("start: %v", err)
	}
	// A CA "directory" that is a file: swtpm_localca cannot use it.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ca := &CA{dir: filepath.Join(file, "ca")}
	if _, err := start(t, ca); err == nil || !strings.Contains(err.Error(), "swtpm_setup") {
		t.Fatalf("start with a bad CA: %v", err)
	}
}

// recorder notes Fatalf and Skip instead of ending the test.
type recorder struct {
	testing.TB
	failed, skipped bool
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(string, ...any) {
	r.failed = true
	panic("fatal")
}
func (r *recorder) Skipf(string, ...any) {
	r.skipped = true
	panic("skip")
}
