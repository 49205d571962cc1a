//go:build windows

package kit_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/Microsoft/go-winio"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/conformance/kit"
)

// TestNamedPipe serves a Workload API on a Windows named pipe with
// go-winio, as SPIRE's agent does there, and checks it through an npipe:
// address: nothing fails.
func TestNamedPipe(t *testing.T) {
	name := fmt.Sprintf(`spiffe-kit-test\%d\api`, os.Getpid())
	lis, err := winio.ListenPipe(`\\.\pipe\`+name, nil)
	require.NoError(t, err)
	newMutant(t).serveOn(t, lis)

	r := check(t, kit.WorkloadConfig{Addr: "npipe:" + name})
	assert.Empty(t, r.FailedRules(), "%s", text(t, r))
	assert.Equal(t, kit.NotApplicable, r.Verdicts()["WE rule 2"])
}
