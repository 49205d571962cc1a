package soak_test

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/examples/internal/metrics/metricstest"
	"github.com/spiffekit/spiffekit/internal/testing/calltest"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
	"github.com/spiffekit/spiffekit/workloadapi"
)

func TestMain(m *testing.M) {
	calltest.Main(dialCaller)
	progtest.Main(m)
}

// settings is what one soak run does.
type settings struct {
	streams  int           // Workload API streams held open
	perConn  int           // streams per client connection
	ttl      time.Duration // of the X509-SVIDs: the agent rotates them at half of it
	duration time.Duration // of the rotations phase
}

// long reports whether the long mode is asked for: SPIFFEKIT_SOAK=long,
// or SPIFFEKIT_LONG=1, which turns on every package's long mode.
func long(t *testing.T) bool {
	t.Helper()
	switch mode := os.Getenv("SPIFFEKIT_SOAK"); mode {
	case "long":
		return true
	case "":
		return os.Getenv("SPIFFEKIT_LONG") == "1"
	default:
		t.Fatalf("SPIFFEKIT_SOAK=%q: want long, or nothing for the short run", mode)
		return false
	}
}

// loadSettings returns the short run of the test suite, the long run in
// the long mode (see long), and either with the overrides of
// SPIFFEKIT_SOAK_STREAMS, _PER_CONN, _TTL and _DURATION.
func loadSettings(t *testing.T) settings {
	t.Helper()
	s := settings{streams: 1000, perConn: 1, ttl: 4 * time.Second, duration: 10 * time.Second}
	if raceEnabled {
		s.streams = 300
	}
	if long(t) {
		s = settings{streams: 10_000, perConn: 1, ttl: time.Minute, duration: time.Hour}
	}
	for _, o := range []struct {
		name string
		int  *int
		dur  *time.Duration
	}{
		{"SPIFFEKIT_SOAK_STREAMS", &s.streams, nil},
		{"SPIFFEKIT_SOAK_PER_CONN", &s.perConn, nil},
		{"SPIFFEKIT_SOAK_TTL", nil, &s.ttl},
		{"SPIFFEKIT_SOAK_DURATION", nil, &s.duration},
	} {
		v := os.Getenv(o.name)
		if v == "" {
			continue
		}
		var err error
		if o.int != nil {
			*o.int, err = strconv.Atoi(v)
			if err == nil && *o.int < 1 {
				err = fmt.Errorf("want 1 or more")
			}
		} else {
			*o.dur, err = time.ParseDuration(v)
			if err == nil && *o.dur < time.Second {
				err = fmt.Errorf("want 1s or more")
			}
		}
		require.NoError(t, err, o.name)
	}
	return s
}

