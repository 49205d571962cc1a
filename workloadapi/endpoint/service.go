package endpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/spiffekit/spiffekit/internal/workloadpb"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
)

// service implements the Workload API for the listener of one Serve call.
type service struct {
	workloadpb.UnimplementedWorkloadAPIServer
	*Server
	// stopping is closed when Serve stops.
	stopping <-chan struct{}
	// bindStop returns ctx, also cancelled when Serve stops.
	bindStop func(ctx context.Context) (context.Context, context.CancelFunc)
}

// newService returns the service of the Serve call whose context is
// serveCtx. The context stays in the closure of bindStop: the service
// keeps only what it needs of it.
func newService(serveCtx context.Context, s *Server) *service {
	return &service{
		Server:   s,
		stopping: serveCtx.Done(),
		bindStop: func(ctx context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(ctx)
			stop := context.AfterFunc(serveCtx, cancel)
			return ctx, func() { stop(); cancel() }
		},
	}
}

// stopped reports whether Serve has stopped.
func (s *service) stopped() bool {
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}

var _ workloadpb.WorkloadAPIServer = (*service)(nil)

// begin runs the checks every Workload API method starts with: the
// security header first (E1, WE rule 6), then the caller's identity (E2).
func (s *service) begin(ctx context.Context) (Caller, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	// Exactly one value, exactly "true" (case-sensitive), as SPIRE checks.
	if v := md.Get(workloadpb.HeaderKey); len(v) != 1 || v[0] != workloadpb.HeaderValue {
		return Caller{PID: -1, UID: -1, GID: -1}, errMissingHeader
	}
	return callerFromContext(ctx)
}

// rpcContext returns ctx, also cancelled when Serve stops.
func (s *service) rpcContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return s.bindStop(ctx)
}

// FetchX509SVID streams the caller's X509-SVIDs with their bundles (WAPI
// rule 10).
func (s *service) FetchX509SVID(_ *workloadpb.X509SVIDRequest, stream grpc.ServerStreamingServer[workloadpb.X509SVIDResponse]) error {
	return s.watch("FetchX509SVID", stream, func(e *encoded) []byte { return e.x509SVID })
}

// FetchX509Bundles streams the X.509 bundles the caller trusts (WAPI rule
// 11).
func (s *service) FetchX509Bundles(_ *workloadpb.X509BundlesRequest, stream grpc.ServerStreamingServer[workloadpb.X509BundlesResponse]) error {
	return s.watch("FetchX509Bundles", stream, func(e *encoded) []byte { return e.x509Bundles })
}

// FetchJWTBundles streams the JWT bundles the caller trusts (WAPI rule 13).
func (s *service) FetchJWTBundles(_ *workloadpb.JWTBundlesRequest, stream grpc.ServerStreamingServer[workloadpb.JWTBundlesResponse]) error {
	return s.watch("FetchJWTBundles", stream, func(e *encoded) []byte { return e.jwtBundles })
}

// FetchWITSVID streams the caller's WIT-SVIDs, or only the one asked for
// (WIT rule 17).
func (s *service) FetchWITSVID(req *workloadpb.WITSVIDRequest, stream grpc.ServerStreamingServer[workloadpb.WITSVIDResponse]) error {
	if !s.cfg.WIT {
		return s.unimplemented("FetchWITSVID", stream, func() error {
			return s.UnimplementedWorkloadAPIServer.FetchWITSVID(req, stream)
		})
	}
	subscribe := s.subscribe
	if _, ok := s.cfg.Handler.(WITHandler); ok {
		subscribe = s.subscribeWIT
	}
	if req.SpiffeId == "" {
		return s.watchFrom("FetchWITSVID", stream, subscribe, nil, func(_ *Snapshot, e *encoded) []byte { return e.witSVID })
	}
	var id spiffeid.ID
	return s.watchFrom("FetchWITSVID", stream, subscribe, func() error {
		var err error
		if id, err = spiffeid.FromString(req.SpiffeId); err != nil {
			return fmt.Errorf("%w: spiffe_id: %w", ErrInvalidRequest, err)
		}
		return nil
	}, func(snap *Snapshot, e *encoded) []byte {
		b, err := encodeWITSVIDs(snap.WITSVIDs, id)
		if err != nil {
			// The full set encoded; a subset of it cannot fail.
			return nil
		}
		return b
	})
}

