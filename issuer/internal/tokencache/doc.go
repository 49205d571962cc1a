// Package tokencache is the bounded cache of the tokens an issuer minted
// (JWT-SVIDs by entry, audience and key; WIT-SVIDs by entry), from which
// it serves them again and drops those of keys it no longer trusts.
package tokencache
