// Package dockertest gives tests a real Docker daemon of their own: a
// dockerd (Debian's docker.io) with its data, its state and its API socket
// in a temporary directory, without networking (containers run with
// --network none), stopped and cleaned up when the test ends. Images are
// made with "docker import" from a tarball of static Go binaries; no
// registry is needed. Test only.
//
//	func TestContainer(t *testing.T) {
//		d := dockertest.Start(t) // skips the test if dockerd cannot run here
//		d.Import(t, "test/sleep:1", map[string]string{"/sleep": dockertest.Sleeper(t)}, "/sleep")
//		id := d.Docker(t, "run", "-d", "--network", "none", "--label", "app=web", "test/sleep:1")
//		pid := d.InitPID(t, id)
//		...
//	}
//
// Starting a daemon takes root and the docker.io package. Without them,
// Start skips the test and says why, unless $SPIFFEKIT_TEST_REQUIRE names
// "docker" (CI sets it): then the test fails instead.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sys "golang.org/x/sys/unix"

	"github.com/spiffekit/spiffekit/internal/testing/component"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
)

// Timeout bounds each docker command and the daemon's start and stop.
const Timeout = 60 * time.Second

// Daemon is a running dockerd of one test.
type Daemon struct {
	// Dir holds the daemon's data root, exec root, pid file and socket.
	Dir string
	// Socket is the path of the daemon's API socket.
	Socket string
	cli    string
	out    logtest.Buffer
}

// Start starts a dockerd for t and waits until it answers; it is stopped,
// its containers with it, and its directory removed when t ends. It skips
// t (see [component.Unavailable]) if dockerd is not installed or the test does not
// run as root.
func Start(t testing.TB) *Daemon {
	t.Helper()
	dockerd, err := exec.LookPath("dockerd")
	if err != nil {
		component.Unavailable(t, "docker", "no dockerd on $PATH (apt-get install docker.io)")
	}
	cli, err := exec.LookPath("docker")
	if err != nil {
		component.Unavailable(t, "docker", "no docker client on $PATH (apt-get install docker.io)")
	}
	if os.Geteuid() != 0 {
		component.Unavailable(t, "docker", "dockerd needs root")
	}
	dir, err := os.MkdirTemp("", "dockerd")
	require.NoError(t, err)
	d := &Daemon{Dir: dir, Socket: filepath.Join(dir, "docker.sock"), cli: cli}
	cmd := exec.Command(dockerd,
		"--data-root", filepath.Join(dir, "root"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "pid"), "-H", "unix://"+d.Socket,
		"--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=overlay2")
	cmd.Stdout, cmd.Stderr = &d.out, &d.out
	// Its own process group, so that a test interrupted by a signal to its
	// group leaves the daemon to its cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { d.stop(t, cmd, exited) })

	client := d.HTTPClient()
	deadline := time.Now().Add(Timeout)
	for {
		select {
		case <-exited:
			t.Fatalf("dockerd exited at start:\n%s", d.out.String())
		default:
		}
		resp, err := client.Get("http://docker/_ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd did not answer within %s (last: %v):\n%s", Timeout, err, d.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// HTTPClient returns a client of the daemon's Engine API: any URL's host
// reaches the socket. It keeps no connection open.
func (d *Daemon) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "unix", d.Socket)
		},
	}}
}

// stop removes the daemon's containers, stops it, unmounts what it left
// mounted and removes its directory.
func (d *Daemon) stop(t testing.TB, cmd *exec.Cmd, exited <-chan struct{}) {
	if ids, _, code := d.Run(t, nil, "ps", "-aq"); code == 0 && strings.TrimSpace(ids) != "" {
		d.Run(t, nil, append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(Timeout):
		t.Errorf("dockerd did not stop within %s of SIGTERM", Timeout)
		cmd.Process.Kill()
		<-exited
	}
	if t.Failed() {
		t.Logf("dockerd's output:\n%s", d.out.String())
	}
	unmountUnder(t, d.Dir)
	if err := os.RemoveAll(d.Dir); err != nil {
		t.Errorf("removing the daemon's directory: %v", err)
	}
}

// unmountUnder detaches every mount below dir, deepest first.
func unmountUnder(t testing.TB, dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Errorf("reading mountinfo: %v", err)
		return
	}
	var points []string
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(line)
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			points = append(points, fields[4])
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		if err := sys.Unmount(p, sys.MNT_DETACH); err != nil && err != sys.EINVAL && err != sys.ENOENT {
			t.Errorf("unmounting %s: %v", p, err)
		}
	}
}

// Run runs the docker client against the daemon with args and stdin (nil:
// none), bounded by [Timeout], and returns its stdout, stderr and exit
// code.
func (d *Daemon) Run(t testing.TB, stdin []byte, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.cli, append([]string{"-H", "unix://" + d.Socket}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	if _, exit := err.(*exec.ExitError); err != nil && !exit {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// Docker runs the docker client with args, fails t unless it succeeds, and
// returns its output without surrounding space.
func (d *Daemon) Docker(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, code := d.Run(t, nil, args...)
	if code != 0 {
		t.Fatalf("docker %s: exit code %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return strings.TrimSpace(out)
}

// Import makes the image name from files (a path in the image to the file
// on the host to copy there, mode 0755) with entrypoint as its
// ENTRYPOINT.
func (d *Daemon) Import(t testing.TB, name string, files map[string]string, entrypoint ...string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, at := range slices.Sorted(func(yield func(string) bool) {
		for k := range files {
			if !yield(k) {
				return
			}
		}
	}) {
		data, err := os.ReadFile(files[at])
		require.NoError(t, err)
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(at, "/"), Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}))
		_, err = tw.Write(data)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	args := []string{"import"}
	if len(entrypoint) > 0 {
		quoted := make([]string, len(entrypoint))
		for i, e := range entrypoint {
			quoted[i] = strconv.Quote(e)
		}
		args = append(args, "-c", "ENTRYPOINT ["+strings.Join(quoted, ", ")+"]")
	}
	args = append(args, "-", name)
	if out, errOut, code := d.Run(t, buf.Bytes(), args...); code != 0 {
		t.Fatalf("docker import %s: exit code %d\nstdout: %s\nstderr: %s", name, code, out, errOut)
	}
}

// InitPID returns the PID of the first process of running container id.
func (d *Daemon) InitPID(t testing.TB, id string) int {
	t.Helper()
	pid, err := strconv.Atoi(d.Docker(t, "inspect", "-f", "{{.State.Pid}}", id))
	require.NoError(t, err)
	require.Positive(t, pid, "container %s is not running", id)
	return pid
}

// StaticBinary builds the main package pkg (an import path, or a directory
// relative to the module's root) without cgo into a temporary directory of
// t, and returns the path of the binary, which runs in an image without a
// C library.
func StaticBinary(t testing.TB, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = moduleRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
	return out
}

// Sleeper returns a static binary that runs until it is sent SIGTERM.
func Sleeper(t testing.TB) string {
	t.Helper()
	return StaticBinary(t, "./internal/testing/dockertest/testdata/sleep")
}

// moduleRoot returns the directory of the module's go.mod.
func moduleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	require.NoError(t, err)
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("not inside the module")
	}
	return filepath.Dir(gomod)
}

// Logs returns what container id wrote to its stdout and stderr.
func (d *Daemon) Logs(t testing.TB, id string) string {
	t.Helper()
	out, errOut, _ := d.Run(t, nil, "logs", id)
	return out + errOut
}

// String names the daemon by its socket, for messages.
func (d *Daemon) String() string { return fmt.Sprintf("dockerd at %s", d.Socket) }
