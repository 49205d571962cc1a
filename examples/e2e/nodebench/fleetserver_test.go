package nodebench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/server"
)

// The fleet's issuing server runs in a process of its own, the test binary
// started again with envFleetServer set (see fleetServerMain): its CPU time,
// memory and file descriptors are then its own, apart from those of the
// thousands of simulated agents of the test process.
const envFleetServer = "SPIFFEKIT_FLEET_SERVER"

// fleetServerMain runs the fleet's server and exits when the test binary
// was started as one (envFleetServer set); otherwise it returns at once.
// Its arguments are the data directory, the node API's address and the
// admin socket.
func fleetServerMain() {
	if os.Getenv(envFleetServer) == "" {
		return
	}
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "fleet server: want DATADIR ADDR ADMINSOCKET")
		os.Exit(2)
	}
	if err := runFleetServer(os.Args[1], os.Args[2], os.Args[3], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fleet server:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// fleetStats is what the server process says of itself.
type fleetStats struct {
	Queries queryCounts
	// CPU is the process's user and system CPU time so far.
	CPU time.Duration
	// HeapAlloc and HeapSys are the runtime's (runtime.MemStats);
	// LiveHeap is HeapAlloc after a full collection, when asked for.
	HeapAlloc, HeapSys, LiveHeap uint64
	// RSS and PeakRSS are the kernel's VmRSS and VmHWM, in bytes.
	RSS, PeakRSS uint64
	Goroutines   int
	Streams      int // open entry streams
	// GCs counts the garbage collections so far (runtime.MemStats.NumGC),
	// the runtime's forced one every two minutes included; GCCPU is the
	// CPU time they took (runtime/metrics' /cpu/classes/gc/total).
	GCs   uint32
	GCCPU time.Duration
}

// runFleetServer runs an issuing server with its state in dir (SQLite,
// server.OpenSQLite, as spiffe-server keeps it), its registry and agent
// store behind one countingStore, until in ends. It writes "ready ADDR"
// once serving, then answers each command line of in with one line:
//
//	stats      the fleetStats, as JSON
//	gcstats    the same, LiveHeap measured after a full collection
//	cpu PATH   starts a CPU profile into PATH; "ok"
//	cpustop    stops it; "ok"
//	heap PATH  writes a heap profile (after a collection) into PATH; "ok"
func runFleetServer(dir, addr, adminSocket string, in io.Reader, out io.Writer) error {
	if err := raiseFileLimit(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg, st, err := server.OpenSQLite(ctx, td, dir)
	if err != nil {
		return err
	}
	defer st.Close()
	counting := &countingStore{Store: st}
	cfg.Stores = server.StoresOf(counting)
	cfg.BindAddr, cfg.AdminSocket = addr, adminSocket
	s, err := server.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	fmt.Fprintf(out, "ready %s\n", s.Addr())

	var profile *os.File
	defer func() {
		if profile != nil {
			pprof.StopCPUProfile()
			profile.Close()
		}
	}()
	lines := bufio.NewScanner(in)
	for lines.Scan() {
		cmd, arg, _ := strings.Cut(lines.Text(), " ")
		var answer any = "ok"
		switch cmd {
		case "stats", "gcstats":
			answer = fleetSelfStats(counting, s, cmd == "gcstats")
		case "cpu":
			if profile != nil {
				return fmt.Errorf("a CPU profile is running already")
			}
			if profile, err = os.Create(arg); err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(profile); err != nil {
				return err
			}
		case "cpustop":
			if profile != nil {
				pprof.StopCPUProfile()
				if err := profile.Close(); err != nil {
					return err
				}
				profile = nil
			}
		case "heap":
			runtime.GC()
			f, err := os.Create(arg)
			if err != nil {
				return err
			}
			err = pprof.Lookup("heap").WriteTo(f, 0)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown command %q", cmd)
		}
		line, err := json.Marshal(answer)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s\n", line)
	}
	// in ended: stop as an operator's signal would stop the server.
	cancel()
	if err := <-ran; err != nil {
		return err
	}
	return lines.Err()
}

// fleetSelfStats returns the server process's fleetStats.
func fleetSelfStats(c *countingStore, s *server.Server, gc bool) fleetStats {
	st := fleetStats{Queries: c.counts(), Goroutines: runtime.NumGoroutine(), Streams: s.Node().Stats().Streams}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		st.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	st.HeapAlloc, st.HeapSys = m.HeapAlloc, m.HeapSys
	st.GCs = m.NumGC
	gcCPU := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(gcCPU)
	if gcCPU[0].Value.Kind() == metrics.KindFloat64 {
		st.GCCPU = time.Duration(gcCPU[0].Value.Float64() * float64(time.Second))
	}
	if gc {
		st.LiveHeap = heapInUse()
	}
	st.RSS, st.PeakRSS = procStatus(os.Getpid())
	return st
}

// procStatus returns the VmRSS and VmHWM of process pid, in bytes; zero
// where /proc does not tell.
func procStatus(pid int) (rss, peak uint64) {
	data, err := os.ReadFile(filepath.Join("/proc", fmt.Sprint(pid), "status"))
	if err != nil {
		return 0, 0
	}
	for line := range strings.Lines(string(data)) {
		var kb uint64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			fmt.Sscanf(strings.TrimPrefix(line, "VmRSS:"), "%d", &kb)
			rss = kb << 10
		case strings.HasPrefix(line, "VmHWM:"):
			fmt.Sscanf(strings.TrimPrefix(line, "VmHWM:"), "%d", &kb)
			peak = kb << 10
		}
	}
	return rss, peak
}

// raiseFileLimit raises the soft limit of open files to the hard limit:
// each agent's connection is a descriptor in the agents' process and one
// in the server's. (Go raises it too when the os package starts; this makes
// the step explicit, and checks it.)
func raiseFileLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("reading RLIMIT_NOFILE: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("raising RLIMIT_NOFILE: %w", err)
		}
	}
	return nil
}

