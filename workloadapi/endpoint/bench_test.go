package endpoint_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// BenchmarkRotationFanOut measures how long one rotation takes to reach N
// open FetchX509SVID streams: from MemoryHandler.Set until every stream has
// received the new message (100 streams per connection, as if 1 in 100
// workloads shared a process). Client and server run in this process, so
// the figure includes the clients' decoding.
func BenchmarkRotationFanOut(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			f := newFixture(b)
			views := []*endpoint.Snapshot{f.snapshot(f.svid(b, webID, "")), f.snapshot(f.svid(b, webID, ""))}
			require.NoError(b, f.handler.Set(f.uid, views[1]))
			_, path := serve(b, endpoint.Config{Handler: f.handler})
			got := watchers(b, path, n/100, 100)
			i := 0
			var worst time.Duration
			for b.Loop() {
				start := time.Now()
				require.NoError(b, f.handler.Set(f.uid, views[i%2]))
				for range n {
					<-got
				}
				worst = max(worst, time.Since(start))
				i++
			}
			b.ReportMetric(float64(worst.Milliseconds()), "worst-ms")
		})
	}
}
