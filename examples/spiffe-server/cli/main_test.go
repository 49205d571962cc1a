package cli

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/spiffekit/spiffekit/internal/testing/softhsmtest"
)

// commandEnv, when set, turns the test binary into spiffe-server running
// the command line it holds (a JSON array), so that a test can run a
// command as another user.
const commandEnv = "SPIFFEKIT_CLI_TEST_COMMAND"

func TestMain(m *testing.M) {
	if line := os.Getenv(commandEnv); line != "" {
		var args []string
		if err := json.Unmarshal([]byte(line), &args); err != nil {
			os.Exit(99)
		}
		os.Exit(Main(context.Background(), args, os.Stdout, os.Stderr))
	}
	code := m.Run()
	softhsmtest.Cleanup() // the SoftHSM2 token directory of the key manager tests
	os.Exit(code)
}
