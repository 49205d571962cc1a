package cli

import (
	"os"
	"testing"

	"github.com/spiffekit/spiffekit/internal/testing/softhsmtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	softhsmtest.Cleanup() // the SoftHSM2 token directory of the key manager tests
	os.Exit(code)
}
