package sds

import (
	"slices"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// StreamSecrets serves the state of the world protocol: see the package
// documentation.
func (s *Server) StreamSecrets(stream grpc.BidiStreamingServer[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]) error {
	return observe(s.cfg.Observer, "StreamSecrets", stream, s.streamSecrets)
}

func (s *Server) streamSecrets(stream grpc.BidiStreamingServer[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]) error {
	const method = "StreamSecrets"
	ctx := stream.Context()
	st, err := s.open(ctx, method)
	if err != nil {
		return err
	}
	defer st.sub.Close()
	fail := func(err error) error { return endpoint.ErrorStatus(s.log, method, st.caller, err) }

	done := make(chan struct{})
	defer close(done)
	reqs, errc := receive[discoveryv3.DiscoveryRequest](stream, done)
	stopping := endpoint.Stopping(ctx)

	var (
		last      *discoveryv3.DiscoveryRequest // the request in force
		lastNonce string                        // of the last response
		version   string                        // of the last response
		sent      []*anypb.Any                  // in the last response
	)
	for {
		force := false // a response is due whatever it holds
		select {
		case req := <-reqs:
			s.log.Debug("SDS request", "names", req.GetResourceNames(), "version", req.GetVersionInfo(), "nonce", req.GetResponseNonce(), "pid", st.caller.PID)
			if err := checkRequest(req.GetTypeUrl(), req.GetResourceNames()); err != nil {
				return fail(err)
			}
			if lastNonce != "" {
				if req.GetResponseNonce() != lastNonce {
					s.log.Debug("SDS request with a stale nonce ignored", "nonce", req.GetResponseNonce(), "expected", lastNonce)
					continue
				}
				if req.GetErrorDetail() != nil || req.GetVersionInfo() != version {
					s.log.Warn("Envoy rejected secrets", "names", req.GetResourceNames(), "version", version,
						"error", req.GetErrorDetail().GetMessage(), "pid", st.caller.PID)
				} else {
					s.log.Debug("Envoy applied secrets", "version", version)
				}
			}
			if req.GetNode() == nil && last != nil {
				req.Node = last.GetNode() // sent on the first request only
			}
			force = last == nil || namesChanged(last.GetResourceNames(), req.GetResourceNames())
			last = req
			if !force {
				continue
			}
		case <-st.sub.Changed():
			if last == nil {
				continue // nothing asked for yet
			}
		case err := <-errc:
			return err
		case <-ctx.Done():
			return nil
		case <-stopping:
			return fail(endpoint.ErrShuttingDown)
		}

		snap, err := st.snapshot()
		if err != nil {
			return fail(err)
		}
		res, err := s.build(snap, last.GetResourceNames(), s.validator(last.GetNode()))
		if err == nil {
			err = res.strict()
		}
		if err != nil {
			return fail(err)
		}
		resources := res.anys()
		if !force && slices.EqualFunc(resources, sent, func(a, b *anypb.Any) bool { return proto.Equal(a, b) }) {
			continue
		}
		var nonce string
		version, nonce = st.next()
		if err := stream.Send(&discoveryv3.DiscoveryResponse{
			VersionInfo: version, Resources: resources, TypeUrl: SecretTypeURL, Nonce: nonce,
		}); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		s.log.Debug("SDS response sent", "version", version, "count", len(resources), "pid", st.caller.PID)
		lastNonce, sent = nonce, resources
	}
}

// namesChanged reports whether two requests name different sets of
// resources.
func namesChanged(old, new []string) bool {
	a, b := slices.Clone(old), slices.Clone(new)
	slices.Sort(a)
	slices.Sort(b)
	return !slices.Equal(slices.Compact(a), slices.Compact(b))
}
