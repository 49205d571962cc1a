package k8s

import (
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest/internal/cgroups"
)

// FuzzParsePods checks that any pod list that decodes indexes only
// containers it lists, under their IDs, and makes valid selectors.
func FuzzParsePods(f *testing.F) {
	entries, err := os.ReadDir("testdata")
	require.NoError(f, err)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") {
			data, err := os.ReadFile("testdata/" + e.Name())
			require.NoError(f, err)
			f.Add(data)
		}
	}
	f.Add([]byte(`{"items":[{"metadata":{"uid":"u"},"status":{"containerStatuses":[{"containerID":"containerd://a"},{"containerID":"x"}]}},{"status":{"initContainerStatuses":[{"containerID":"cri-o://a"}]}}]}`))
	a := &Attestor{log: slog.New(slog.DiscardHandler)}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parsePods(data)
		if err != nil {
			return
		}
		for id, r := range p.containers {
			require.NotEmpty(t, id)
			require.Less(t, r.pod, len(p.items))
			require.True(t, strings.HasSuffix(r.status.ContainerID, "://"+id))
			pd, st, found, err := p.lookup(cgroups.Container{ID: id})
			if r.dup {
				require.Error(t, err)
				continue
			}
			require.NoError(t, err)
			require.True(t, found)
			for s := range a.selectors(1, pd, st).All() {
				require.NoError(t, s.Validate())
			}
		}
	})
}
