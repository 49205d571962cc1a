package nodebench

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/attest/unix"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// newDefaultsSetup is newFetchSetup with the agent's unix attestor as
// unix.New(unix.Config{}) makes it, hashing included, and the caller's
// one entry selecting, besides its uid, the SHA-256 of its executable
// when withHash is set. The caller is this process: its executable is
// this test binary, tens of megabytes. It returns the setup and the
// executable's size.
func newDefaultsSetup(tb testing.TB, withHash bool) (*fetchSetup, int64) {
	tb.Helper()
	exe, err := os.Executable()
	require.NoError(tb, err)
	f, err := os.Open(exe)
	require.NoError(tb, err)
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	require.NoError(tb, err)
	waitExecutableSettled(tb, f)

	e := newEnv(tb, envConfig{DBDir: shmDir(tb)})
	cfg := e.srv.AgentConfig(tb)
	cfg.NodeAttestor = jointoken.NewClient(e.srv.Token(tb))
	wa, err := unix.New(unix.Config{})
	require.NoError(tb, err)
	cfg.WorkloadAttestors = []attest.WorkloadAttestor{wa}
	a := nodetest.StartAgent(tb, cfg)
	sels := []attest.Selector{ourUID}
	if withHash {
		sels = append(sels, attest.Selector{Type: "unix", Value: "sha256:" + hex.EncodeToString(h.Sum(nil))})
	}
	en, err := e.store.Create(tb.Context(), registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(td, "/fetch"),
		ParentID:  a.ID(),
		Selectors: sels,
	})
	require.NoError(tb, err)
	e.waitIndexed(tb)
	waitSynced(tb, a, 30*time.Second)
	waitFor(tb, 30*time.Second, "the agent holds the entry", func() bool { return a.Stats().Entries == 1 })
	s := &fetchSetup{e: e, a: a, addr: a.Addr, id: en.SPIFFEID}
	s.fetchNew(tb) // the first fetch waits for the pre-mint
	return s, size
}

// waitExecutableSettled waits until the executable, linked by go test a
// moment ago, was last changed more than a second ago, as the executables
// of real workloads were: the attestor does not cache the hash of a file
// that changed within the last second (see attest/unix).
func waitExecutableSettled(tb testing.TB, f *os.File) {
	tb.Helper()
	fi, err := f.Stat()
	require.NoError(tb, err)
	st, ok := fi.Sys().(*syscall.Stat_t)
	require.True(tb, ok)
	changed := time.Unix(st.Ctim.Unix())
	if wait := time.Until(changed.Add(1100 * time.Millisecond)); wait > 0 {
		time.Sleep(wait)
	}
}

func TestFetchThroughAgentDefaults(t *testing.T) {
	for _, withHash := range []bool{false, true} {
		t.Run("sha256="+strconv.FormatBool(withHash), func(t *testing.T) {
			s, _ := newDefaultsSetup(t, withHash)
			for _, reuse := range []bool{false, true} {
				d := s.run(t, 3, 3, reuse)
				require.Len(t, d.d, 9)
			}
		})
	}
}

// BenchmarkFetchX509SVIDDefaults is BenchmarkFetchX509SVID with the agent's
// unix attestor at its defaults (executables hashed when an entry needs
// it) and this test binary as the caller's executable: "sha256=false"
// has no entry that selects a hash, "sha256=true" one entry selecting the
// caller's. caller-MB is the executable's size.
func BenchmarkFetchX509SVIDDefaults(b *testing.B) {
	for _, withHash := range []bool{false, true} {
		b.Run("sha256="+strconv.FormatBool(withHash), func(b *testing.B) {
			s, size := newDefaultsSetup(b, withHash)
			for _, mode := range []struct {
				name  string
				reuse bool
			}{{"new-conn", false}, {"reused", true}} {
				for _, clients := range []int{1, 50} {
					b.Run(mode.name+"/clients="+strconv.Itoa(clients), func(b *testing.B) {
						b.ReportAllocs()
						per := max(1, b.N/clients)
						b.ResetTimer()
						d := s.run(b, clients, per, mode.reuse)
						b.StopTimer()
						d.report(b)
						b.ReportMetric(float64(size)/(1<<20), "caller-MB")
					})
				}
			}
		})
	}
}
