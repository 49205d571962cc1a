package endpoint_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/workloadpb"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// countingObserver counts the codes of answered calls.
type countingObserver struct {
	mu    sync.Mutex
	codes map[codes.Code]int
}

func (o *countingObserver) Answered(_ string, code codes.Code, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.codes == nil {
		o.codes = map[codes.Code]int{}
	}
	o.codes[code]++
}
func (o *countingObserver) StreamOpened(string)             {}
func (o *countingObserver) StreamClosed(string, codes.Code) {}

func (o *countingObserver) count(c codes.Code) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.codes[c]
}

func TestRateLimitRefusesACallerOverItsBurst(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // after every other cleanup
	f := newFixture(t)
	require.NoError(t, f.handler.Set(f.uid, f.snapshot(f.svid(t, webID, ""))))
	obs := &countingObserver{}
	// One token per 1,000 s: no token comes back while the test runs.
	client, path := serve(t, endpoint.Config{
		Handler:   f.handler,
		Observer:  obs,
		RateLimit: &endpoint.RateLimit{Rate: 0.001, Burst: 3},
		Register:  func(s grpc.ServiceRegistrar) { healthpb.RegisterHealthServer(s, health.NewServer()) },
	})
	ctx := withHeader(t.Context())

	// The burst: two unary calls and one stream, whatever they receive.
	_, err := client.FetchJWTSVID(ctx, &workloadpb.JWTSVIDRequest{Audience: []string{"db"}})
	require.NoError(t, err)
	_, err = client.FetchJWTSVID(ctx, &workloadpb.JWTSVIDRequest{Audience: []string{"db"}})
	require.NoError(t, err)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.FetchX509SVID(sctx, &workloadpb.X509SVIDRequest{})
	require.NoError(t, err)
	_, err = stream.Recv()
	require.NoError(t, err, "the stream opened within the burst")

	// Over it: every method, unary or stream, is refused with a message
	// that says why.
	_, err = client.FetchJWTSVID(ctx, &workloadpb.JWTSVIDRequest{Audience: []string{"db"}})
	requireCode(t, codes.ResourceExhausted, err)
	assert.Equal(t, "workload API rate limit exceeded for FetchJWTSVID: each caller may make 0.001 calls per second, 3 at once; retry later",
		status.Convert(err).Message())
	_, err = recvFirst(t, ctx, client.FetchX509Bundles, &workloadpb.X509BundlesRequest{})
	requireCode(t, codes.ResourceExhausted, err)
	// A call without the security header is refused by the limit first:
	// it costs the server nothing more.
	_, err = client.ValidateJWTSVID(t.Context(), &workloadpb.ValidateJWTSVIDRequest{Audience: "db", Svid: "x"})
	requireCode(t, codes.ResourceExhausted, err)
	assert.Equal(t, 3, obs.count(codes.ResourceExhausted), "the observer sees the refused calls")

	// The stream opened before goes on receiving rotations.
	require.NoError(t, f.handler.Set(f.uid, f.snapshot(f.svid(t, dbID, ""))))
	resp, err := stream.Recv()
	require.NoError(t, err)
	assert.Equal(t, dbID.String(), resp.Svids[0].SpiffeId)

	// Other services on the endpoint are not limited.
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
}

func TestRateLimitRejectsABadConfig(t *testing.T) {
	f := newFixture(t)
	_, err := endpoint.New(endpoint.Config{Handler: f.handler, RateLimit: &endpoint.RateLimit{Rate: -1}})
	require.ErrorContains(t, err, "endpoint: rate limit: the rate must be a positive number")
	_, err = endpoint.New(endpoint.Config{Handler: f.handler, RateLimit: &endpoint.RateLimit{Burst: -1}})
	require.ErrorContains(t, err, "endpoint: rate limit: the burst must not be negative")
}

