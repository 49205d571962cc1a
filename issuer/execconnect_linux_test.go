package issuer_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sys "golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/unix"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// The environment of the role "connect": the socket to connect to, whether
// to wait until the server has accepted the connection, and what to do
// once the connection is handed over: execute the file it names, exit
// (exitAfterHandOver), or keep running (empty).
const (
	socketEnv     = "SPIFFEKIT_TEST_SOCKET"
	waitAcceptEnv = "SPIFFEKIT_TEST_WAIT_ACCEPT"
	thenEnv       = "SPIFFEKIT_TEST_THEN"

	exitAfterHandOver = "exit"
)

func init() {
	helperRoles["connect"] = connectAndHandOver
	helperRoles["hold"] = hold
}

// connectAndHandOver is a process that connects to the Workload API, hands
// the connected socket to the process at the other end of its fd 3
// (SCM_RIGHTS), then executes another file or keeps running.
func connectAndHandOver() {
	ctl := os.NewFile(3, "ctl")
	conn, err := net.Dial("unix", os.Getenv(socketEnv))
	if err != nil {
		fail(err)
	}
	f, err := conn.(*net.UnixConn).File() // a blocking duplicate
	if err != nil {
		fail(err)
	}
	fd := int(f.Fd())
	if os.Getenv(waitAcceptEnv) != "" {
		// The server writes its HTTP/2 settings once it has accepted the
		// connection and identified the caller: peek at them, leaving them
		// for the process the socket goes to.
		if _, _, err := sys.Recvfrom(fd, make([]byte, 1), sys.MSG_PEEK); err != nil {
			fail(err)
		}
	}
	if err := sys.Sendmsg(int(ctl.Fd()), []byte{0}, sys.UnixRights(fd), nil, 0); err != nil {
		fail(err)
	}
	switch then := os.Getenv(thenEnv); then {
	case "":
		hold()
	case exitAfterHandOver:
	default:
		env := append(os.Environ(), helperEnv+"=hold")
		fail(syscall.Exec(then, []string{then}, env)) // fd 3 stays open across exec
	}
}

// hold keeps the process running until the test closes its end of fd 3.
func hold() {
	_, _ = io.Copy(io.Discard, os.NewFile(3, "ctl"))
}

func fail(err error) {
	os.Stderr.WriteString("test helper: " + err.Error() + "\n")
	os.Exit(3)
}

// handOver starts the test binary as a process that connects to the
// Workload API at socket, hands the connection to this process, and then
// does what then says (see thenEnv). It returns the process and the
// connection it handed over. When then is a file to execute, it returns
// once the process executes it.
func handOver(t *testing.T, socket string, waitAccept bool, then string) (*exec.Cmd, net.Conn) {
	t.Helper()
	pair, err := sys.Socketpair(sys.AF_UNIX, sys.SOCK_STREAM|sys.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	ours, theirs := os.NewFile(uintptr(pair[0]), "ours"), os.NewFile(uintptr(pair[1]), "theirs")
	self, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), helperEnv+"=connect", socketEnv+"="+socket, thenEnv+"="+then)
	if waitAccept {
		cmd.Env = append(cmd.Env, waitAcceptEnv+"=1")
	}
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	theirs.Close()
	t.Cleanup(func() {
		ours.Close() // ends "hold"
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})

	buf, oob := make([]byte, 1), make([]byte, sys.CmsgSpace(4))
	_, oobn, _, _, err := sys.Recvmsg(int(ours.Fd()), buf, oob, sys.MSG_CMSG_CLOEXEC)
	require.NoError(t, err)
	msgs, err := sys.ParseSocketControlMessage(oob[:oobn])
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	fds, err := sys.ParseUnixRights(&msgs[0])
	require.NoError(t, err)
	require.Len(t, fds, 1)
	f := os.NewFile(uintptr(fds[0]), "workload-api")
	conn, err := net.FileConn(f)
	require.NoError(t, err)
	f.Close()
	t.Cleanup(func() { conn.Close() })

	if then != "" && then != exitAfterHandOver {
		// Wait (bounded) until the process runs the file.
		proc := filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "exe")
		require.Eventually(t, func() bool {
			got, err := os.Readlink(proc)
			return err == nil && got == then
		}, 10*time.Second, 5*time.Millisecond, "the helper did not execute %s", then)
	}
	return cmd, conn
}