// FetchWITBundles streams the WIT bundles the caller trusts (WIT rule 17).
func (s *service) FetchWITBundles(req *workloadpb.WITBundlesRequest, stream grpc.ServerStreamingServer[workloadpb.WITBundlesResponse]) error {
	if !s.cfg.WIT {
		return s.unimplemented("FetchWITBundles", stream, func() error {
			return s.UnimplementedWorkloadAPIServer.FetchWITBundles(req, stream)
		})
	}
	return s.watch("FetchWITBundles", stream, func(e *encoded) []byte { return e.witBundles })
}

// unimplemented answers a method of a profile the server does not offer,
// after the security header check that comes first on every method (E1).
func (s *service) unimplemented(method string, stream grpc.ServerStream, answer func() error) error {
	if caller, err := s.begin(stream.Context()); errors.Is(err, errMissingHeader) {
		return grpcError(s.log, method, caller, err)
	}
	return answer()
}

func (s *service) watch(method string, stream grpc.ServerStream, pick func(*encoded) []byte) error {
	return s.watchChecked(method, stream, nil, func(_ *Snapshot, e *encoded) []byte { return pick(e) })
}

// watchChecked runs a watch stream (E1-E5): after the common checks and
// check (mandatory request fields), it sends the caller's view at once,
// then again each time the encoded view differs from the last one sent. A
// view with nothing to send (pick returns nil), or no view at all, ends the
// stream with PermissionDenied; the client leaving ends it cleanly.
func (s *service) watchChecked(method string, stream grpc.ServerStream, check func() error, pick func(*Snapshot, *encoded) []byte) error {
	return s.watchFrom(method, stream, s.subscribe, check, pick)
}

// watchFrom is watchChecked on the subscription subscribe returns.
func (s *service) watchFrom(method string, stream grpc.ServerStream, subscribe func(context.Context, Caller) (Subscription, error),
	check func() error, pick func(*Snapshot, *encoded) []byte) error {
	ctx := stream.Context()
	caller, err := s.begin(ctx)
	if err == nil && check != nil {
		err = check()
	}
	if err != nil {
		return grpcError(s.log, method, caller, err)
	}
	sub, err := subscribe(ctx, caller)
	if err != nil {
		return grpcError(s.log, method, caller, err)
	}
	defer sub.Close()

	var last []byte
	for {
		// E5: re-check the entitlement before every send.
		snap := sub.Snapshot()
		if snap == nil {
			return grpcError(s.log, method, caller, ErrNoIdentity)
		}
		e := snap.encoded()
		if e.err != nil {
			return grpcError(s.log, method, caller, e.err)
		}
		msg := pick(snap, e)
		if msg == nil {
			return grpcError(s.log, method, caller, ErrNoIdentity)
		}
		// Send only what differs from the last message (E5, WAPI rule 4).
		if last == nil || !bytes.Equal(msg, last) {
			if err := stream.SendMsg(&rawMessage{b: msg}); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err // already a status from the transport
			}
			last = msg
		}
		select {
		case <-sub.Changed():
		case <-ctx.Done():
			return nil // the client left
		case <-s.stopping:
			return grpcError(s.log, method, caller, errShuttingDown)
		}
	}
}

func (s *service) subscribe(ctx context.Context, caller Caller) (Subscription, error) {
	return s.subscribeWith(ctx, caller, s.cfg.Handler.Subscribe)
}

// subscribeWIT subscribes through the Handler's SubscribeWIT; the Handler
// is a WITHandler.
func (s *service) subscribeWIT(ctx context.Context, caller Caller) (Subscription, error) {
	return s.subscribeWith(ctx, caller, s.cfg.Handler.(WITHandler).SubscribeWIT)
}

func (s *service) subscribeWith(ctx context.Context, caller Caller, subscribe func(context.Context, Caller) (Subscription, error)) (Subscription, error) {
	ctx, cancel := s.rpcContext(ctx)
	defer cancel()
	sub, err := subscribe(ctx, caller)
	if err != nil {
		if s.stopped() {
			return nil, errShuttingDown
		}
		return nil, err
	}
	return sub, nil
}

// snapshot returns the caller's current view for a unary call.
func (s *service) snapshot(ctx context.Context, caller Caller) (*Snapshot, *encoded, error) {
	sub, err := s.subscribe(ctx, caller)
	if err != nil {
		return nil, nil, err
	}
	defer sub.Close()
	snap := sub.Snapshot()
	if snap == nil {
		return nil, nil, ErrNoIdentity
	}
	e := snap.encoded()
	if e.err != nil {
		return nil, nil, e.err
	}
	return snap, e, nil
}

