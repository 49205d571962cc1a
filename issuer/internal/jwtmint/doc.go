// Package jwtmint has an issuer's JWT-SVIDs signed and reuses them: one
// per entry, revision, active key and audience, until half its life (and,
// while the signer fails, until three quarters of it), never one of a key
// that is tainted or has left the trust domain's bundle.
package jwtmint
