// Package witmint has an issuer's WIT-SVIDs signed, each for a key it
// generates (ECDSA P-256, ES256), and keeps them: one per entry, shared by
// the entry's callers (WIT rule 13), renewed at half its life, served while
// the signer fails until it expires, never one of a key that is tainted or
// has left the trust domain's bundle. It counts the changes of what it
// holds, for a program that saves them.
package witmint
