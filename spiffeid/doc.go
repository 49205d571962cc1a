// Package spiffeid parses, builds and matches SPIFFE IDs and trust domain names.
//
// A SPIFFE ID is a URI of the form spiffe://trust-domain/path that names a
// workload. [ID] and [TrustDomain] are small comparable values: they can be
// compared with ==, used as map keys, and are always in canonical form, because
// parsing rejects every input that is not already canonical (nothing is
// trimmed, case-folded or percent-decoded).
//
//	td := spiffeid.RequireTrustDomainFromString("example.org")
//	id, err := spiffeid.FromSegments(td, "ns", "prod", "sa", "billing")
//	if err != nil {
//		return err
//	}
//	fmt.Println(id) // spiffe://example.org/ns/prod/sa/billing
//
//	peer, err := spiffeid.FromString("spiffe://example.org/ns/prod/sa/web")
//	if err != nil {
//		return err
//	}
//	if err := spiffeid.MatchMemberOf(td)(peer); err != nil {
//		return err
//	}
//
// # Strictness
//
// The package follows the SPIFFE-ID standard. It accepts only the lowercase
// "spiffe://" scheme prefix, and it rejects trust domain names longer than 255
// bytes (the standard's limit, which go-spiffe does not enforce). Paths of any
// length are accepted; the standard requires at least 2048 bytes for a whole ID.
//
// The API is source-compatible with go-spiffe v2's spiffeid package.
package spiffeid
