package cli

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const mib = 1 << 20

// The heap may grow by half its live size, but by no less than 8 MiB.
func TestGCPacerWant(t *testing.T) {
	p := newGCPacer()
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 50},            // before the first collection: GOGC=50 as set
		{1 * mib, 800},     // 8 MiB of headroom on 1 MiB
		{4 * mib, 200},     // on 4 MiB
		{8 * mib, 100},     // Go's default
		{15 * mib, 54},     // 8.1 MiB: rounded up, never below the headroom
		{16 * mib, 50},     // half the live heap is the headroom
		{100 * mib, 50},    // an agent of many entries: half
		{3*mib + 1, 267},   // 8 MiB on 3 MiB and a byte, rounded up
		{1 << 40, 50},      // no overflow
		{1, 8 * mib * 100}, // a byte: the headroom still (no division by zero)
		{16*mib - 1, 51},   // just under
		{16*mib + 1, 50},   // just over
		{12 * mib, 67},     // 66.7, rounded up
	} {
		got := p.want(c.live)
		assert.Equal(t, c.want, got, "live %d", c.live)
		if c.live > 0 {
			assert.GreaterOrEqual(t, c.live*uint64(got)/100, max(uint64(gcMinHeadroom), c.live*50/100), "live %d: the headroom", c.live)
		}
	}
}

// Run sets GOGC at once, again after each collection that calls for
// another value, and returns when ctx is done.
func TestGCPacerRun(t *testing.T) {
	var (
		mu   sync.Mutex
		live = []uint64{4 * mib, 4 * mib, 1 * mib, 100 * mib}
		set  []int
	)
	p := &gcPacer{percent: 50, minHeadroom: 8 * mib,
		live: func() uint64 {
			mu.Lock()
			defer mu.Unlock()
			v := live[0]
			if len(live) > 1 {
				live = live[1:]
			}
			return v
		},
		set: func(v int) int {
			mu.Lock()
			defer mu.Unlock()
			set = append(set, v)
			return 0
		},
	}
	sets := func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), set...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	// 4 MiB at once (200); 4 MiB again (unchanged: not set); 1 MiB (800);
	// 100 MiB (50), each after a collection.
	want := []int{200, 800, 50}
	for i := 0; i < 500 && len(sets()) < len(want); i++ {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	assert.Equal(t, want, sets())

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	// After Run, collections set nothing.
	n := len(sets())
	for range 3 {
		runtime.GC()
	}
	assert.Len(t, sets(), n)
}

// The agent's pacer reads the live heap the runtime reports.
func TestLiveHeap(t *testing.T) {
	keep := make([]byte, 4*mib)
	runtime.GC()
	assert.GreaterOrEqual(t, liveHeap(), uint64(len(keep)))
	runtime.KeepAlive(keep)
}
