package failure

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	gsworkloadapi "github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/conformance/internal/workloadtest"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

func withHeader(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "workload.spiffe.io", "true")
}

// TestClientLeavingMidStreamLeavesNoGoroutine: watch streams whose clients
// cancel them, or drop the whole connection, end on the server side too;
// no goroutine started since they opened is left.
func TestClientLeavingMidStreamLeavesNoGoroutine(t *testing.T) {
	f := workloadtest.New(t)
	require.NoError(t, f.Handler.Set(f.UID, f.Snapshot(f.SVID(t, workloadtest.WebID, ""))))
	srv := workloadtest.Serve(t, endpoint.Config{Handler: f.Handler})

	t.Run("stream cancelled, connection kept", func(t *testing.T) {
		conn := dial(t, srv.Addr)
		stub := workload.NewSpiffeWorkloadAPIClient(conn)
		// Establish the transport first, so only per-stream goroutines
		// are counted.
		_, err := stub.FetchJWTSVID(withHeader(testContext(t)), &workload.JWTSVIDRequest{Audience: []string{"db"}})
		require.NoError(t, err)
		baseline := goleak.IgnoreCurrent()

		var cancels []context.CancelFunc
		for range 20 {
			ctx, cancel := context.WithCancel(withHeader(t.Context()))
			cancels = append(cancels, cancel)
			stream, err := stub.FetchX509SVID(ctx, &workload.X509SVIDRequest{})
			require.NoError(t, err)
			_, err = stream.Recv()
			require.NoError(t, err)
		}
		require.Error(t, goleak.Find(baseline), "the streams run goroutines")
		for _, cancel := range cancels {
			cancel()
		}
		workloadtest.VerifyNone(t, baseline)
	})

	t.Run("go-spiffe client closed mid-watch", func(t *testing.T) {
		baseline := goleak.IgnoreCurrent()
		client, err := gsworkloadapi.New(testContext(t), gsworkloadapi.WithAddr(srv.Addr))
		require.NoError(t, err)
		updates := make(chan struct{}, 16)
		w := &notifyWatcher{updates: updates}
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() { _ = client.WatchX509Context(context.Background(), w) })
		}
		for range 5 {
			_, err := workloadtest.Recv(updates, timeout)
			require.NoError(t, err)
		}
		// Closing the client mid-stream: the watches end (Canceled) and
		// the server's handlers return.
		require.NoError(t, client.Close())
		wg.Wait()
		workloadtest.VerifyNone(t, baseline)
	})
}

type notifyWatcher struct{ updates chan struct{} }

func (w *notifyWatcher) OnX509ContextUpdate(*gsworkloadapi.X509Context) { w.updates <- struct{}{} }
func (w *notifyWatcher) OnX509ContextWatchError(error)                  {}

// TestThousandGoSPIFFEWatchers opens 1,000 go-spiffe watch streams on one
// server (over ten connections), pushes one rotation and waits until every
// watcher has it.
func TestThousandGoSPIFFEWatchers(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 streams: skipped in -short mode")
	}
	const clients, perClient = 10, 100
	f := workloadtest.New(t)
	require.NoError(t, f.Handler.Set(f.UID, f.Snapshot(f.SVID(t, workloadtest.WebID, ""))))
	srv := workloadtest.Serve(t, endpoint.Config{Handler: f.Handler})

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	// Each watcher reports the leaf serial of every update it gets.
	updates := make(chan string, clients*perClient*2)
	for range clients {
		client, err := gsworkloadapi.New(testContext(t), gsworkloadapi.WithAddr(srv.Addr))
		require.NoError(t, err)
		t.Cleanup(func() { client.Close() })
		for range perClient {
			wg.Go(func() { _ = client.WatchX509Context(ctx, serialWatcher(updates)) })
		}
	}
	for range clients * perClient {
		_, err := workloadtest.Recv(updates, timeout)
		require.NoError(t, err)
	}

	next := f.SVID(t, workloadtest.WebID, "")
	start := time.Now()
	require.NoError(t, f.Handler.Set(f.UID, f.Snapshot(next)))
	for range clients * perClient {
		serial, err := workloadtest.Recv(updates, timeout)
		require.NoError(t, err)
		require.Equal(t, next.Certificates[0].SerialNumber.String(), serial)
	}
	t.Logf("one rotation reached %d go-spiffe watchers in %v", clients*perClient, time.Since(start))
}

