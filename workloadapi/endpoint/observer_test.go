package endpoint_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/spiffekit/spiffekit/internal/workloadpb"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// recorder is an endpoint.Observer that keeps what it is told, one line
// per call ("answered FetchX509SVID OK"), and signals each on events.
type recorder struct {
	mu     sync.Mutex
	lines  []string
	events chan string
}

func newRecorder() *recorder { return &recorder{events: make(chan string, 100)} }

func (r *recorder) add(line string) {
	r.mu.Lock()
	r.lines = append(r.lines, line)
	r.mu.Unlock()
	r.events <- line
}

func (r *recorder) Answered(method string, code codes.Code, d time.Duration) {
	if d < 0 {
		panic("negative duration")
	}
	r.add(fmt.Sprintf("answered %s %s", method, code))
}

func (r *recorder) StreamOpened(method string) { r.add("opened " + method) }

func (r *recorder) StreamClosed(method string, code codes.Code) {
	r.add(fmt.Sprintf("closed %s %s", method, code))
}

// await returns the next n lines the observer is told.
func (r *recorder) await(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	for range n {
		select {
		case l := <-r.events:
			got = append(got, l)
		case <-t.Context().Done():
			t.Fatalf("got %q, want %d lines", got, n)
		}
	}
	return got
}

// TestObserverStream follows a FetchX509SVID stream: opened, answered OK
// at its first response, closed OK when the caller leaves.
func TestObserverStream(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, f.handler.Set(f.uid, f.snapshot(f.svid(t, webID, ""))))
	rec := newRecorder()
	client, _ := serve(t, endpoint.Config{Handler: f.handler, Observer: rec})

	ctx, cancel := context.WithCancel(withHeader(t.Context()))
	requireFirstX509SVID(t, ctx, client, webID)
	assert.Equal(t, []string{"opened FetchX509SVID", "answered FetchX509SVID OK"}, rec.await(t, 2))
	cancel()
	assert.Equal(t, []string{"closed FetchX509SVID OK"}, rec.await(t, 1))
}

// TestObserverFailures: a stream refused before any response is answered
// with its code; so is a failed unary call.
func TestObserverFailures(t *testing.T) {
	f := newFixture(t) // this UID holds no identity
	rec := newRecorder()
	client, _ := serve(t, endpoint.Config{Handler: f.handler, Observer: rec})
	ctx := withHeader(t.Context())

	_, err := recvFirst(t, ctx, client.FetchX509Bundles, &workloadpb.X509BundlesRequest{})
	requireCode(t, codes.PermissionDenied, err)
	assert.Equal(t, []string{
		"opened FetchX509Bundles",
		"answered FetchX509Bundles PermissionDenied",
		"closed FetchX509Bundles PermissionDenied",
	}, rec.await(t, 3))

	_, err = client.FetchJWTSVID(t.Context(), &workloadpb.JWTSVIDRequest{Audience: []string{"db"}}) // no header
	requireCode(t, codes.InvalidArgument, err)
	assert.Equal(t, []string{"answered FetchJWTSVID InvalidArgument"}, rec.await(t, 1))

	_, err = client.FetchJWTSVID(ctx, &workloadpb.JWTSVIDRequest{Audience: []string{"db"}})
	requireCode(t, codes.PermissionDenied, err)
	assert.Equal(t, []string{"answered FetchJWTSVID PermissionDenied"}, rec.await(t, 1))
}

// TestObserverUnaryOK: a JWT-SVID handed out is answered OK.
func TestObserverUnaryOK(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, f.handler.Set(f.uid, f.snapshot(f.svid(t, webID, ""))))
	rec := newRecorder()
	client, _ := serve(t, endpoint.Config{Handler: f.handler, Observer: rec})
	_, err := client.FetchJWTSVID(withHeader(t.Context()), &workloadpb.JWTSVIDRequest{Audience: []string{"db"}})
	require.NoError(t, err)
	assert.Equal(t, []string{"answered FetchJWTSVID OK"}, rec.await(t, 1))
}

// TestObserverSkipsOtherServices: services added with Config.Register are
// served as before and not observed.
func TestObserverSkipsOtherServices(t *testing.T) {
	f := newFixture(t)
	rec := newRecorder()
	_, path := serve(t, endpoint.Config{Handler: f.handler, Observer: rec, Register: func(r grpc.ServiceRegistrar) {
		healthpb.RegisterHealthServer(r, health.NewServer())
	}})
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	_, err = hc.Check(t.Context(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	_, err = w.Recv()
	require.NoError(t, err)
	cancel()

	// A Workload API call after them is the first thing observed.
	_, err = dial(t, "unix://"+path).FetchJWTSVID(t.Context(), &workloadpb.JWTSVIDRequest{})
	requireCode(t, codes.InvalidArgument, err)
	assert.Equal(t, []string{"answered FetchJWTSVID InvalidArgument"}, rec.await(t, 1))
	rec.mu.Lock()
	defer rec.mu.Unlock()
	assert.Len(t, rec.lines, 1)
}
