package softhsmtest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

func TestNewToken(t *testing.T) {
	a, b := NewToken(t), NewToken(t)
	if a.Label == b.Label || a.Serial == "" || a.Serial == b.Serial || a.PIN == "" || a.SOPIN == "" {
		t.Fatalf("tokens %+v and %+v", a, b)
	}
	if _, err := os.Stat(a.Module); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("softhsm2-util", "--show-slots").CombinedOutput()
	if err != nil || !strings.Contains(string(out), a.Label) || serialOf(string(out), b.Label) != b.Serial {
		t.Fatalf("show-slots: %v: %s", err, out)
	}
	if !strings.HasPrefix(os.Getenv("SOFTHSM2_CONF"), os.TempDir()) {
		t.Fatalf("SOFTHSM2_CONF=%s is not the test's own", os.Getenv("SOFTHSM2_CONF"))
	}
}

func TestSerialOf(t *testing.T) {
	slots := "Slot 1\n    Token info:\n        Serial number:    aa\n        Label:            one   \nSlot 2\n        Serial number:    bb\n        Label:            two\n"
	if serialOf(slots, "two") != "bb" || serialOf(slots, "one") != "aa" || serialOf(slots, "three") != "" {
		t.Fatal("serialOf")
	}
}

// recorder is a testing.TB that records how a test would have ended.
type recorder struct {
	testing.TB
	skipped, failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Skipf(string, ...any)  { r.skipped = true; panic("stop") }
func (r *recorder) Fatalf(string, ...any) { r.failed = true; panic("stop") }

func TestRequire(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no softhsm2-util here
	if _, err := Module(); err == nil || !strings.Contains(err.Error(), "apt-get install") {
		t.Fatalf("Module: %v", err)
	}
	for req, fails := range map[string]bool{"docker,softhsm": true, "docker": false} {
		t.Setenv("SPIFFEKIT_TEST_REQUIRE", req)
		r := &recorder{TB: t}
		func() {
			defer func() { recover() }()
			Require(r)
		}()
		if r.failed != fails || r.skipped == fails {
			t.Fatalf("SPIFFEKIT_TEST_REQUIRE=%s: failed %v, skipped %v", req, r.failed, r.skipped)
		}
	}
}
