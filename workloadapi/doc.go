// Package workloadapi is a client of the SPIFFE Workload API: it fetches and
// watches a workload's X509-SVIDs, JWT-SVIDs, WIT-SVIDs and trust bundles from
// the local Workload Endpoint, and keeps them current in in-memory sources.
//
// The API is source-compatible with go-spiffe v2's workloadapi package.
//
// # Usage
//
// Most workloads want a source: it connects once, watches for rotations and
// serves the current SVID and bundles from memory, cheaply enough for a TLS
// callback.
//
//	source, err := workloadapi.NewX509Source(ctx,
//		workloadapi.WithClientOptions(workloadapi.WithAddr("unix:///run/spire/agent.sock")),
//	)
//	if err != nil {
//		return err
//	}
//	defer source.Close()
//	svid, err := source.GetX509SVID()
//
//	jwtSource, err := workloadapi.NewJWTSource(ctx)
//	token, err := jwtSource.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "spiffe://example.org/db"})
//
// Without WithAddr, the address comes from SPIFFE_ENDPOINT_SOCKET (WE rule 8).
// A *slog.Logger is passed as WithLogger(logger.Slog(l)).
//
// # Differences from go-spiffe
//
//   - Addresses follow WE rule 8 strictly: see TargetFromAddress.
//   - Watches never retry InvalidArgument or Unimplemented, which the standard
//     says not to retry (go-spiffe retries Unimplemented), and back off
//     exponentially with jitter from 100 ms up to 30 s (go-spiffe: linearly
//     from 1 s); see WithBackoffStrategy.
//   - Every response is checked whole; a malformed one is rejected and a
//     watcher keeps its previous state (WAPI rule 6). The spiffe_id fields
//     must match the SVIDs, bundle keys must be "spiffe://" trust domain IDs,
//     and a WIT-SVID's private key must match its cnf key.
//   - Sources can start without waiting (WithoutWaitingForFirstUpdate), drop
//     their SVIDs when the Workload API answers PermissionDenied (WAPI rule
//     10), and JWTSource caches JWT-SVIDs until shortly before expiry
//     (WithoutJWTSVIDCache). Getters after Close return ErrSourceClosed.
//   - BundleSource watches the bundle RPCs, not FetchX509SVID.
//   - Errors start with "workloadapi: " and wrap the gRPC status, so
//     status.Code still works on them.
package workloadapi