// FetchJWTSVID mints JWT-SVIDs for the caller (WAPI rule 12).
func (s *service) FetchJWTSVID(ctx context.Context, req *workloadpb.JWTSVIDRequest) (*workloadpb.JWTSVIDResponse, error) {
	caller, err := s.begin(ctx)
	if err != nil {
		return nil, grpcError(s.log, "FetchJWTSVID", caller, err)
	}
	resp, err := s.fetchJWTSVID(ctx, caller, req)
	return resp, grpcError(s.log, "FetchJWTSVID", caller, err)
}

func (s *service) fetchJWTSVID(ctx context.Context, caller Caller, req *workloadpb.JWTSVIDRequest) (*workloadpb.JWTSVIDResponse, error) {
	if err := checkAudience(req.Audience); err != nil {
		return nil, err
	}
	params := JWTSVIDParams{Audience: req.Audience}
	if req.SpiffeId != "" {
		id, err := spiffeid.FromString(req.SpiffeId)
		if err != nil {
			return nil, fmt.Errorf("%w: spiffe_id: %w", ErrInvalidRequest, err)
		}
		params.ID = id
	}
	ctx, cancel := s.rpcContext(ctx)
	defer cancel()
	svids, err := s.cfg.Handler.FetchJWTSVIDs(ctx, caller, params)
	if err != nil {
		if s.stopped() {
			return nil, errShuttingDown
		}
		return nil, err
	}
	resp := &workloadpb.JWTSVIDResponse{}
	for _, svid := range svids {
		if !params.ID.IsZero() && svid.ID != params.ID {
			continue // never hand out an identity that was not asked for
		}
		if svid.ID.IsZero() || svid.Token == "" {
			return nil, fmt.Errorf("endpoint: handler returned a JWT-SVID without ID or token")
		}
		resp.Svids = append(resp.Svids, &workloadpb.JWTSVID{SpiffeId: svid.ID.String(), Svid: svid.Token, Hint: svid.Hint})
	}
	if len(resp.Svids) == 0 {
		return nil, ErrNoIdentity
	}
	return resp, nil
}

func checkAudience(audience []string) error {
	if len(audience) == 0 {
		return fmt.Errorf("%w: audience must be specified", ErrInvalidRequest)
	}
	if len(audience) > MaxAudiences {
		return fmt.Errorf("%w: more than %d audience values", ErrInvalidRequest, MaxAudiences)
	}
	for _, a := range audience {
		if a == "" {
			return fmt.Errorf("%w: audience values must not be empty", ErrInvalidRequest)
		}
	}
	return nil
}

// ValidateJWTSVID validates a JWT-SVID against the JWT bundles the caller
// trusts, its own and federated ones (WAPI rule 14). An invalid token is
// InvalidArgument, with the reason.
func (s *service) ValidateJWTSVID(ctx context.Context, req *workloadpb.ValidateJWTSVIDRequest) (*workloadpb.ValidateJWTSVIDResponse, error) {
	caller, err := s.begin(ctx)
	if err != nil {
		return nil, grpcError(s.log, "ValidateJWTSVID", caller, err)
	}
	resp, err := s.validateJWTSVID(ctx, caller, req)
	return resp, grpcError(s.log, "ValidateJWTSVID", caller, err)
}

func (s *service) validateJWTSVID(ctx context.Context, caller Caller, req *workloadpb.ValidateJWTSVIDRequest) (*workloadpb.ValidateJWTSVIDResponse, error) {
	switch {
	case req.Audience == "":
		return nil, fmt.Errorf("%w: audience must be specified", ErrInvalidRequest)
	case req.Svid == "":
		return nil, fmt.Errorf("%w: svid must be specified", ErrInvalidRequest)
	}
	_, e, err := s.snapshot(ctx, caller)
	if err != nil {
		return nil, err
	}
	svid, err := jwtsvid.ParseAndValidate(req.Svid, e.jwtSet, []string{req.Audience})
	if err != nil {
		// The reason concerns the caller's own token; SPIRE sends it too.
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	claims := make(map[string]any, len(svid.Claims))
	for k, v := range svid.Claims {
		claims[k] = v
	}
	if aud, ok := claims["aud"].(string); ok {
		claims["aud"] = []any{aud} // one shape for clients, as SPIRE does
	}
	st, err := structpb.NewStruct(claims)
	if err != nil {
		return nil, fmt.Errorf("endpoint: claims: %w", err)
	}
	return &workloadpb.ValidateJWTSVIDResponse{SpiffeId: svid.ID.String(), Claims: st}, nil
}
