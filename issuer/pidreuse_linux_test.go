package issuer_test

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	sys "golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/unix"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// inNamespaceEnv tells TestPIDReuse that it runs as the first process of
// its own PID namespace.
const inNamespaceEnv = "SPIFFEKIT_TEST_IN_PID_NAMESPACE"

// TestPIDReuse is the attack of a process that connects to the Workload
// API, hands the connection to another process and exits, so that the
// other process is served the identity of whatever process takes over the
// PID: here, one running a binary an entry trusts. The server records a
// pidfd bound to the process that connected when it accepts the
// connection, and the attestor refuses the caller once that process is
// gone, whoever has its PID.
//
// The PID is taken over at will inside a PID namespace of the test's own
// (the last PID allocated, ns_last_pid, is writable there), so the test
// runs itself again as the first process of new user, PID and mount
// namespaces.
func TestPIDReuse(t *testing.T) {
	if os.Getenv(inNamespaceEnv) == "" {
		self, err := os.Executable()
		require.NoError(t, err)
		cmd := exec.Command(self, "-test.run=^TestPIDReuse$", "-test.count=1", "-test.v", "-test.timeout=5m")
		cmd.Env = append(os.Environ(), inNamespaceEnv+"=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID | syscall.CLONE_NEWNS,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}},
		}
		out, err := cmd.CombinedOutput()
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSPC) {
			t.Skipf("cannot create user and PID namespaces here (the attack cannot be staged): %v", err)
		}
		require.NoError(t, err, "%s", out)
		require.Contains(t, string(out), "--- PASS: TestPIDReuse", "%s", out)
		return
	}

	// PID 1 of the namespace: a proc filesystem of its own, in a mount
	// namespace of its own.
	require.Equal(t, 1, os.Getpid())
	require.NoError(t, sys.Mount("none", "/", "", sys.MS_REC|sys.MS_PRIVATE, ""))
	require.NoError(t, sys.Mount("proc", "/proc", "proc", sys.MS_NOSUID|sys.MS_NODEV|sys.MS_NOEXEC, ""))
	t.Cleanup(leaktest.Check(t))

	trusted, sum := trustedCopy(t)
	a, err := unix.New(unix.Config{})
	require.NoError(t, err)
	e := newEnv(t, issuer.Config{Attestor: a})
	socket := strings.TrimPrefix(e.serve(t), "unix://")
	trustedID := spiffeid.RequireFromPath(td, "/trusted")
	e.register(t, registry.Entry{SPIFFEID: trustedID, Selectors: []attest.Selector{
		{Type: "unix", Value: "path:" + trusted},
		{Type: "unix", Value: "sha256:" + sum},
	}})

	// The process that connects hands its connection over and exits.
	connector, conn := handOver(t, socket, true, exitAfterHandOver)
	pid := connector.Process.Pid
	_ = connector.Wait() // reaped: its PID is free

	// The next process created takes the PID over, and runs the trusted
	// binary.
	require.NoError(t, os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0))
	r, w, err := os.Pipe()
	require.NoError(t, err)
	successor := exec.Command(trusted)
	successor.Env = append(os.Environ(), helperEnv+"=hold")
	successor.ExtraFiles = []*os.File{r}
	require.NoError(t, successor.Start())
	r.Close()
	t.Cleanup(func() {
		w.Close() // ends "hold"
		_ = successor.Process.Kill()
		_ = successor.Wait()
	})
	require.Equal(t, pid, successor.Process.Pid, "the PID was not taken over")

	// What the PID names now would get the trusted identity.
	sels, err := a.Attest(t.Context(), attest.Workload{PID: pid})
	require.NoError(t, err)
	require.True(t, sels.Contains(attest.Selector{Type: "unix", Value: "sha256:" + sum}), sels.String())

	// The connection of the process that exited gets nothing.
	_, err = fetchOver(t, conn)
	requireCode(t, codes.PermissionDenied, err)
}

// TestExitBeforeAccept checks the case the recording at accept cannot
// cover with a pidfd: the process that connected has exited before the
// server accepted its connection, which another process now holds. The
// server cannot tell which process took over its PID, if any, and issues
// nothing on that connection.
func TestExitBeforeAccept(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	e := newEnv(t, issuer.Config{})
	open := make(chan struct{})
	socket := serveGated(t, e, open)
	e.register(t, registry.Entry{SPIFFEID: webID}) // this user's

	connector, conn := handOver(t, socket, false, exitAfterHandOver)
	_ = connector.Wait()
	close(open)
	_, err := fetchOver(t, conn)
	requireCode(t, codes.PermissionDenied, err)
}