// fileLimit returns the soft limit of open files.
func fileLimit() uint64 {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
		return 0
	}
	return lim.Cur
}

// fleetServer is a running server process of the fleet.
type fleetServer struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   *bufio.Scanner
	stderr  *strings.Builder
	addr    string
	started time.Time     // when the process was started
	ready   time.Duration // from started to "ready"
	done    chan error
}

// startFleetServer starts a server process on dir, listening on addr, and
// waits until it serves. The test stops it (see stop) when it ends.
func startFleetServer(tb testing.TB, dir, addr, adminSocket string) *fleetServer {
	tb.Helper()
	exe, err := os.Executable()
	require.NoError(tb, err)
	s := &fleetServer{cmd: exec.Command(exe, dir, addr, adminSocket), stderr: &strings.Builder{}, done: make(chan error, 1)}
	s.cmd.Env = append(os.Environ(), envFleetServer+"=1")
	s.cmd.Stderr = s.stderr
	s.stdin, err = s.cmd.StdinPipe()
	require.NoError(tb, err)
	stdout, err := s.cmd.StdoutPipe()
	require.NoError(tb, err)
	s.lines = bufio.NewScanner(stdout)
	s.lines.Buffer(make([]byte, 64<<10), 1<<20)
	s.started = time.Now()
	require.NoError(tb, s.cmd.Start())
	tb.Cleanup(func() { s.kill() })
	line := s.line(tb)
	addr, ok := strings.CutPrefix(line, "ready ")
	require.True(tb, ok, "the server's first line: %q", line)
	s.ready, s.addr = time.Since(s.started), addr
	return s
}

// line reads the next line of the server, failing tb if there is none.
func (s *fleetServer) line(tb testing.TB) string {
	tb.Helper()
	if !s.lines.Scan() {
		tb.Fatalf("the fleet server ended: %v; stderr: %s", s.lines.Err(), s.stderr)
	}
	return s.lines.Text()
}

// do sends one command and returns its answer, decoded into out.
func (s *fleetServer) do(tb testing.TB, cmd string, out any) {
	tb.Helper()
	_, err := fmt.Fprintln(s.stdin, cmd)
	require.NoError(tb, err)
	require.NoError(tb, json.Unmarshal([]byte(s.line(tb)), out), "the answer to %q", cmd)
}

// stats returns the server's fleetStats; with gc, after a full collection.
func (s *fleetServer) stats(tb testing.TB, gc bool) fleetStats {
	tb.Helper()
	cmd := "stats"
	if gc {
		cmd = "gcstats"
	}
	var st fleetStats
	s.do(tb, cmd, &st)
	return st
}

// command sends a command whose answer is "ok".
func (s *fleetServer) command(tb testing.TB, cmd string) {
	tb.Helper()
	var ok string
	s.do(tb, cmd, &ok)
	require.Equal(tb, "ok", ok)
}

// stop ends the server's input, as a signal would stop it, and waits
// until it has exited, successfully.
func (s *fleetServer) stop(tb testing.TB) {
	tb.Helper()
	require.NoError(tb, s.stdin.Close())
	go func() { s.done <- s.cmd.Wait() }()
	select {
	case err := <-s.done:
		require.NoError(tb, err, "the fleet server's exit; stderr: %s", s.stderr)
	case <-time.After(time.Minute):
		tb.Fatalf("the fleet server did not stop within a minute")
	}
	s.cmd = nil
}

// kill ends a server process that stop did not end.
func (s *fleetServer) kill() {
	if s.cmd == nil {
		return
	}
	s.stdin.Close()
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}