// fetchOver fetches the caller's X509-SVID over conn, an established
// Workload API connection.
func fetchOver(t *testing.T, conn net.Conn) (spiffeid.ID, error) {
	t.Helper()
	dialed := false
	c, err := workloadapi.New(t.Context(), workloadapi.WithAddr("unix:///handed-over"),
		workloadapi.WithDialOptions(grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) {
			if dialed {
				return nil, io.EOF // one connection only: the one handed over
			}
			dialed = true
			return conn, nil
		})))
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s, err := c.FetchX509SVID(ctx)
	if err != nil {
		return spiffeid.ID{}, err
	}
	return s.ID, nil
}

// trustedCopy writes a copy of the test binary with some bytes appended,
// so that it runs like the test binary but has another SHA-256, and
// returns its path and hash.
func trustedCopy(t *testing.T) (string, string) {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	data, err := os.ReadFile(self)
	require.NoError(t, err)
	data = append(data, "\ntrusted\n"...)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	path := filepath.Join(dir, "trusted")
	require.NoError(t, os.WriteFile(path, data, 0o755))
	sum := sha256.Sum256(data)
	return path, hex.EncodeToString(sum[:])
}

// gate is a listener whose Accept waits until the gate is opened.
type gate struct {
	net.Listener
	open chan struct{}
}

func (g gate) Accept() (net.Conn, error) {
	<-g.open
	return g.Listener.Accept()
}

// serveGated serves the Workload API of e on a new socket whose
// connections are accepted only once open is closed, and returns the
// socket's path.
func serveGated(t *testing.T, e *env, open chan struct{}) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "iss")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	lis, err := endpoint.ListenUnix(filepath.Join(dir, "wl.sock"), 0o700)
	require.NoError(t, err)
	srv, err := endpoint.New(endpoint.Config{Handler: e.iss})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, gate{Listener: lis, open: open}) }()
	t.Cleanup(func() {
		select {
		case <-open:
		default:
			close(open)
		}
		cancel()
		require.NoError(t, <-done)
	})
	return lis.Addr().String()
}

// TestExecAfterConnect is the attack of a process that connects to the
// Workload API, hands the connection to another process, and then executes
// a binary an entry trusts (by path and SHA-256), so that the Workload API
// attests the trusted binary while the other process speaks on the
// connection. What a unix path or sha256 selector promises is the
// executable the connecting process ran when the server accepted the
// connection, and still runs while it is attested: an exec after accept
// is refused; the two limits of that promise are tested too.
func TestExecAfterConnect(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	trusted, sum := trustedCopy(t)
	self, err := os.Executable()
	require.NoError(t, err)
	self, err = filepath.EvalSymlinks(self)
	require.NoError(t, err)
	trustedID := spiffeid.RequireFromPath(td, "/trusted")
	selfID := spiffeid.RequireFromPath(td, "/test-binary")

	a, err := unix.New(unix.Config{})
	require.NoError(t, err)
	e := newEnv(t, issuer.Config{Attestor: a})
	open := make(chan struct{})
	socket := serveGated(t, e, open)
	e.register(t, registry.Entry{SPIFFEID: trustedID, Selectors: []attest.Selector{
		{Type: "unix", Value: "path:" + trusted},
		{Type: "unix", Value: "sha256:" + sum},
	}})
	e.register(t, registry.Entry{SPIFFEID: selfID, Selectors: []attest.Selector{
		{Type: "unix", Value: "path:" + self},
	}})

	t.Run("exec before accept gets the binary's identity, a limit", func(t *testing.T) {
		// Nothing the server can observe tells this process from one that
		// ran the trusted binary from the start: the kernel records the
		// connecting process, not what it ran when it connected.
		_, conn := handOver(t, socket, false, trusted)
		close(open)
		id, err := fetchOver(t, conn)
		require.NoError(t, err)
		require.Equal(t, trustedID, id)
	})
	t.Run("exec after accept is refused", func(t *testing.T) {
		_, conn := handOver(t, socket, true, trusted)
		_, err := fetchOver(t, conn)
		requireCode(t, codes.PermissionDenied, err)
	})
	t.Run("a connection handed over carries its identity, a limit", func(t *testing.T) {
		// Whoever holds the socket speaks for the process that connected.
		_, conn := handOver(t, socket, true, "")
		id, err := fetchOver(t, conn)
		require.NoError(t, err)
		require.Equal(t, selfID, id)
	})
}
