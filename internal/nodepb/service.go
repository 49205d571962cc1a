package nodepb

import (
	"context"

	"google.golang.org/grpc"
)

// ServiceName is the full name of the node service on the wire.
const ServiceName = "spiffekit.node.v1.Node"

// Full method paths.
const (
	AttestMethod         = "/" + ServiceName + "/Attest"
	RenewAgentMethod     = "/" + ServiceName + "/RenewAgent"
	SyncMethod           = "/" + ServiceName + "/Sync"
	SignX509SVIDsMethod  = "/" + ServiceName + "/SignX509SVIDs"
	SignJWTSVIDMethod    = "/" + ServiceName + "/SignJWTSVID"
	SignWITSVIDMethod    = "/" + ServiceName + "/SignWITSVID"
	MintX509CAMethod     = "/" + ServiceName + "/MintX509CA"
	PublishJWTKeysMethod = "/" + ServiceName + "/PublishJWTKeys"
)

// NodeServer is the server side of the node protocol.
type NodeServer interface {
	Attest(grpc.BidiStreamingServer[AttestRequest, AttestResponse]) error
	RenewAgent(context.Context, *RenewAgentRequest) (*RenewAgentResponse, error)
	Sync(*SyncRequest, grpc.ServerStreamingServer[SyncResponse]) error
	SignX509SVIDs(context.Context, *SignX509SVIDsRequest) (*SignX509SVIDsResponse, error)
	SignJWTSVID(context.Context, *SignJWTSVIDRequest) (*SignJWTSVIDResponse, error)
	SignWITSVID(context.Context, *SignWITSVIDRequest) (*SignWITSVIDResponse, error)
	MintX509CA(context.Context, *MintX509CARequest) (*MintX509CAResponse, error)
	PublishJWTKeys(context.Context, *PublishJWTKeysRequest) (*PublishJWTKeysResponse, error)
}

// RegisterNodeServer registers srv with s.
func RegisterNodeServer(s grpc.ServiceRegistrar, srv NodeServer) {
	s.RegisterService(&serviceDesc, srv)
}

func unary[Req, Resp any](method string, call func(NodeServer, context.Context, *Req) (*Resp, error)) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		req := new(Req)
		if err := dec(req); err != nil {
			return nil, err
		}
		s := srv.(NodeServer)
		if interceptor == nil {
			return call(s, ctx, req)
		}
		info := &grpc.UnaryServerInfo{Server: srv, FullMethod: method}
		return interceptor(ctx, req, info, func(ctx context.Context, req any) (any, error) {
			return call(s, ctx, req.(*Req))
		})
	}
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: ServiceName,
	HandlerType: (*NodeServer)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "RenewAgent", Handler: unary(RenewAgentMethod, NodeServer.RenewAgent)},
		{MethodName: "SignX509SVIDs", Handler: unary(SignX509SVIDsMethod, NodeServer.SignX509SVIDs)},
		{MethodName: "SignJWTSVID", Handler: unary(SignJWTSVIDMethod, NodeServer.SignJWTSVID)},
		{MethodName: "SignWITSVID", Handler: unary(SignWITSVIDMethod, NodeServer.SignWITSVID)},
		{MethodName: "MintX509CA", Handler: unary(MintX509CAMethod, NodeServer.MintX509CA)},
		{MethodName: "PublishJWTKeys", Handler: unary(PublishJWTKeysMethod, NodeServer.PublishJWTKeys)},
	},
	Streams: []grpc.StreamDesc{
		{
			StreamName: "Attest", ServerStreams: true, ClientStreams: true,
			Handler: func(srv any, stream grpc.ServerStream) error {
				return srv.(NodeServer).Attest(&grpc.GenericServerStream[AttestRequest, AttestResponse]{ServerStream: stream})
			},
		},
		{
			StreamName: "Sync", ServerStreams: true,
			Handler: func(srv any, stream grpc.ServerStream) error {
				req := new(SyncRequest)
				if err := stream.RecvMsg(req); err != nil {
					return err
				}
				return srv.(NodeServer).Sync(req, &grpc.GenericServerStream[SyncRequest, SyncResponse]{ServerStream: stream})
			},
		},
	},
	Metadata: "spiffekit_node.proto",
}

