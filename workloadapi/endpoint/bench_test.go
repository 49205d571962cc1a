package endpoint_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/spiffekit/spiffekit/internal/workloadpb"
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

// nopObserver is an endpoint.Observer that does nothing: what the
// server's accounting costs, without the cost of any metrics library.
type nopObserver struct{}

func (nopObserver) Answered(string, codes.Code, time.Duration) {}
func (nopObserver) StreamOpened(string)                        {}
func (nopObserver) StreamClosed(string, codes.Code)            {}

// BenchmarkObserver measures what Config.Observer adds to a call: a
// FetchX509SVID stream opened, its first response received and the stream
// closed, and a FetchJWTSVID call, each without an observer and with one
// that does nothing.
func BenchmarkObserver(b *testing.B) {
	for _, o := range []struct {
		name string
		o    endpoint.Observer
	}{{"none", nil}, {"nop", nopObserver{}}} {
		f := newFixture(b)
		require.NoError(b, f.handler.Set(f.uid, f.snapshot(f.svid(b, webID, ""))))
		client, _ := serve(b, endpoint.Config{Handler: f.handler, Observer: o.o})
		ctx := withHeader(b.Context())
		b.Run("FetchX509SVID/observer="+o.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sctx, cancel := context.WithCancel(ctx)
				s, err := client.FetchX509SVID(sctx, &workloadpb.X509SVIDRequest{})
				if err == nil {
					_, err = s.Recv()
				}
				cancel()
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("FetchJWTSVID/observer="+o.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := client.FetchJWTSVID(ctx, &workloadpb.JWTSVIDRequest{Audience: []string{"db"}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
