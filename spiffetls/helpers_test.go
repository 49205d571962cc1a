package spiffetls_test

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/internal/workloadpb"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// Trust domains of the test CAs.
var (
	exampleOrg = spiffeid.RequireTrustDomainFromString("example.org")
	otherOrg   = spiffeid.RequireTrustDomainFromString("other.org")
	webExample = spiffeid.RequireTrustDomainFromString("web.example")
)

// workloadAPI is a Workload API server on a unix socket that hands out one
// X509-SVID and the CA's bundle. Every FetchX509SVID stream that ends is
// reported on ended.
type workloadAPI struct {
	workloadpb.UnimplementedWorkloadAPIServer
	resp  *workloadpb.X509SVIDResponse
	ended chan struct{}
	addr  string
}

func startWorkloadAPI(t *testing.T, c *testca.CA, svid *x509svid.SVID) *workloadAPI {
	t.Helper()
	certs, key, err := svid.MarshalRaw()
	require.NoError(t, err)
	w := &workloadAPI{
		resp: &workloadpb.X509SVIDResponse{Svids: []*workloadpb.X509SVID{{
			SpiffeId:    svid.ID.String(),
			X509Svid:    certs,
			X509SvidKey: key,
			Bundle:      c.Root().Raw,
		}}},
		ended: make(chan struct{}, 16),
	}
	dir, err := os.MkdirTemp("", "wl")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "api.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	srv := grpc.NewServer()
	workloadpb.RegisterWorkloadAPIServer(srv, w)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	w.addr = "unix://" + path
	return w
}

func (w *workloadAPI) FetchX509SVID(_ *workloadpb.X509SVIDRequest, stream grpc.ServerStreamingServer[workloadpb.X509SVIDResponse]) error {
	defer func() { w.ended <- struct{}{} }()
	if err := stream.Send(w.resp); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

// sourceOptions point a new X509Source at w.
func (w *workloadAPI) sourceOptions() []workloadapi.X509SourceOption {
	return []workloadapi.X509SourceOption{workloadapi.WithClientOptions(workloadapi.WithAddr(w.addr))}
}
