package parallel

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestForCallsEachIndexOnce(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 100, 1000} {
		calls := make([]atomic.Int32, n)
		For(n, func(k int) { calls[k].Add(1) })
		for k := range calls {
			assert.Equal(t, int32(1), calls[k].Load(), "n=%d, index %d", n, k)
		}
	}
}

func TestForNegative(t *testing.T) {
	called := false
	For(-1, func(int) { called = true })
	assert.False(t, called)
}

// TestForRunsConcurrently shows the calls overlap when more than one core
// may run: every worker waits inside f until all of them are in.
func TestForRunsConcurrently(t *testing.T) {
	procs := 4
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	var in sync.WaitGroup
	in.Add(procs)
	var done atomic.Int32
	For(procs, func(int) {
		in.Done()
		in.Wait() // never returns unless procs calls run at once
		done.Add(1)
	})
	assert.Equal(t, int32(procs), done.Load())
}

// TestForOneCore runs everything on the calling goroutine.
func TestForOneCore(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	before := runtime.NumGoroutine()
	var seen []int
	For(5, func(k int) {
		assert.Equal(t, before, runtime.NumGoroutine())
		seen = append(seen, k) // no lock: one goroutine
	})
	assert.Equal(t, []int{0, 1, 2, 3, 4}, seen)
}

func ExampleFor() {
	squares := make([]int, 5)
	For(len(squares), func(k int) { squares[k] = k * k })
	fmt.Println(squares)
	// Output: [0 1 4 9 16]
}