type serialWatcher chan<- string

func (w serialWatcher) OnX509ContextUpdate(c *gsworkloadapi.X509Context) {
	w <- c.SVIDs[0].Certificates[0].SerialNumber.String()
}
func (serialWatcher) OnX509ContextWatchError(error) {}

// rawCodec sends request bytes as they are, to forge malformed messages.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

var _ encoding.Codec = rawCodec{}

// TestMalformedRequests sends bytes that are not the request message the
// method expects: the server refuses them with an error status, never
// crashes, and keeps serving well-formed requests.
func TestMalformedRequests(t *testing.T) {
	f := workloadtest.New(t)
	require.NoError(t, f.Handler.Set(f.UID, f.Snapshot(f.SVID(t, workloadtest.WebID, ""))))
	srv := workloadtest.Serve(t, endpoint.Config{Handler: f.Handler})
	conn := dial(t, srv.Addr)
	ctx := withHeader(testContext(t))

	tests := []struct {
		name   string
		method string
		body   []byte
		want   []codes.Code
	}{
		{"truncated varint", "FetchJWTSVID", []byte{0x0a, 0xff}, []codes.Code{codes.Internal, codes.InvalidArgument}},
		{"length past the end", "FetchJWTSVID", []byte{0x0a, 0x10, 'a'}, []codes.Code{codes.Internal, codes.InvalidArgument}},
		{"wrong wire type for audience", "FetchJWTSVID", []byte{0x08, 0x01}, []codes.Code{codes.Internal, codes.InvalidArgument}},
		{"invalid UTF-8 in a string", "FetchJWTSVID", []byte{0x0a, 0x02, 0xff, 0xfe}, []codes.Code{codes.Internal, codes.InvalidArgument}},
		{"no audience (empty message)", "FetchJWTSVID", nil, []codes.Code{codes.InvalidArgument}},
		{"unknown field only", "FetchJWTSVID", []byte{0x78, 0x01}, []codes.Code{codes.InvalidArgument}},
		{"garbage token", "ValidateJWTSVID", []byte{0x0a, 0x02, 'd', 'b', 0x12, 0x05, 'a', '.', 'b', '.', 'c'}, []codes.Code{codes.InvalidArgument}},
		{"oversized", "ValidateJWTSVID", append([]byte{0x12, 0x80, 0x80, 0x08}, make([]byte, 128<<10)...), []codes.Code{codes.ResourceExhausted}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out []byte
			in := tt.body
			err := conn.Invoke(ctx, "/SpiffeWorkloadAPI/"+tt.method, &in, &out, grpc.ForceCodec(rawCodec{}))
			require.Error(t, err)
			assert.Contains(t, tt.want, status.Code(err), "%v", err)
		})
	}

	// Malformed request bytes on a streaming method.
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/SpiffeWorkloadAPI/FetchX509SVID", grpc.ForceCodec(rawCodec{}))
	require.NoError(t, err)
	bad := []byte{0x0a, 0xff}
	require.NoError(t, stream.SendMsg(&bad))
	require.NoError(t, stream.CloseSend())
	var out []byte
	err = stream.RecvMsg(&out)
	assert.Contains(t, []codes.Code{codes.Internal, codes.InvalidArgument}, status.Code(err), "%v", err)

	// Still serving.
	resp, err := workload.NewSpiffeWorkloadAPIClient(conn).FetchJWTSVID(ctx, &workload.JWTSVIDRequest{Audience: []string{"db"}})
	require.NoError(t, err)
	assert.Len(t, resp.Svids, 1)
}
