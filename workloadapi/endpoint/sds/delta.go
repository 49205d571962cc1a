package sds

import (
	"fmt"
	"maps"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"

	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// wildcard is the name by which a delta client subscribes to every
// resource.
const wildcard = "*"

// DeltaSecrets serves the incremental protocol: see the package
// documentation.
func (s *Server) DeltaSecrets(stream grpc.BidiStreamingServer[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]) error {
	return observe(s.cfg.Observer, "DeltaSecrets", stream, s.deltaSecrets)
}

func (s *Server) deltaSecrets(stream grpc.BidiStreamingServer[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]) error {
	const method = "DeltaSecrets"
	ctx := stream.Context()
	st, err := s.open(ctx, method)
	if err != nil {
		return err
	}
	defer st.sub.Close()
	fail := func(err error) error { return endpoint.ErrorStatus(s.log, method, st.caller, err) }

	done := make(chan struct{})
	defer close(done)
	reqs, errc := receive[discoveryv3.DeltaDiscoveryRequest](stream, done)
	stopping := endpoint.Stopping(ctx)

	var (
		started    bool                  // a first request came
		all        bool                  // subscribed to every resource
		subscribed = map[string]bool{}   // the names subscribed to
		held       = map[string]string{} // what the client holds: name -> version
		absent     = map[string]bool{}   // subscribed names told not to exist
		node       *corev3.Node          // of the last request that had one
	)
	for {
		select {
		case req := <-reqs:
			s.log.Debug("SDS delta request", "subscribe", req.GetResourceNamesSubscribe(), "unsubscribe", req.GetResourceNamesUnsubscribe(),
				"nonce", req.GetResponseNonce(), "pid", st.caller.PID)
			if err := checkRequest(req.GetTypeUrl(), nil); err != nil {
				return fail(err)
			}
			if n := req.GetResponseNonce(); n != "" {
				if req.GetErrorDetail() != nil {
					s.log.Warn("Envoy rejected secrets", "nonce", n, "error", req.GetErrorDetail().GetMessage(), "pid", st.caller.PID)
				} else {
					s.log.Debug("Envoy applied secrets", "nonce", n)
				}
			}
			if req.GetNode() != nil {
				node = req.GetNode()
			}
			if !started {
				started = true
				all = len(req.GetResourceNamesSubscribe()) == 0 // legacy wildcard
				for name, version := range req.GetInitialResourceVersions() {
					held[name] = version
				}
			}
			for _, name := range req.GetResourceNamesSubscribe() {
				if name == wildcard {
					all = true
					continue
				}
				subscribed[name] = true
			}
			for _, name := range req.GetResourceNamesUnsubscribe() {
				if name == wildcard {
					all = false
					// The client forgets what it held for the wildcard
					// alone.
					for name := range held {
						if !subscribed[name] {
							delete(held, name)
						}
					}
					continue
				}
				delete(subscribed, name)
				delete(absent, name)
				if !all {
					delete(held, name) // the client forgets it
				}
			}
			if len(subscribed) > MaxResourceNames || len(held) > 2*MaxResourceNames {
				return fail(fmt.Errorf("%w: more than %d resource names subscribed to", endpoint.ErrInvalidRequest, MaxResourceNames))
			}
		case <-st.sub.Changed():
			if !started {
				continue
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
		var want []string // nil: every resource
		if !all {
			want = slices.Sorted(maps.Keys(subscribed))
			if len(want) == 0 {
				// Subscribed to nothing: only removals remain to be
				// told, if anything is held.
				want = []string{}
			}
		}
		var res result
		if want == nil || len(want) > 0 {
			if res, err = s.build(snap, want, s.validator(node)); err != nil {
				return fail(err)
			}
		}
		if all && len(subscribed) > 0 {
			// Wildcard and explicit names together: the names too.
			extra, err := s.build(snap, slices.Sorted(maps.Keys(subscribed)), s.validator(node))
			if err != nil {
				return fail(err)
			}
			res = merge(res, extra)
		}

		resp := &discoveryv3.DeltaDiscoveryResponse{TypeUrl: SecretTypeURL}
		current := make(map[string]bool, len(res.found))
		for _, r := range res.found {
			current[r.name] = true
			delete(absent, r.name)
			if held[r.name] == r.version {
				continue
			}
			held[r.name] = r.version
			resp.Resources = append(resp.Resources, &discoveryv3.Resource{Name: r.name, Version: r.version, Resource: r.any})
		}
		for _, name := range slices.Sorted(maps.Keys(held)) {
			if !current[name] {
				delete(held, name)
				resp.RemovedResources = append(resp.RemovedResources, name)
				if subscribed[name] {
					absent[name] = true
				}
			}
		}
		for _, name := range res.missing {
			if !absent[name] {
				absent[name] = true
				if !slices.Contains(resp.RemovedResources, name) {
					resp.RemovedResources = append(resp.RemovedResources, name)
				}
			}
		}
		if len(resp.Resources) == 0 && len(resp.RemovedResources) == 0 {
			continue
		}
		resp.SystemVersionInfo, resp.Nonce = st.next()
		if err := stream.Send(resp); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		s.log.Debug("SDS delta response sent", "nonce", resp.Nonce, "count", len(resp.Resources), "removed", resp.RemovedResources, "pid", st.caller.PID)
	}
}

// merge adds to a what b found and a did not.
func merge(a, b result) result {
	have := make(map[string]bool, len(a.found))
	for _, r := range a.found {
		have[r.name] = true
	}
	for _, r := range b.found {
		if !have[r.name] {
			a.found = append(a.found, r)
		}
	}
	a.missing = append(a.missing, b.missing...)
	return a
}
