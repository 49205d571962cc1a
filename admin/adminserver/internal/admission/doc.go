// Package admission decides what the administration API admits beyond the
// registry's own rules, for its server (package admin/adminserver): an
// entry written through it must name IDs of the server's trust domain,
// outside the reserved namespace of the server and its agents
// (registry.Reserved), hold only selectors the built-in attestors and the
// token exchange can produce (one table, selectors.go), not federate with
// the server's own trust domain and not have expired; a join token's node
// alias and a minted SVID's SPIFFE ID must be of the trust domain, have a
// path and be outside the reserved namespace.
//
//	if err := admission.CheckEntry(e, td, time.Now()); err != nil {
//		// err wraps registry.ErrInvalid and says why
//	}
//
// Every refusal wraps registry.ErrInvalid, with a message, prefixed
// "admin: ", that the API answers as it is.
package admission
