// Package authorities is an issuer's view of its trust domain's
// authorities, as its Trust last said: the bundle it serves, the X.509 CA
// that signs now, the CAs whose SVIDs must be replaced early, and the JWT
// and WIT keys whose tokens must not be served (tainted, or gone from the
// bundle).
package authorities