// TestSoak holds cfg.streams Workload API streams open on a spiffe-agent
// whose X509-SVIDs live cfg.ttl, so that the agent rotates them every half
// TTL, for cfg.duration. Every stream must receive every rotation, in
// order, and end no watch with an error; the agent's goroutines must stay
// flat through the rotations and come back to where they were once the
// streams close; its resident memory must stay flat (see below); and the
// test process must leak no goroutine. The figures of each rotation are
// logged.
func TestSoak(t *testing.T) {
	cfg := loadSettings(t)
	t.Cleanup(leaktest.Check(t)) // after every other cleanup
	conns := (cfg.streams + cfg.perConn - 1) / cfg.perConn
	ensureOpenFiles(t, uint64(conns)+512) // for this process's connections, and the agent's (it inherits the limit)
	t.Logf("soak: %d streams over %d connections, X509-SVID TTL %s, rotations for %s", cfg.streams, conns, cfg.ttl, cfg.duration)

	metricsAddr := progtest.FreePort(t)
	e := progtest.NewEnv(t, "-x509-svid-ttl", cfg.ttl.String())
	e.StartServer()
	// All the streams come from this process's uid: the default rate limit
	// would have them open at 20 a second.
	agent := progtest.Start(t, e.AgentBin, append(e.AgentArgs(e.Token()),
		"-metrics-addr", metricsAddr, "-ratelimit-rate", "0")...)
	e.Entry(e.AgentID(), "spiffe://example.org/soak", "unix:uid:"+strconv.Itoa(os.Getuid()))
	progtest.WaitFor(t, "the SVID", func() bool { _, code := e.Fetch(); return code == 0 }, agent)
	scrape := func() agentSample { return scrapeAgent(t, "http://"+metricsAddr+"/metrics") }
	before := scrape()

	// Open the streams.
	rec := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var clients []*workloadapi.Client
	stop := sync.OnceFunc(func() {
		cancel()
		wg.Wait()
		for _, c := range clients {
			c.Close()
		}
	})
	t.Cleanup(stop)
	start := time.Now()
	for i := 0; i < cfg.streams; i += cfg.perConn {
		c, err := workloadapi.New(ctx, workloadapi.WithAddr("unix://"+e.APISock))
		require.NoError(t, err)
		clients = append(clients, c)
		for range min(cfg.perConn, cfg.streams-i) {
			s := rec.add(ctx)
			wg.Go(func() { _ = c.WatchX509Context(ctx, s) })
		}
	}
	openBound := time.Minute + time.Duration(cfg.streams)*10*time.Millisecond
	first := rec.waitAll(t, 0, openBound)
	t.Logf("%d streams open, each with its first X509-SVID, in %s", cfg.streams, time.Since(start).Round(time.Millisecond))
	open := scrape()
	require.Equal(t, float64(cfg.streams), open.streams, "the agent counts every stream open")

	// Rotations.
	type rotation struct {
		fanOut time.Duration
		agent  agentSample
		self   selfSample
	}
	var rots []rotation
	last := first
	deadline := time.Now().Add(cfg.duration)
	for time.Now().Before(deadline) {
		next, seenAt := rec.waitRotation(t, last, cfg.ttl+time.Minute)
		all := rec.waitAll(t, next, time.Minute+time.Duration(cfg.streams)*time.Millisecond)
		r := rotation{fanOut: time.Since(seenAt), agent: scrape(), self: sampleSelf()}
		rots = append(rots, r)
		t.Logf("rotation %d: %d/%d streams have it %s after the first; agent %d goroutines, RSS %.1f MiB, heap %.1f MiB; test %d goroutines, RSS %.1f MiB",
			len(rots), cfg.streams, cfg.streams, r.fanOut.Round(time.Millisecond), int(r.agent.goroutines), mib(r.agent.rss), mib(r.agent.heap),
			r.self.goroutines, mib(r.self.rss))
		last = all
	}
	require.GreaterOrEqual(t, len(rots), 2, "the agent rotated the SVIDs at least twice")

	// Every stream received every rotation, in order, and no error.
	lost, firstLost := rec.lost(first)
	assert.Zero(t, lost, "streams that missed a rotation or saw an error (%d rotations); first: %s", len(rots), firstLost)

	// Flat: goroutines within a little of each other at every rotation;
	// memory in the second half of the rotations within a quarter (plus
	// 16 MiB) of the most it took in the first half, while the heap grew
	// to its working size. A run of a few rotations is mostly that growth:
	// it gets half (plus 32 MiB), which only a gross leak passes.
	var gor, rss, fan []float64
	for _, r := range rots {
		gor = append(gor, r.agent.goroutines)
		rss = append(rss, r.agent.rss)
		fan = append(fan, float64(r.fanOut))
	}
	slack := 20 + float64(cfg.streams)/100
	assert.LessOrEqual(t, slices.Max(gor)-slices.Min(gor), slack, "the agent's goroutines through the rotations: %v", gor)
	early, late := slices.Max(rss[:len(rss)/2]), slices.Max(rss[len(rss)/2:])
	factor, extra := 1.25, float64(16<<20)
	if len(rots) < 20 {
		factor, extra = 1.5, 32<<20
	}
	assert.LessOrEqual(t, late, factor*early+extra, "the agent's RSS, most in the first half of the rotations and in the second: %.1f, %.1f MiB", mib(early), mib(late))
	// The slope of the second half, past the heap's growth to its working
	// size, says whether memory still grows; it means something in a long
	// run only.
	slope := "n/a (a short run)"
	if cfg.duration >= 10*time.Minute {
		slope = fmt.Sprintf("%+.1f MiB/h", slopePerHour(rots[len(rots)/2:], func(r rotation) (time.Time, float64) { return r.agent.at, mib(r.agent.rss) }))
	}
	t.Logf("summary: %d streams, %d rotations in %s, %d lost; fan-out p50 %s, max %s; agent goroutines %d before the streams, %d-%d with them; agent RSS %.1f MiB before, %.1f MiB at the first rotation, %.1f MiB at the last (max %.1f), second-half slope %s; test process goroutines %d-%d",
		cfg.streams, len(rots), time.Since(rots[0].agent.at).Round(time.Second), lost,
		time.Duration(median(fan)).Round(time.Millisecond), time.Duration(slices.Max(fan)).Round(time.Millisecond),
		int(before.goroutines), int(slices.Min(gor)), int(slices.Max(gor)),
		mib(before.rss), mib(rss[0]), mib(rss[len(rss)-1]), mib(slices.Max(rss)),
		slope,
		slices.MinFunc(rots, func(a, b rotation) int { return a.self.goroutines - b.self.goroutines }).self.goroutines,
		slices.MaxFunc(rots, func(a, b rotation) int { return a.self.goroutines - b.self.goroutines }).self.goroutines)

	// Once the streams close, the agent's goroutines come back down.
	stop()
	var after agentSample
	progtest.WaitFor(t, "the agent to end the streams' goroutines", func() bool {
		after = scrape()
		return after.streams == 0 && after.goroutines <= before.goroutines+5
	}, agent)
	t.Logf("streams closed: agent %d goroutines (%d before the streams), RSS %.1f MiB", int(after.goroutines), int(before.goroutines), mib(after.rss))
}

