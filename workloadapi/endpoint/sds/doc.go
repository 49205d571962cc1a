// Package sds serves Envoy's Secret Discovery Service (SDS, xDS v3) beside
// the Workload API, on the same endpoint, as SPIRE's agent does, so that an
// Envoy configured for SPIRE works unchanged: its SDS cluster points at the
// Workload API socket and asks for SPIRE's resource names.
//
// The caller is the one the Workload API serves: the endpoint identifies it
// when it accepts the connection (endpoint.CallerFromContext) and the same
// endpoint.Handler decides what it gets, so an SDS caller is attested as a
// Workload API caller is, and sees the same SVIDs and bundles.
//
// # Resource names
//
//   - "default" (Config.DefaultSVIDName): the caller's default X509-SVID, as
//     a tls_certificate (chain and PKCS#8 key, PEM).
//   - A SPIFFE ID with a path: the caller's X509-SVID of that ID.
//   - "ROOTCA" (Config.DefaultBundleName): the bundle of the caller's own
//     trust domain, as a validation_context.
//   - A trust domain, "spiffe://example.org" or "example.org": that trust
//     domain's bundle, the own or one the caller's entries federate with.
//   - "ALL" (Config.DefaultAllBundlesName): one validation_context whose
//     custom validator (envoy.tls.cert_validator.spiffe) holds every
//     trust domain the caller trusts, its own and the federated ones.
//
// Asking for no name at all gives every bundle (named by trust domain ID)
// and every X509-SVID (named by SPIFFE ID).
//
// As in SPIRE, a bundle is sent as an SPIFFECertValidatorConfig (the SPIFFE
// certificate validator, Envoy 1.18 and later) when the caller's node
// reports an Envoy version of 1.18 or later, and as trusted_ca otherwise,
// or when SPIFFE certificate validation is disabled (by
// Config.DisableSPIFFECertValidation, or by the node metadata key
// disable_spiffe_cert_validation, which wins); "ALL" needs the validator.
//
// # Protocol
//
// StreamSecrets (state of the world) answers each request that changes the
// names asked for, and pushes a new response, with a new version_info and
// nonce, each time what those names give changes (an SVID rotated, a
// bundle changed). ACKs and NACKs (a request with the last nonce; a NACK
// carries error_detail or another version) are logged and answered only
// when the names changed; a request with a stale nonce is ignored. A name
// the caller has no resource for ends the stream with InvalidArgument, as
// in SPIRE. FetchSecrets answers once, without version or nonce.
//
// DeltaSecrets (incremental) sends each subscribed resource when its
// version (a digest of its content) differs from what the client holds,
// and names in removed_resources the subscribed resources that do not
// exist, or no longer do (a removed registration entry). A first request
// that subscribes to nothing, or a subscription to "*", is a wildcard
// subscription to every resource.
//
// A caller with no identity gets PermissionDenied ("no identity issued"),
// and a stream whose caller loses every identity ends with it, as on the
// Workload API.
package sds
