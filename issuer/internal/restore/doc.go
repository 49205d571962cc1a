// Package restore checks the SVIDs a program saved from an issuer and
// hands back after a restart (a node agent's, with its servers away),
// against what the issuer knows now: the entries it indexes, the time, the
// trust domain's bundle and what its Trust names as tainted. It says which
// to take back, and counts those it leaves out: stale (their entry is gone
// or has another revision), expired, untrusted (a WIT-SVID whose key left
// the bundle) or tainted. One that fails a check fails the whole call:
// whatever held it cannot be trusted.
package restore
