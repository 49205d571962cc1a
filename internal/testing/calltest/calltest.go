// Package calltest runs Workload API callers as processes of their own,
// under uids of their own, for the tests of per-caller limits: the test
// binary copies itself where another uid can run it ([Binary]), and starts
// copies of itself in a caller role ([Start]); its TestMain hands those to
// [Main]. Test only. [Binary] serves as well the tests that start their
// own binary again as another user, to be refused by a socket's mode or a
// uid check.
//
//	func TestMain(m *testing.M) {
//		calltest.Main(dial) // returns unless this process is a caller
//		os.Exit(m.Run())
//	}
//
// Roles:
//
//	flood ADDR N: N goroutines call Calls.Flood over and over, as fast as
//	   the server answers; "ready" is printed after Calls.ReadyAfter calls;
//	   closing stdin stops the flood
//	fetch ADDR N: N calls of Calls.Fetch one after the other, each timed
//
// Both print a [Report] as JSON on their last line.
package calltest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/internal/testing/logtest"
)

// envRole names the role of a test binary started by [Start].
const envRole = "SPIFFEKIT_CALLTEST_ROLE"

// Report is what a caller process prints on its last line.
type Report struct {
	Codes     map[string]int  // calls per gRPC status code
	Latencies []time.Duration // of each call, for "fetch"
}

// Calls are what a caller process does against the Workload API.
type Calls struct {
	// Flood is the i-th call of the flood's worker w.
	Flood func(ctx context.Context, w, i int) error
	// ReadyAfter is how many flood calls are made before "ready".
	ReadyAfter int
	// Fetch is the i-th call of a fetch run.
	Fetch func(ctx context.Context, i int) error
}

// Dial returns the calls of a caller of the Workload API at addr, and
// what closes its connection.
type Dial func(ctx context.Context, addr string) (Calls, func(), error)

// Main runs this process as a caller, with the calls dial gives, and exits,
// if [Start] started it; otherwise it returns at once.
func Main(dial Dial) {
	if role := os.Getenv(envRole); role != "" {
		os.Exit(run(role, os.Args[1:], dial, os.Stdin, os.Stdout))
	}
}

// run is the caller process's main: flood stops when stdin ends; "ready"
// and the report go to stdout.
func run(role string, args []string, dial Dial, stdin io.Reader, stdout io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "want ADDR N")
		return 2
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls, closeConn, err := dial(ctx, args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer closeConn()
	rep := Report{Codes: map[string]int{}}
	switch role {
	case "flood":
		go func() { // the parent closes stdin to stop the flood
			_, _ = bufio.NewReader(stdin).ReadByte()
			cancel()
		}()
		var mu sync.Mutex
		var wg sync.WaitGroup
		made := 0
		for w := range n {
			wg.Go(func() {
				for i := 0; ctx.Err() == nil; i++ {
					err := calls.Flood(ctx, w, i)
					if ctx.Err() != nil {
						return
					}
					mu.Lock()
					rep.Codes[status.Code(err).String()]++
					if made++; made == calls.ReadyAfter {
						fmt.Fprintln(stdout, "ready")
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	case "fetch":
		for i := range n {
			start := time.Now()
			err := calls.Fetch(ctx, i)
			rep.Latencies = append(rep.Latencies, time.Since(start))
			rep.Codes[status.Code(err).String()]++
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown role", role)
		return 2
	}
	if err := json.NewEncoder(stdout).Encode(rep); err != nil {
		return 1
	}
	return 0
}

// Binary copies the running test binary into dir, as "caller", readable
// and executable by every uid, and returns its path: for any test that
// starts its own binary again under another uid, which cannot run it
// where the go command built it. The other uid must be able to traverse
// dir, which t.TempDir's parents keep it from (0700); dir must not hold a
// "caller" yet.
func Binary(t testing.TB, dir string) string {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	src, err := os.Open(self)
	require.NoError(t, err)
	defer src.Close()
	bin := filepath.Join(dir, "caller")
	dst, err := os.OpenFile(bin, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Chmod(0o755), "whatever the umask")
	require.NoError(t, dst.Close())
	return bin
}

// Proc is a running caller process.
type Proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr logtest.Buffer // written by the process while the test reads it
}

// Start starts bin (see [Binary]) as a caller in role of the Workload API
// at addr, under uid (and the gid of the same number), with n workers
// (flood) or calls (fetch). It is killed when the test ends, if still
// running.
func Start(t testing.TB, bin string, uid int, role, addr string, n int) *Proc {
	t.Helper()
	p := &Proc{cmd: exec.Command(bin, addr, strconv.Itoa(n))}
	p.cmd.Env = append(os.Environ(), envRole+"="+role)
	require.NoError(t, runAs(p.cmd, uid))
	p.cmd.Stderr = &p.stderr
	var err error
	p.stdin, err = p.cmd.StdinPipe()
	require.NoError(t, err)
	out, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	p.stdout = bufio.NewReader(out)
	require.NoError(t, p.cmd.Start())
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	return p
}

// WaitReady waits for a flood's "ready" line.
func (p *Proc) WaitReady(t testing.TB) {
	t.Helper()
	line, err := p.stdout.ReadString('\n')
	require.NoError(t, err, "caller: %s", p.stderr.String())
	require.Equal(t, "ready\n", line)
}

// Stop tells a flood to stop; [Proc.Wait] then returns its report.
func (p *Proc) Stop() {
	p.stdin.Close()
}

// Wait waits for the caller to exit and returns its report.
func (p *Proc) Wait(t testing.TB) Report {
	t.Helper()
	var rep Report
	require.NoError(t, json.NewDecoder(p.stdout).Decode(&rep), "caller: %s", p.stderr.String())
	require.NoError(t, p.cmd.Wait(), "caller: %s", p.stderr.String())
	return rep
}

// Quantile returns the q-quantile (0 < q <= 1) of d, by the nearest rank;
// 0 for no durations.
func Quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(d))
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}
