// Package softhsmtest gives tests PKCS#11 tokens of SoftHSM2 (Debian's
// softhsm2 package): one token directory per test binary, named by
// $SOFTHSM2_CONF, in which each test initialises tokens of its own.
//
//	tok := softhsmtest.NewToken(t) // skips, or fails under SPIFFEKIT_TEST_REQUIRE=softhsm
//	// tok.Module is the PKCS#11 library, tok.Label and tok.PIN select and open the token.
//
// SoftHSM reads $SOFTHSM2_CONF once, when a process loads the library, so
// every token of a test binary lives in the one directory this package
// sets up on first use; tokens get unique labels, and a test's tokens are
// deleted when it ends. Without softhsm2, NewToken skips the test saying
// what to install, unless $SPIFFEKIT_TEST_REQUIRE (a comma-separated
// list) names softhsm: then it fails it, so that CI cannot pass without
// running the tests. Test only.
package softhsmtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/spiffekit/spiffekit/internal/testing/component"
)

// Install is what a machine needs for these tests.
const Install = "apt-get install --no-install-recommends softhsm2"

// Component is the name $SPIFFEKIT_TEST_REQUIRE gives SoftHSM.
const Component = "softhsm"

// modules are where Debian installs the SoftHSM2 PKCS#11 library.
var modules = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
}

// Module returns the path of the SoftHSM2 PKCS#11 library, or why there is
// none.
func Module() (string, error) {
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		return "", fmt.Errorf("softhsm2-util is not installed (%s)", Install)
	}
	for _, m := range modules {
		if _, err := os.Stat(m); err == nil {
			return m, nil
		}
	}
	return "", fmt.Errorf("libsofthsm2.so is not installed (%s)", Install)
}

// Require skips t when SoftHSM2 is missing, or fails it when
// $SPIFFEKIT_TEST_REQUIRE names softhsm, and returns the library's path.
func Require(t testing.TB) string {
	t.Helper()
	m, err := Module()
	if err != nil {
		component.Unavailable(t, Component, err.Error())
	}
	return m
}

var (
	setupOnce sync.Once
	setupDir  string
	setupErr  error
)

// conf writes, once per process, the SoftHSM2 configuration naming a new
// token directory, and points $SOFTHSM2_CONF at it.
func conf() (string, error) {
	setupOnce.Do(func() {
		dir, err := os.MkdirTemp("", "softhsmtest")
		tokens := filepath.Join(dir, "tokens")
		path := filepath.Join(dir, "softhsm2.conf")
		body := "directories.tokendir = " + tokens + "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
		if err == nil {
			err = os.Mkdir(tokens, 0o700)
		}
		if err == nil {
			err = os.WriteFile(path, []byte(body), 0o600)
		}
		if err == nil {
			err = os.Setenv("SOFTHSM2_CONF", path)
		}
		setupDir, setupErr = dir, err
	})
	return setupDir, setupErr
}

// Cleanup removes the token directory of the process; a TestMain calls it
// after m.Run.
func Cleanup() {
	if setupDir != "" {
		os.RemoveAll(setupDir)
	}
}

// Token is an initialised SoftHSM2 token.
type Token struct {
	Module string // the PKCS#11 library
	Label  string // the token's label, unique in the process
	Serial string // the token's serial number
	PIN    string // the user PIN
	SOPIN  string // the security officer's PIN
}

// NewToken initialises a token with a unique label and random PINs, and
// deletes it when t ends.
func NewToken(t testing.TB) Token {
	t.Helper()
	module := Require(t)
	if _, err := conf(); err != nil {
		t.Fatalf("softhsmtest: %v", err)
	}
	tok := Token{Module: module, Label: "t-" + random(6), PIN: random(4), SOPIN: random(4)}
	out, err := exec.Command("softhsm2-util", "--init-token", "--free",
		"--label", tok.Label, "--pin", tok.PIN, "--so-pin", tok.SOPIN).CombinedOutput()
	if err != nil {
		t.Fatalf("softhsmtest: softhsm2-util --init-token: %v: %s", err, out)
	}
	out, err = exec.Command("softhsm2-util", "--show-slots").CombinedOutput()
	if tok.Serial = serialOf(string(out), tok.Label); err != nil || tok.Serial == "" {
		t.Fatalf("softhsmtest: softhsm2-util --show-slots: %v: no token %s in %s", err, tok.Label, out)
	}
	t.Cleanup(func() {
		// The token's files go; a library still holding it open is the
		// test's own affair.
		out, err := exec.Command("softhsm2-util", "--delete-token", "--token", tok.Label).CombinedOutput()
		if err != nil {
			t.Errorf("softhsmtest: softhsm2-util --delete-token: %v: %s", err, out)
		}
	})
	return tok
}

// serialOf finds in softhsm2-util --show-slots the serial number of the
// token labelled label.
func serialOf(slots, label string) string {
	var serial string
	for line := range strings.Lines(slots) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "Serial number":
			serial = strings.TrimSpace(v)
		case "Label":
			if strings.TrimSpace(v) == label {
				return serial
			}
		}
	}
	return ""
}

func random(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
