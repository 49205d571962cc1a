// Package issuer is an embedded SPIFFE issuer: a Workload API handler that
// attests each local caller, looks up the registration entries that apply
// to it, and serves it SVIDs, keeping them fresh.
//
// It joins the parts the caller assembles: a [Trust] (the bundle, the
// active and tainted CAs), a [Signer], a registry (any registry.Store; the
// issuer indexes it in memory and follows its change feed) and a workload
// attestor (attest/unix, or several joined by attest.Combine). An issuer
// that embeds its CA takes both the Trust and the Signer from the rotating
// CA manager, with [TrustFromAuthority] and [NewLocalSigner]. The Issuer
// implements endpoint.Handler: the Workload API server of package
// workloadapi/endpoint serves it. New starts nothing; [Issuer.Run] keeps the
// SVIDs fresh until its ctx ends.
//
// # Usage
//
//	ca, err := rotation.New(ctx, rotation.Config{TrustDomain: td})
//	go ca.Run(ctx)
//	store, err := sqlstore.Open(ctx, sqlstore.Config{Dialect: sqlstore.SQLite, DSN: dbPath})
//	attestor, err := unix.New(unix.Config{})
//	iss, err := issuer.New(ctx, issuer.Config{
//		Trust:    issuer.TrustFromAuthority(ca),
//		Signer:   issuer.NewLocalSigner(ca),
//		Registry: store,
//		Attestor: attestor,
//	})
//	go iss.Run(ctx)
//	srv, err := endpoint.New(endpoint.Config{Handler: iss})
//	lis, err := endpoint.ListenUnix("/run/spiffe/workload.sock", 0o700)
//	go srv.Serve(ctx, lis)
//
//	// Register a workload; Sync makes a non-notifying store's change
//	// visible at once.
//	_, err = store.Create(ctx, registry.Entry{
//		SPIFFEID:  spiffeid.RequireFromPath(td, "/web"),
//		ParentID:  spiffeid.RequireFromPath(td, "/issuer"),
//		Selectors: []attest.Selector{{Type: "unix", Value: "uid:1000"}},
//	})
//	err = iss.Sync(ctx)
//	// Processes running as uid 1000 now get spiffe://<td>/web from
//	// unix:///run/spiffe/workload.sock.
//
// # Freshness
//
// Each entry has one X509-SVID with its own key, generated in memory and
// shared by the callers the entry applies to. Once minted and checked, it
// is kept as the Workload API sends it (endpoint.RawX509SVID): the leaf's
// DER, the key as PKCS#8 (the parsed key is dropped once the Signer has
// certified it), and one copy of each CA certificate for every SVID it
// signed; callers that see the same SVIDs and bundles share one
// endpoint.Snapshot, encoded once. It is re-minted at half its
// life, when the entry changes, when the active CA changes (unless
// Config.LazyRotation is set) and when its CA is tainted; every open stream
// whose view changed is then sent the new one (WAPI rule 4). A registry
// change reaches open streams as soon as the index sees it; a caller whose
// last entry is deleted has its stream ended with PermissionDenied (WAPI rule
// 10). JWT-SVIDs are minted on request and reused for the same entry and
// audience until half their life. WIT-SVIDs, with a Signer that is a
// WITSigner, are minted when a caller first calls FetchWITSVID
// (Issuer.SubscribeWIT), each for a key the issuer generates, shared by
// the entry's callers and renewed at half life while one watches. No
// lifetime exceeds what the CA has left. A JWT-SVID or WIT-SVID signed by
// a key the Trust names as tainted, or by a key that has left the trust
// domain's bundle (revoked), is never served: it is dropped, and one of
// the active key signed in its place.
//
// # Attestation
//
// Each caller is attested with what the Workload API server recorded of it
// when it accepted the connection (endpoint.Caller.Workload), so that a
// process that exited, or executed another file, since it connected is
// refused (see attest/unix for what a path or hash selector promises).
// The attestor is also told which selector kinds the registry's entries
// use (attest.Workload.Needed, answered from the index), so that it can
// skip what no entry could match: attest/unix hashes the caller's
// executable only while some entry selects a hash. A stream keeps the
// selectors of its first attestation; when an entry comes to use a kind
// its attestation skipped, Run attests its caller again (a caller then
// rejected loses its stream with PermissionDenied).
//
// # Remote signing
//
// A node agent holds no CA key: its server signs. It passes a [Signer] that
// forwards batches of requests (each with the entry and the SVID's key, for
// a CSR) to the server, a [Trust] it keeps from its sync with the server,
// and Config.PreMint, so that every entry it serves has its X509-SVID
// before a workload asks:
//
//	iss, err := issuer.New(ctx, issuer.Config{
//		Trust:    agentTrust, // as the server last sent it
//		Signer:   serverSigner,
//		Registry: syncedEntries,
//		Attestor: attestor,
//		PreMint:  true,
//	})
//
// The issuer never holds its lock across a Signer call, so a slow server
// delays only the callers that wait for a new SVID. The SVIDs due together
// (at start, after a registry sync, a CA change, or for a new caller) go in
// SignX509SVIDs calls of at most Config.MaxBatch requests, those of open
// streams first, each stream served as soon as its batch is in; the
// pre-mints of entries no stream holds (Config.PreMint) go one batch at a
// time in the background, so that a stream's entry that arrives meanwhile
// is minted at once beside them. At most one mint of an entry is under way
// at a time. Restore takes back SVIDs saved from X509SVIDs (a node agent's,
// after a restart with its servers away), and RestoreWITSVIDs WIT-SVIDs,
// leaving out those the Trust then names a tainted CA or key of. When the Signer fails, each SVID
// is served until it expires while the issuer retries with backoff, more
// often as the expiry nears. An entry that cannot be minted (the Signer
// refuses it, or returns a chain the issuer refuses) costs its callers only
// its own SVID: they are served their others; one left with none is told to
// retry (Unavailable). The failure is logged and counted (Observer.Signed).
//
// # Metrics
//
// Config.Observer, when set, is told of every Signer call (how many SVIDs,
// how many failed, how long it took) and of every caller's attestation
// with its outcome, for a program's metrics.
package issuer
