package workloadpb

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ServiceName is the full name of the Workload API service on the wire: the
// standard's proto file has no package, so every method path is
// "/SpiffeWorkloadAPI/<method>".
const ServiceName = "SpiffeWorkloadAPI"

// HeaderKey and HeaderValue form the security header that every Workload API
// request must carry as gRPC metadata (WE rule 6).
const (
	HeaderKey   = "workload.spiffe.io"
	HeaderValue = "true"
)

// Full method paths.
const (
	FetchX509SVIDMethod    = "/" + ServiceName + "/FetchX509SVID"
	FetchX509BundlesMethod = "/" + ServiceName + "/FetchX509Bundles"
	FetchJWTSVIDMethod     = "/" + ServiceName + "/FetchJWTSVID"
	FetchJWTBundlesMethod  = "/" + ServiceName + "/FetchJWTBundles"
	ValidateJWTSVIDMethod  = "/" + ServiceName + "/ValidateJWTSVID"
	FetchWITSVIDMethod     = "/" + ServiceName + "/FetchWITSVID"
	FetchWITBundlesMethod  = "/" + ServiceName + "/FetchWITBundles"
)

// WorkloadAPIServer is the server side of the Workload API.
type WorkloadAPIServer interface {
	FetchX509SVID(*X509SVIDRequest, grpc.ServerStreamingServer[X509SVIDResponse]) error
	FetchX509Bundles(*X509BundlesRequest, grpc.ServerStreamingServer[X509BundlesResponse]) error
	FetchJWTSVID(context.Context, *JWTSVIDRequest) (*JWTSVIDResponse, error)
	FetchJWTBundles(*JWTBundlesRequest, grpc.ServerStreamingServer[JWTBundlesResponse]) error
	ValidateJWTSVID(context.Context, *ValidateJWTSVIDRequest) (*ValidateJWTSVIDResponse, error)
	FetchWITSVID(*WITSVIDRequest, grpc.ServerStreamingServer[WITSVIDResponse]) error
	FetchWITBundles(*WITBundlesRequest, grpc.ServerStreamingServer[WITBundlesResponse]) error
}

// UnimplementedWorkloadAPIServer answers every method with Unimplemented.
// Embed it to implement only part of the API.
type UnimplementedWorkloadAPIServer struct{}

func unimplemented(method string) error {
	return status.Errorf(codes.Unimplemented, "method %s not implemented", method)
}

// FetchX509SVID answers Unimplemented.
func (UnimplementedWorkloadAPIServer) FetchX509SVID(*X509SVIDRequest, grpc.ServerStreamingServer[X509SVIDResponse]) error {
	return unimplemented("FetchX509SVID")
}

// FetchX509Bundles answers Unimplemented.
func (UnimplementedWorkloadAPIServer) FetchX509Bundles(*X509BundlesRequest, grpc.ServerStreamingServer[X509BundlesResponse]) error {
	return unimplemented("FetchX509Bundles")
}

// FetchJWTSVID answers Unimplemented.
func (UnimplementedWorkloadAPIServer) FetchJWTSVID(context.Context, *JWTSVIDRequest) (*JWTSVIDResponse, error) {
	return nil, unimplemented("FetchJWTSVID")
}

// FetchJWTBundles answers Unimplemented.
func (UnimplementedWorkloadAPIServer) FetchJWTBundles(*JWTBundlesRequest, grpc.ServerStreamingServer[JWTBundlesResponse]) error {
	return unimplemented("FetchJWTBundles")
}

// ValidateJWTSVID answers Unimplemented.
func (UnimplementedWorkloadAPIServer) ValidateJWTSVID(context.Context, *ValidateJWTSVIDRequest) (*ValidateJWTSVIDResponse, error) {
	return nil, unimplemented("ValidateJWTSVID")
}

// FetchWITSVID answers Unimplemented (WIT rule 17: a server without the WIT
// profile must).
func (UnimplementedWorkloadAPIServer) FetchWITSVID(*WITSVIDRequest, grpc.ServerStreamingServer[WITSVIDResponse]) error {
	return unimplemented("FetchWITSVID")
}

// FetchWITBundles answers Unimplemented (WIT rule 17).
func (UnimplementedWorkloadAPIServer) FetchWITBundles(*WITBundlesRequest, grpc.ServerStreamingServer[WITBundlesResponse]) error {
	return unimplemented("FetchWITBundles")
}

// RegisterWorkloadAPIServer registers srv under the service name
// "SpiffeWorkloadAPI".
func RegisterWorkloadAPIServer(s grpc.ServiceRegistrar, srv WorkloadAPIServer) {
	s.RegisterService(&serviceDesc, srv)
}

// serverStream handles one server-streaming method: it decodes the request
// into a new Req and hands the typed stream to call.
func serverStream[Req, Resp any](call func(WorkloadAPIServer, *Req, grpc.ServerStreamingServer[Resp]) error) grpc.StreamHandler {
	return func(srv any, stream grpc.ServerStream) error {
		req := new(Req)
		if err := stream.RecvMsg(req); err != nil {
			return err
		}
		return call(srv.(WorkloadAPIServer), req, &grpc.GenericServerStream[Req, Resp]{ServerStream: stream})
	}
}

// unary handles one unary method, through the server's interceptor if any.
func unary[Req, Resp any](method string, call func(WorkloadAPIServer, context.Context, *Req) (*Resp, error)) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		req := new(Req)
		if err := dec(req); err != nil {
			return nil, err
		}
		s := srv.(WorkloadAPIServer)
		if interceptor == nil {
			return call(s, ctx, req)
		}
		info := &grpc.UnaryServerInfo{Server: srv, FullMethod: method}
		return interceptor(ctx, req, info, func(ctx context.Context, req any) (any, error) {
			return call(s, ctx, req.(*Req))
		})
	}
}

