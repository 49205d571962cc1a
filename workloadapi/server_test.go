package workloadapi

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/internal/workloadpb"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// fakeServer is a Workload API server for tests. Its streams send the
// current state, then again after every change, until the state holds an
// error, which ends the stream with it. It rejects calls without the
// security header (WE rule 6) and counts calls per method.
type fakeServer struct {
	workloadpb.UnimplementedWorkloadAPIServer

	mu         sync.Mutex
	changed    chan struct{} // closed and replaced on every change
	x509       *workloadpb.X509SVIDResponse
	x509Err    error
	x509B      *workloadpb.X509BundlesResponse
	x509BErr   error
	jwtB       *workloadpb.JWTBundlesResponse
	jwtBErr    error
	witSVIDs   *workloadpb.WITSVIDResponse
	witErr     error
	witB       *workloadpb.WITBundlesResponse
	witBErr    error
	jwtSVID    func(*workloadpb.JWTSVIDRequest) (*workloadpb.JWTSVIDResponse, error)
	validate   func(*workloadpb.ValidateJWTSVIDRequest) (*workloadpb.ValidateJWTSVIDResponse, error)
	calls      map[string]int
	badHeaders int
}

func newFakeServer() *fakeServer {
	return &fakeServer{changed: make(chan struct{}), calls: map[string]int{}}
}

