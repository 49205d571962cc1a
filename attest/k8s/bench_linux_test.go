package k8s_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest/k8s"
)

// BenchmarkAttest measures attestations of a process in a pod against the
// kubelet's recorded answer served over HTTPS: with the cache (one list per
// MaxStaleness answers them all) and without (a request to the kubelet for
// each).
func BenchmarkAttest(b *testing.B) {
	rec := load(b, "kubelet-pods.json")
	data, err := os.ReadFile(filepath.Join("testdata", "kubelet-cgroups.json"))
	require.NoError(b, err)
	var cgroups map[string]string
	require.NoError(b, json.Unmarshal(data, &cgroups))
	pod := rec.pods[0]
	root := b.TempDir()
	w := proc(b, root, 300, cgroups[pod.Containers[0].ID])
	for _, bb := range []struct {
		name      string
		staleness time.Duration
	}{{"cached", k8s.DefaultMaxStaleness}, {"uncached", -1}} {
		b.Run(bb.name, func(b *testing.B) {
			k := newKubelet(b, serve(rec.raw))
			cfg := k.config(root)
			cfg.MaxStaleness = bb.staleness
			a := newAttestor(b, cfg)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Attest(b.Context(), w); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