// TestRateLimitKeysTCPCallersByAddress floods the endpoint over TCP from
// 127.0.0.2 while a caller on 127.0.0.3 fetches: the flooder is refused,
// the other caller never is. The same property for uids, with real
// processes, is TestRateLimitKeepsOtherUIDsServed.
func TestRateLimitKeysTCPCallersByAddress(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // after every other cleanup
	f := newFixture(t)
	require.NoError(t, f.handler.Set("", f.snapshot(f.svid(t, webID, "")))) // TCP callers have no uid
	const burst = 50
	srv, err := endpoint.New(endpoint.Config{Handler: f.handler, RateLimit: &endpoint.RateLimit{Rate: 1, Burst: burst}})
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	from := func(ip string) workloadpb.WorkloadAPIClient {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		conn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }))
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		return workloadpb.NewWorkloadAPIClient(conn)
	}
	flooder, other := from("127.0.0.2"), from("127.0.0.3")
	wctx := withHeader(ctx)

	fctx, stopFlood := context.WithCancel(wctx)
	var refused, served atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for fctx.Err() == nil {
				_, err := flooder.FetchJWTSVID(fctx, &workloadpb.JWTSVIDRequest{Audience: []string{"db"}})
				switch status.Code(err) {
				case codes.OK:
					served.Add(1)
				case codes.ResourceExhausted:
					refused.Add(1)
				}
			}
		})
	}
	// Within its burst, the other caller is served every time, while the
	// flood goes on.
	for i := range burst {
		_, err := other.FetchJWTSVID(wctx, &workloadpb.JWTSVIDRequest{Audience: []string{"db"}})
		require.NoError(t, err, "call %d of the other caller", i)
	}
	require.Eventually(t, func() bool { return refused.Load() > 0 }, time.Minute, time.Millisecond, "the flooder is refused")
	// The flooder had its own burst: the calls that took its tokens all
	// end served, although some may still be in flight when the first
	// refusal comes back. Had the other caller drawn on the same bucket,
	// the flooder would get the burst only after the other caller's 50
	// calls refilled at one a second.
	require.Eventually(t, func() bool { return served.Load() >= burst }, 10*time.Second, time.Millisecond,
		"the flooder had its own burst")
	stopFlood()
	wg.Wait()
	t.Logf("flooder: %d served, %d refused", served.Load(), refused.Load())
}

// BenchmarkRateLimit measures what Config.RateLimit adds to a call: a
// FetchJWTSVID call and a FetchX509SVID stream opened until its first
// response, without a limit and with one never reached; and what a call
// refused by the limit costs the server, for comparison with one served.
func BenchmarkRateLimit(b *testing.B) {
	for _, l := range []struct {
		name  string
		limit *endpoint.RateLimit
	}{{"none", nil}, {"unreached", &endpoint.RateLimit{Rate: 1e12, Burst: 1 << 30}}} {
		f := newFixture(b)
		require.NoError(b, f.handler.Set(f.uid, f.snapshot(f.svid(b, webID, ""))))
		client, _ := serve(b, endpoint.Config{Handler: f.handler, RateLimit: l.limit})
		ctx := withHeader(b.Context())
		b.Run("FetchJWTSVID/limit="+l.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := client.FetchJWTSVID(ctx, &workloadpb.JWTSVIDRequest{Audience: []string{"db"}}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("FetchX509SVID/limit="+l.name, func(b *testing.B) {
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
	}
	f := newFixture(b)
	require.NoError(b, f.handler.Set(f.uid, f.snapshot(f.svid(b, webID, ""))))
	client, _ := serve(b, endpoint.Config{Handler: f.handler, RateLimit: &endpoint.RateLimit{Rate: 1e-9, Burst: 1}})
	ctx := withHeader(b.Context())
	b.Run("FetchJWTSVID/refused", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := client.FetchJWTSVID(ctx, &workloadpb.JWTSVIDRequest{Audience: []string{"db"}}); status.Code(err) == codes.OK {
				continue // the burst's one call
			} else if status.Code(err) != codes.ResourceExhausted {
				b.Fatal(err)
			}
		}
	})
}
