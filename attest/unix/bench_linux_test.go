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
// needed by any entry, and left out by configuration; "/pidfd" with a
// pidfd for the process, as a Workload API server records its callers.
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
		pidfd  bool
	}{
		{"cached", Config{Now: later}, needed, false},
		{"uncached", Config{HashCacheSize: -1}, needed, false},
		{"not-needed", Config{}, func(string, string) bool { return false }, false},
		{"not-needed/pidfd", Config{}, func(string, string) bool { return false }, true},
		{"skip-hash", Config{SkipHash: true}, needed, false},
	} {
		b.Run(tt.name, func(b *testing.B) {
			a := newAttestor(b, tt.cfg)
			w := attest.Workload{PID: os.Getpid(), Credentials: &attest.Credentials{UID: os.Geteuid(), GID: os.Getegid()}, Needed: tt.needed}
			if tt.pidfd {
				f, err := OpenPIDFD(os.Getpid())
				require.NoError(b, err)
				defer f.Close()
				w.PIDFD = f
			}
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