// recorder keeps what every stream received: for each, the rotations it
// saw, by index in the order they were first seen by any stream.
type recorder struct {
	mu      sync.Mutex
	index   map[string]int // leaf serial number -> rotation index
	firstAt []time.Time    // when each rotation was first seen
	streams []*stream
}

func newRecorder() *recorder { return &recorder{index: map[string]int{}} }

// stream is a workloadapi.X509ContextWatcher recording into its recorder.
type stream struct {
	r    *recorder
	ctx  context.Context
	seen []int // guarded by r.mu
	err  error // the first watch error, guarded by r.mu
}

func (r *recorder) add(ctx context.Context) *stream {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &stream{r: r, ctx: ctx}
	r.streams = append(r.streams, s)
	return s
}

func (s *stream) OnX509ContextUpdate(c *workloadapi.X509Context) {
	serial := c.DefaultSVID().Certificates[0].SerialNumber.String()
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	i, ok := s.r.index[serial]
	if !ok {
		i = len(s.r.firstAt)
		s.r.index[serial] = i
		s.r.firstAt = append(s.r.firstAt, time.Now())
	}
	if n := len(s.seen); n == 0 || s.seen[n-1] != i {
		s.seen = append(s.seen, i)
	}
}

func (s *stream) OnX509ContextWatchError(err error) {
	if s.ctx.Err() != nil {
		return // the test is closing the stream
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// waitAll waits (bounded) until every stream has received rotation from,
// or a later one, and none a later one than the others, and returns the
// rotation they all have.
func (r *recorder) waitAll(t *testing.T, from int, bound time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		r.mu.Lock()
		lo, hi, behind := math.MaxInt, -1, 0
		for _, s := range r.streams {
			at := -1
			if len(s.seen) > 0 {
				at = s.seen[len(s.seen)-1]
			}
			lo, hi = min(lo, at), max(hi, at)
			if at < from {
				behind++
			}
		}
		r.mu.Unlock()
		if lo >= from && lo == hi {
			return lo
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, %d of %d streams have not received rotation %d (the streams are at rotations %d to %d)", bound, behind, len(r.streams), from, lo, hi)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitRotation waits (bounded) until some stream receives a rotation
// after last, and returns it and when it was first seen.
func (r *recorder) waitRotation(t *testing.T, last int, bound time.Duration) (int, time.Time) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		r.mu.Lock()
		n := len(r.firstAt)
		var at time.Time
		if n > last+1 {
			at = r.firstAt[last+1]
		}
		r.mu.Unlock()
		if n > last+1 {
			return last + 1, at
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stream received a new X509-SVID within %s of rotation %d", bound, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lost counts the streams that, from rotation from on, did not receive
// every rotation in order, or saw a watch error; it describes the first.
func (r *recorder) lost(from int) (int, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	want := make([]int, 0, len(r.firstAt)-from)
	for i := from; i < len(r.firstAt); i++ {
		want = append(want, i)
	}
	lost, first := 0, ""
	for i, s := range r.streams {
		j := slices.Index(s.seen, from)
		ok := s.err == nil && j >= 0 && slices.Equal(s.seen[j:], want)
		if !ok {
			lost++
			if first == "" {
				first = fmt.Sprintf("stream %d saw rotations %v, error %v", i, s.seen, s.err)
			}
		}
	}
	return lost, first
}

// agentSample is what a scrape of the agent's metrics tells.
type agentSample struct {
	at                             time.Time
	goroutines, rss, heap, streams float64
}

func scrapeAgent(t *testing.T, url string) agentSample {
	t.Helper()
	m := metricstest.Scrape(t, url)
	s := agentSample{at: time.Now()}
	var ok bool
	s.goroutines, ok = m.Get("go_goroutines")
	require.True(t, ok, "go_goroutines")
	s.rss, ok = m.Get("process_resident_memory_bytes")
	require.True(t, ok, "process_resident_memory_bytes")
	s.heap, _ = m.Get("go_memstats_heap_inuse_bytes")
	s.streams, _ = m.Get("spiffekit_agent_workload_api_streams", "method", "FetchX509SVID")
	return s
}

// selfSample is the test process's own figures.
type selfSample struct {
	goroutines int
	rss        float64
}

func sampleSelf() selfSample {
	s := selfSample{goroutines: runtime.NumGoroutine()}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return s
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			s.rss = kb * 1024
		}
	}
	return s
}

// ensureOpenFiles raises RLIMIT_NOFILE to need if it is lower, the hard
// limit too if it must (which takes root), and restores it when the test
// ends.
func ensureOpenFiles(t *testing.T, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	if lim.Cur >= need {
		return
	}
	raised := syscall.Rlimit{Cur: need, Max: max(lim.Max, need)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
		t.Fatalf("the soak needs %d open files; RLIMIT_NOFILE is %d (hard %d) and cannot be raised: %v (raise it with ulimit -n, or run fewer streams: SPIFFEKIT_SOAK_STREAMS)",
			need, lim.Cur, lim.Max, err)
	}
	t.Logf("raised RLIMIT_NOFILE from %d (hard %d) to %d", lim.Cur, lim.Max, need)
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) })
}

func mib(b float64) float64 { return b / (1 << 20) }

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	return s[len(s)/2]
}

// slopePerHour is the least-squares slope of f over the samples, per hour.
func slopePerHour[T any](samples []T, f func(T) (time.Time, float64)) float64 {
	if len(samples) < 2 {
		return 0
	}
	t0, _ := f(samples[0])
	var n, sx, sy, sxx, sxy float64
	for _, s := range samples {
		at, y := f(s)
		x := at.Sub(t0).Hours()
		n++
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}
