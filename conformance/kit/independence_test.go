package kit_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestIndependent checks that the kit and its program link nothing of the
// library they judge: a kit that judged spiffekit with spiffekit's own
// parsers would agree with it by construction.
func TestIndependent(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".", "../cmd/spiffe-conformance").Output()
	require.NoError(t, err)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/spiffe/go-spiffe/v2/spiffeid", "go list looked at the kit")
	for _, dep := range deps {
		if strings.HasPrefix(dep, "github.com/spiffekit/spiffekit/") && !strings.HasPrefix(dep, "github.com/spiffekit/spiffekit/conformance/") {
			t.Errorf("the kit links %s, a package of the library it judges", dep)
		}
	}
}
