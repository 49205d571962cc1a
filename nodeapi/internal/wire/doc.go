// Package wire converts what the node protocol carries between its wire
// form (internal/nodepb) and the module's types, for both of its sides:
// registration entries (sent by the server, checked by the client against
// the registry's rules) and certificate chains.
//
//	pb := wire.EntryToPB(entry)       // server side
//	entry, err := wire.EntryFromPB(pb) // client side: untrusted input
package wire