// serviceDesc is written by hand rather than generated: a generated one would
// register the name "SpiffeWorkloadAPI" in the protobuf registry, which
// go-spiffe's generated code registers too.
var serviceDesc = grpc.ServiceDesc{
	ServiceName: ServiceName,
	HandlerType: (*WorkloadAPIServer)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "FetchJWTSVID", Handler: unary(FetchJWTSVIDMethod, WorkloadAPIServer.FetchJWTSVID)},
		{MethodName: "ValidateJWTSVID", Handler: unary(ValidateJWTSVIDMethod, WorkloadAPIServer.ValidateJWTSVID)},
	},
	Streams: []grpc.StreamDesc{
		{StreamName: "FetchX509SVID", ServerStreams: true, Handler: serverStream(WorkloadAPIServer.FetchX509SVID)},
		{StreamName: "FetchX509Bundles", ServerStreams: true, Handler: serverStream(WorkloadAPIServer.FetchX509Bundles)},
		{StreamName: "FetchJWTBundles", ServerStreams: true, Handler: serverStream(WorkloadAPIServer.FetchJWTBundles)},
		{StreamName: "FetchWITSVID", ServerStreams: true, Handler: serverStream(WorkloadAPIServer.FetchWITSVID)},
		{StreamName: "FetchWITBundles", ServerStreams: true, Handler: serverStream(WorkloadAPIServer.FetchWITBundles)},
	},
	Metadata: "spiffekit_workload.proto",
}

// WorkloadAPIClient is the client side of the Workload API. It does not add
// the security header; callers put it in the outgoing context.
type WorkloadAPIClient interface {
	FetchX509SVID(ctx context.Context, in *X509SVIDRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[X509SVIDResponse], error)
	FetchX509Bundles(ctx context.Context, in *X509BundlesRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[X509BundlesResponse], error)
	FetchJWTSVID(ctx context.Context, in *JWTSVIDRequest, opts ...grpc.CallOption) (*JWTSVIDResponse, error)
	FetchJWTBundles(ctx context.Context, in *JWTBundlesRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[JWTBundlesResponse], error)
	ValidateJWTSVID(ctx context.Context, in *ValidateJWTSVIDRequest, opts ...grpc.CallOption) (*ValidateJWTSVIDResponse, error)
	FetchWITSVID(ctx context.Context, in *WITSVIDRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[WITSVIDResponse], error)
	FetchWITBundles(ctx context.Context, in *WITBundlesRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[WITBundlesResponse], error)
}

// NewWorkloadAPIClient returns a Workload API client on cc.
func NewWorkloadAPIClient(cc grpc.ClientConnInterface) WorkloadAPIClient {
	return client{cc}
}

type client struct{ cc grpc.ClientConnInterface }

// openStream starts a server-streaming call and sends its one request.
func openStream[Req, Resp any](ctx context.Context, cc grpc.ClientConnInterface, index int, method string, in *Req, opts []grpc.CallOption) (grpc.ServerStreamingClient[Resp], error) {
	stream, err := cc.NewStream(ctx, &serviceDesc.Streams[index], method, opts...)
	if err != nil {
		return nil, err
	}
	s := &grpc.GenericClientStream[Req, Resp]{ClientStream: stream}
	if err := s.SendMsg(in); err != nil {
		return nil, err
	}
	if err := s.CloseSend(); err != nil {
		return nil, err
	}
	return s, nil
}

func (c client) FetchX509SVID(ctx context.Context, in *X509SVIDRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[X509SVIDResponse], error) {
	return openStream[X509SVIDRequest, X509SVIDResponse](ctx, c.cc, 0, FetchX509SVIDMethod, in, opts)
}

func (c client) FetchX509Bundles(ctx context.Context, in *X509BundlesRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[X509BundlesResponse], error) {
	return openStream[X509BundlesRequest, X509BundlesResponse](ctx, c.cc, 1, FetchX509BundlesMethod, in, opts)
}

func (c client) FetchJWTBundles(ctx context.Context, in *JWTBundlesRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[JWTBundlesResponse], error) {
	return openStream[JWTBundlesRequest, JWTBundlesResponse](ctx, c.cc, 2, FetchJWTBundlesMethod, in, opts)
}

func (c client) FetchWITSVID(ctx context.Context, in *WITSVIDRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[WITSVIDResponse], error) {
	return openStream[WITSVIDRequest, WITSVIDResponse](ctx, c.cc, 3, FetchWITSVIDMethod, in, opts)
}

func (c client) FetchWITBundles(ctx context.Context, in *WITBundlesRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[WITBundlesResponse], error) {
	return openStream[WITBundlesRequest, WITBundlesResponse](ctx, c.cc, 4, FetchWITBundlesMethod, in, opts)
}

func (c client) FetchJWTSVID(ctx context.Context, in *JWTSVIDRequest, opts ...grpc.CallOption) (*JWTSVIDResponse, error) {
	out := new(JWTSVIDResponse)
	if err := c.cc.Invoke(ctx, FetchJWTSVIDMethod, in, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}

func (c client) ValidateJWTSVID(ctx context.Context, in *ValidateJWTSVIDRequest, opts ...grpc.CallOption) (*ValidateJWTSVIDResponse, error) {
	out := new(ValidateJWTSVIDResponse)
	if err := c.cc.Invoke(ctx, ValidateJWTSVIDMethod, in, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}
