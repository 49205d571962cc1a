package issuer_test

import (
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sysunix "golang.org/x/sys/unix"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/unix"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// TestSupplementaryGroupOnlyWhenNeeded checks that, with the unix
// attestor and a pidfd for the caller (as the Workload API server records
// it), a stream is attested without its supplementary groups while no
// entry selects one, and attested again, with them, once an entry does.
// It gives the test process a supplementary group, so it runs as root.
func TestSupplementaryGroupOnlyWhenNeeded(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving the test process a supplementary group needs root")
	}
	t.Cleanup(leaktest.Check(t))
	old, err := syscall.Getgroups()
	require.NoError(t, err)
	require.NoError(t, syscall.Setgroups([]int{4242}))
	t.Cleanup(func() { require.NoError(t, syscall.Setgroups(old)) })

	rec := &recordingAttestor{next: defaultUnix(t)}
	e := newEnv(t, issuer.Config{Attestor: rec})
	e.serve(t)
	e.register(t, registry.Entry{SPIFFEID: webID})
	c := e.client(t)
	w := watch(t, c)
	require.Len(t, w.next(t).SVIDs, 1)
	group := attest.Selector{Type: "unix", Value: "supplementary_gid:4242"}
	groups := func() []bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		var out []bool
		for _, got := range rec.got {
			out = append(out, got.Contains(group))
		}
		return out
	}
	withPIDFD := true
	if info := (sysunix.PidfdInfo{Mask: sysunix.PIDFD_INFO_PID | sysunix.PIDFD_INFO_CREDS}); sysunix.IoctlPidfdInfo(int(pidfdOf(t)), &info) != nil ||
		info.Mask&sysunix.PIDFD_INFO_CREDS == 0 {
		withPIDFD = false
		t.Log("this kernel's pidfds tell no IDs: status is read every time")
	}
	assert.Equal(t, []bool{!withPIDFD}, groups(), "no entry selects a supplementary group")

	groupID := spiffeid.RequireFromPath(td, "/group")
	e.register(t, registry.Entry{SPIFFEID: groupID, Selectors: []attest.Selector{group}})
	u := w.next(t)
	require.Len(t, u.SVIDs, 2, "the stream was attested again, with the group")
	got := groups()
	assert.True(t, got[len(got)-1])
}

// pidfdOf returns a pidfd of this process, closed when the test ends.
func pidfdOf(t *testing.T) uintptr {
	t.Helper()
	f, err := unix.OpenPIDFD(os.Getpid())
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f.Fd()
}