// set changes the state under the lock and wakes every stream.
func (s *fakeServer) set(fn func(s *fakeServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s)
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *fakeServer) count(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

func (s *fakeServer) checkHeader(ctx context.Context, method string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[method]++
	if v := md.Get(workloadpb.HeaderKey); len(v) != 1 || v[0] != workloadpb.HeaderValue {
		s.badHeaders++
		return status.Error(codes.InvalidArgument, "security header missing from request")
	}
	return nil
}

func serveStream[T any](s *fakeServer, method string, stream grpc.ServerStreamingServer[T], get func() (*T, error)) error {
	if err := s.checkHeader(stream.Context(), method); err != nil {
		return err
	}
	for {
		s.mu.Lock()
		resp, err := get()
		changed := s.changed
		s.mu.Unlock()
		if errors.Is(err, errStreamEndTest) {
			return nil // end the stream cleanly
		}
		if err != nil {
			return err
		}
		if resp != nil {
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		}
	}
}

func (s *fakeServer) FetchX509SVID(_ *workloadpb.X509SVIDRequest, stream grpc.ServerStreamingServer[workloadpb.X509SVIDResponse]) error {
	return serveStream(s, "FetchX509SVID", stream, func() (*workloadpb.X509SVIDResponse, error) { return s.x509, s.x509Err })
}

func (s *fakeServer) FetchX509Bundles(_ *workloadpb.X509BundlesRequest, stream grpc.ServerStreamingServer[workloadpb.X509BundlesResponse]) error {
	return serveStream(s, "FetchX509Bundles", stream, func() (*workloadpb.X509BundlesResponse, error) { return s.x509B, s.x509BErr })
}

func (s *fakeServer) FetchJWTBundles(_ *workloadpb.JWTBundlesRequest, stream grpc.ServerStreamingServer[workloadpb.JWTBundlesResponse]) error {
	return serveStream(s, "FetchJWTBundles", stream, func() (*workloadpb.JWTBundlesResponse, error) { return s.jwtB, s.jwtBErr })
}

func (s *fakeServer) FetchWITSVID(_ *workloadpb.WITSVIDRequest, stream grpc.ServerStreamingServer[workloadpb.WITSVIDResponse]) error {
	return serveStream(s, "FetchWITSVID", stream, func() (*workloadpb.WITSVIDResponse, error) { return s.witSVIDs, s.witErr })
}

func (s *fakeServer) FetchWITBundles(_ *workloadpb.WITBundlesRequest, stream grpc.ServerStreamingServer[workloadpb.WITBundlesResponse]) error {
	return serveStream(s, "FetchWITBundles", stream, func() (*workloadpb.WITBundlesResponse, error) { return s.witB, s.witBErr })
}

func (s *fakeServer) FetchJWTSVID(ctx context.Context, req *workloadpb.JWTSVIDRequest) (*workloadpb.JWTSVIDResponse, error) {
	if err := s.checkHeader(ctx, "FetchJWTSVID"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	fn := s.jwtSVID
	s.mu.Unlock()
	if fn == nil {
		return nil, status.Error(codes.Unimplemented, "no JWT-SVIDs")
	}
	return fn(req)
}

func (s *fakeServer) ValidateJWTSVID(ctx context.Context, req *workloadpb.ValidateJWTSVIDRequest) (*workloadpb.ValidateJWTSVIDResponse, error) {
	if err := s.checkHeader(ctx, "ValidateJWTSVID"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	fn := s.validate
	s.mu.Unlock()
	if fn == nil {
		return nil, status.Error(codes.Unimplemented, "no validation")
	}
	return fn(req)
}

// endpoint runs a fakeServer on a unix socket; it can be stopped and
// started again on the same path.
type endpoint struct {
	tb   testing.TB
	srv  *fakeServer
	path string
	addr string

	mu   sync.Mutex
	grpc *grpc.Server
	done chan struct{}
}

func startEndpoint(tb testing.TB, srv *fakeServer) *endpoint {
	tb.Helper()
	dir, err := os.MkdirTemp("", "wl") // short: unix socket paths are limited
	require.NoError(tb, err)
	tb.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "api.sock")
	e := &endpoint{tb: tb, srv: srv, path: path, addr: "unix://" + path}
	e.start()
	tb.Cleanup(e.stop)
	return e
}

func (e *endpoint) start() {
	e.tb.Helper()
	lis, err := net.Listen("unix", e.path)
	require.NoError(e.tb, err)
	g := grpc.NewServer()
	workloadpb.RegisterWorkloadAPIServer(g, e.srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = g.Serve(lis)
	}()
	e.mu.Lock()
	e.grpc, e.done = g, done
	e.mu.Unlock()
}

func (e *endpoint) stop() {
	e.mu.Lock()
	g, done := e.grpc, e.done
	e.grpc = nil
	e.mu.Unlock()
	if g == nil {
		return
	}
	g.Stop()
	<-done
	_ = os.Remove(e.path)
}

// fixture mints real credentials for one trust domain.
type fixture struct {
	tb     testing.TB
	td     spiffeid.TrustDomain
	ca     *testca.CA
	jwtKey *ecdsa.PrivateKey
	witKey *ecdsa.PrivateKey
}

func newFixture(tb testing.TB) *fixture {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	return &fixture{tb: tb, td: td, ca: testca.New(tb, td), jwtKey: testca.NewECKey(tb), witKey: testca.NewECKey(tb)}
}

func (f *fixture) id(path string) spiffeid.ID { return spiffeid.RequireFromPath(f.td, path) }

// x509SVID mints an X509SVID message for path.
func (f *fixture) x509SVID(path, hint string) *workloadpb.X509SVID {
	chain, key := f.ca.NewLeaf(f.tb, f.id(path))
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(f.tb, err)
	var certs []byte
	for _, c := range chain {
		certs = append(certs, c.Raw...)
	}
	return &workloadpb.X509SVID{
		SpiffeId:    f.id(path).String(),
		X509Svid:    certs,
		X509SvidKey: keyDER,
		Bundle:      f.ca.Root().Raw,
		Hint:        hint,
	}
}

func (f *fixture) x509Response(paths ...string) *workloadpb.X509SVIDResponse {
	resp := &workloadpb.X509SVIDResponse{}
	for _, p := range paths {
		resp.Svids = append(resp.Svids, f.x509SVID(p, ""))
	}
	return resp
}

func (f *fixture) x509Bundles() *workloadpb.X509BundlesResponse {
	return &workloadpb.X509BundlesResponse{Bundles: map[string][]byte{f.td.IDString(): f.ca.Root().Raw}}
}

func (f *fixture) jwtBundleJSON() []byte {
	doc, err := jwtbundle.FromJWTAuthorities(f.td, map[string]crypto.PublicKey{"k1": f.jwtKey.Public()}).Marshal()
	require.NoError(f.tb, err)
	return doc
}

func (f *fixture) jwtBundles() *workloadpb.JWTBundlesResponse {
	return &workloadpb.JWTBundlesResponse{Bundles: map[string][]byte{f.td.IDString(): f.jwtBundleJSON()}}
}

// jwt signs a JWT-SVID for path with the given audiences and lifetime.
func (f *fixture) jwt(path string, aud []string, ttl time.Duration) string {
	now := time.Now()
	return testca.SignJWT(f.tb, f.jwtKey, map[string]any{"alg": "ES256", "kid": "k1", "typ": "JWT"}, map[string]any{
		"sub": f.id(path).String(),
		"aud": aud,
		"iat": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	})
}

// jwtHandler answers FetchJWTSVID with one token per path.
func (f *fixture) jwtHandler(ttl time.Duration, paths ...string) func(*workloadpb.JWTSVIDRequest) (*workloadpb.JWTSVIDResponse, error) {
	return func(req *workloadpb.JWTSVIDRequest) (*workloadpb.JWTSVIDResponse, error) {
		if len(req.GetAudience()) == 0 {
			return nil, status.Error(codes.InvalidArgument, "audience must be specified")
		}
		resp := &workloadpb.JWTSVIDResponse{}
		for _, p := range paths {
			if req.GetSpiffeId() != "" && req.GetSpiffeId() != f.id(p).String() {
				continue
			}
			resp.Svids = append(resp.Svids, &workloadpb.JWTSVID{SpiffeId: f.id(p).String(), Svid: f.jwt(p, req.GetAudience(), ttl)})
		}
		if len(resp.Svids) == 0 {
			return nil, status.Error(codes.PermissionDenied, "no identity issued")
		}
		return resp, nil
	}
}

// witSVID mints a WITSVID message for path, bound to a fresh key.
func (f *fixture) witSVID(path, hint string) *workloadpb.WITSVID {
	key := testca.NewECKey(f.tb)
	pub, err := json.Marshal(jose.JSONWebKey{Key: key.Public(), Algorithm: "ES256"})
	require.NoError(f.tb, err)
	priv, err := json.Marshal(jose.JSONWebKey{Key: key, Algorithm: "ES256"})
	require.NoError(f.tb, err)
	token := testca.SignJWT(f.tb, f.witKey, map[string]any{"alg": "ES256", "kid": "w1", "typ": "wit+jwt"}, map[string]any{
		"sub": f.id(path).String(),
		"exp": time.Now().Add(time.Hour).Unix(),
		"cnf": map[string]json.RawMessage{"jwk": pub},
	})
	return &workloadpb.WITSVID{SpiffeId: f.id(path).String(), WitSvid: token, WitSvidKey: string(priv), Hint: hint}
}

func (f *fixture) witBundles() *workloadpb.WITBundlesResponse {
	doc, err := witbundle.FromWITAuthorities(f.td, map[string]crypto.PublicKey{"w1": f.witKey.Public()}).Marshal()
	require.NoError(f.tb, err)
	return &workloadpb.WITBundlesResponse{Bundles: map[string]string{f.td.IDString(): string(doc)}}
}

// claims builds a ValidateJWTSVID response body.
func claims(tb testing.TB, m map[string]any) *structpb.Struct {
	s, err := structpb.NewStruct(m)
	require.NoError(tb, err)
	return s
}
