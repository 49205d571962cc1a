package issuer_test

import (
	"fmt"
	"os"
	"testing"
)

// helperEnv names the role the test binary plays when a test starts it
// again as another process (see helperRoles); unset, it runs the tests.
const helperEnv = "SPIFFEKIT_ISSUER_TEST_ROLE"

// helperRoles are the roles a test may start the test binary in, by name.
var helperRoles = map[string]func(){}

func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		run, ok := helperRoles[role]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown test helper role %q\n", role)
			os.Exit(2)
		}
		run()
		os.Exit(0)
	}
	os.Exit(m.Run())
}
