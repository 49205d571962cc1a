package cli

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
)

// The agent's garbage collection: the heap may grow by half its live size
// between collections (GOGC=50), but by at least gcMinHeadroom.
//
// Half the live heap holds the memory of an agent with many entries low:
// once its SVIDs are minted it allocates little, so collecting often costs
// little. A small heap (an agent of a few entries) would be collected every
// couple of MiB allocated, some hundreds of Workload API calls, and each
// collection delays the calls it meets: the headroom keeps those
// collections as rare as Go's default (GOGC=100) would make them, for a few
// MiB (docs/PERFORMANCE.md has the figures).
const (
	defaultGCPercent = 50
	gcMinHeadroom    = 8 << 20
)

// setGCPercent sets defaultGCPercent unless $GOGC is set, and returns the
// setting in force, as $GOGC spells it, and whether the agent paces the
// collector (a gcPacer's Run), which it does only when $GOGC is not set.
func setGCPercent() (string, bool) {
	if v, ok := os.LookupEnv("GOGC"); ok {
		return v, false
	}
	debug.SetGCPercent(defaultGCPercent)
	return strconv.Itoa(defaultGCPercent), true
}

// gcPacer sets GOGC after each collection so that the heap may grow by
// percent of its live size, or by minHeadroom bytes if that is more.
type gcPacer struct {
	percent     int
	minHeadroom uint64
	// live reads the heap the last collection found live, in bytes (0
	// before the first); set, GOGC's setter (debug.SetGCPercent).
	live func() uint64
	set  func(int) int
	cur  int // the GOGC set last
}

// newGCPacer returns the agent's pacer: defaultGCPercent, gcMinHeadroom.
func newGCPacer() *gcPacer {
	return &gcPacer{percent: defaultGCPercent, minHeadroom: gcMinHeadroom, live: liveHeap, set: debug.SetGCPercent}
}

// liveHeap is the heap the last collection marked live.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// want is the GOGC for a live heap of live bytes.
func (p *gcPacer) want(live uint64) int {
	if live == 0 || live*uint64(p.percent)/100 >= p.minHeadroom {
		return p.percent
	}
	return int((p.minHeadroom*100 + live - 1) / live)
}

// adjust sets the GOGC the live heap calls for, if it changed.
func (p *gcPacer) adjust() {
	if w := p.want(p.live()); w != p.cur {
		p.set(w)
		p.cur = w
	}
}

// gcSentinel is an object whose cleanup tells that a collection ran. It
// holds a pointer so that it is never one of the runtime's tiny
// allocations, which are freed together.
type gcSentinel struct {
	_ *int
	_ [8]byte
}

// Run adjusts GOGC now and after every collection until ctx is done.
func (p *gcPacer) Run(ctx context.Context) error {
	collected := make(chan struct{}, 1)
	var arm func()
	arm = func() {
		runtime.AddCleanup(new(gcSentinel), func(struct{}) {
			select {
			case collected <- struct{}{}:
			default:
			}
			if ctx.Err() == nil {
				arm()
			}
		}, struct{}{})
	}
	arm()
	p.adjust()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-collected:
			p.adjust()
		}
	}
}
