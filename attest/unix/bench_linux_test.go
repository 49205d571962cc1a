package unix

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
)

// BenchmarkAttest measures one attestation of this process, whose
// executable is this test binary (exe-MB): with the hash remembered (the
// default once the binary has settled), hashed every time (no cache), not
// needed by any entry, and left out by configuration.
func BenchmarkAttest(b *testing.B) {
	exe, err := os.Executable()
	require.NoError(b, err)
	fi, err := os.Stat(exe)
	require.NoError(b, err)
	needed := func(string, string) bool { return true }
	for _, tt := range []struct {
		name   string
		cfg    Config
		needed func(string, string) bool
	}{
		{"cached", Config{Now: later}, needed},
		{"uncached", Config{HashCacheSize: -1}, needed},
		{"not-needed", Config{}, func(string, string) bool { return false }},
		{"skip-hash", Config{SkipHash: true}, needed},
	} {
		b.Run(tt.name, func(b *testing.B) {
			a := newAttestor(b, tt.cfg)
			w := attest.Workload{PID: os.Getpid(), Credentials: &attest.Credentials{UID: os.Geteuid(), GID: os.Getegid()}, Needed: tt.needed}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Attest(b.Context(), w); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(fi.Size())/(1<<20), "exe-MB")
		})
	}
}