// NodeClient is the client side of the node protocol.
type NodeClient interface {
	Attest(ctx context.Context, opts ...grpc.CallOption) (grpc.BidiStreamingClient[AttestRequest, AttestResponse], error)
	RenewAgent(ctx context.Context, in *RenewAgentRequest, opts ...grpc.CallOption) (*RenewAgentResponse, error)
	Sync(ctx context.Context, in *SyncRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[SyncResponse], error)
	SignX509SVIDs(ctx context.Context, in *SignX509SVIDsRequest, opts ...grpc.CallOption) (*SignX509SVIDsResponse, error)
	SignJWTSVID(ctx context.Context, in *SignJWTSVIDRequest, opts ...grpc.CallOption) (*SignJWTSVIDResponse, error)
	SignWITSVID(ctx context.Context, in *SignWITSVIDRequest, opts ...grpc.CallOption) (*SignWITSVIDResponse, error)
	MintX509CA(ctx context.Context, in *MintX509CARequest, opts ...grpc.CallOption) (*MintX509CAResponse, error)
	PublishJWTKeys(ctx context.Context, in *PublishJWTKeysRequest, opts ...grpc.CallOption) (*PublishJWTKeysResponse, error)
}

// NewNodeClient returns a node protocol client on cc.
func NewNodeClient(cc grpc.ClientConnInterface) NodeClient { return client{cc} }

type client struct{ cc grpc.ClientConnInterface }

func (c client) Attest(ctx context.Context, opts ...grpc.CallOption) (grpc.BidiStreamingClient[AttestRequest, AttestResponse], error) {
	stream, err := c.cc.NewStream(ctx, &serviceDesc.Streams[0], AttestMethod, opts...)
	if err != nil {
		return nil, err
	}
	return &grpc.GenericClientStream[AttestRequest, AttestResponse]{ClientStream: stream}, nil
}

func (c client) Sync(ctx context.Context, in *SyncRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[SyncResponse], error) {
	stream, err := c.cc.NewStream(ctx, &serviceDesc.Streams[1], SyncMethod, opts...)
	if err != nil {
		return nil, err
	}
	s := &grpc.GenericClientStream[SyncRequest, SyncResponse]{ClientStream: stream}
	if err := s.SendMsg(in); err != nil {
		return nil, err
	}
	if err := s.CloseSend(); err != nil {
		return nil, err
	}
	return s, nil
}

func (c client) RenewAgent(ctx context.Context, in *RenewAgentRequest, opts ...grpc.CallOption) (*RenewAgentResponse, error) {
	out := new(RenewAgentResponse)
	if err := c.cc.Invoke(ctx, RenewAgentMethod, in, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}

func (c client) SignX509SVIDs(ctx context.Context, in *SignX509SVIDsRequest, opts ...grpc.CallOption) (*SignX509SVIDsResponse, error) {
	out := new(SignX509SVIDsResponse)
	if err := c.cc.Invoke(ctx, SignX509SVIDsMethod, in, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}

func (c client) SignJWTSVID(ctx context.Context, in *SignJWTSVIDRequest, opts ...grpc.CallOption) (*SignJWTSVIDResponse, error) {
	out := new(SignJWTSVIDResponse)
	if err := c.cc.Invoke(ctx, SignJWTSVIDMethod, in, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}

func (c client) SignWITSVID(ctx context.Context, in *SignWITSVIDRequest, opts ...grpc.CallOption) (*SignWITSVIDResponse, error) {
	out := new(SignWITSVIDResponse)
	if err := c.cc.Invoke(ctx, SignWITSVIDMethod, in, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}

func (c client) MintX509CA(ctx context.Context, in *MintX509CARequest, opts ...grpc.CallOption) (*MintX509CAResponse, error) {
	out := new(MintX509CAResponse)
	if err := c.cc.Invoke(ctx, MintX509CAMethod, in, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}

func (c client) PublishJWTKeys(ctx context.Context, in *PublishJWTKeysRequest, opts ...grpc.CallOption) (*PublishJWTKeysResponse, error) {
	out := new(PublishJWTKeysResponse)
	if err := c.cc.Invoke(ctx, PublishJWTKeysMethod, in, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}
