// Package wire is the JSON form of the administration API (package
// admin): what its client sends and its server (package admin/adminserver)
// answers, and the conversions between that form and the module's types,
// for both sides. IDs and trust domains travel as strings, durations in
// Go's duration syntax ("1h30m"), times in RFC 3339.
//
//	j := wire.EntryToJSON(entry)        // the side that sends
//	entry, err := wire.EntryFromJSON(j) // the side that reads: untrusted input
//
// The conversions from the wire check syntax only, not the registry's
// rules, and their errors name the field at fault without a package
// prefix: each side says in its own words where the value came from. The
// list filter's errors are the API's own answers, prefixed "admin:" and
// wrapping registry.ErrInvalid.
package wire
