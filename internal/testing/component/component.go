// Package component says, for tests, whether a real component they need
// (docker, kube, netns, uids, postgres, …) must be there: CI names the
// components in $SPIFFEKIT_TEST_REQUIRE, and a test that cannot have one
// of those fails instead of skipping. Test only.
//
//	if os.Geteuid() != 0 {
//		component.Unavailable(t, "uids", "starts callers under other uids, which needs root")
//	}
package component

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// EnvRequire names the environment variable listing, separated by commas,
// the components a test run must have.
const EnvRequire = "SPIFFEKIT_TEST_REQUIRE"

// Required reports whether $SPIFFEKIT_TEST_REQUIRE names name.
func Required(name string) bool {
	return slices.Contains(strings.Split(os.Getenv(EnvRequire), ","), name)
}

// Unavailable skips t, saying why the component name cannot be had here,
// or fails t if the run requires it (see [EnvRequire]).
func Unavailable(t testing.TB, name, why string) {
	t.Helper()
	if Required(name) {
		t.Fatalf("%s is required ($%s) but cannot run here: %s", name, EnvRequire, why)
		return
	}
	t.Skipf("%s cannot run here: %s", name, why)
}
