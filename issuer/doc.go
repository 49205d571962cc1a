// Package issuer is an embedded SPIFFE issuer: a Workload API handler that
// attests each local caller, looks up the registration entries that apply
// to it, and serves it SVIDs minted by a local CA, keeping them fresh.
//
// It joins three parts the caller assembles: an [Authority] (the rotating CA
// manager), a registry (any registry.Store; the issuer indexes it in memory
// and follows its change feed) and a workload attestor (attest/unix). The
// Issuer implements endpoint.Handler, so the Workload API server of package
// workloadapi/endpoint serves it; [Issuer.Start] runs that server on a unix
// socket in one call.
//
// # Usage
//
//	ca, err := rotation.New(ctx, rotation.Config{TrustDomain: td})
//	go ca.Run(ctx)
//	store, err := sqlstore.Open(ctx, sqlstore.Config{Dialect: sqlstore.SQLite, DSN: dbPath})
//	attestor, err := unix.New(unix.Config{})
//	iss, err := issuer.New(ctx, issuer.Config{Authority: ca, Registry: store, Attestor: attestor})
//	defer iss.Close()
//	addr, err := iss.Start("/run/spiffe/workload.sock", 0o700)
//
//	// Register a workload; Sync makes a non-notifying store's change
//	// visible at once.
//	_, err = store.Create(ctx, registry.Entry{
//		SPIFFEID:  spiffeid.RequireFromPath(td, "/web"),
//		ParentID:  spiffeid.RequireFromPath(td, "/issuer"),
//		Selectors: []attest.Selector{{Type: "unix", Value: "uid:1000"}},
//	})
//	err = iss.Sync(ctx)
//	// Processes running as uid 1000 now get spiffe://<td>/web from addr.
//
// # Freshness
//
// Each entry has one X509-SVID with its own key, generated in memory and
// shared by the callers the entry applies to. It is re-minted at half its
// life, when the entry changes, when the active CA changes (unless
// Config.LazyRotation is set) and when its CA is tainted; every open stream
// whose view changed is then sent the new one (WAPI rule 4). A registry
// change reaches open streams as soon as the index sees it; a caller whose
// last entry is deleted has its stream ended with PermissionDenied (WAPI rule
// 10). JWT-SVIDs are minted on request and reused for the same entry and
// audience until half their life. No lifetime exceeds what the CA has left.
//
// # Remote signing
//
// A node agent holds no CA key: its server signs. It passes a [Signer] that
// forwards batches of requests (each with the entry and the SVID's key, for
// a CSR) to the server, an [Authority] whose X509Authority and JWTAuthority
// return nil and whose bundle it keeps from its sync, and Config.PreMint, so
// that every entry it serves has its X509-SVID before a workload asks:
//
//	iss, err := issuer.New(ctx, issuer.Config{
//		Authority: agentBundle, // Bundle and Subscribe only
//		Signer:    serverSigner,
//		Registry:  syncedEntries,
//		Attestor:  attestor,
//		PreMint:   true,
//	})
//
// The issuer never holds its lock across a Signer call, so a slow server
// delays only the callers that wait for a new SVID. The SVIDs due together
// (at start, after a registry sync, a CA change, or for a new caller) go in
// one SignX509SVIDs call of at most Config.MaxBatch requests, and at most one
// mint of an entry is under way at a time. When the Signer fails, each SVID
// is served until it expires while the issuer retries with backoff, more
// often as the expiry nears.
package issuer
