// Package provider is the OIDC discovery provider of the
// oidc-discovery-provider program: it publishes the JWT authorities of a
// trust domain, taken from an agent's Workload API or the server's admin
// socket, as an OpenID Connect discovery document
// (/.well-known/openid-configuration) and a JWKS (/keys), for the
// configured domains only, with the configuration keys of SPIRE's
// provider.
//
// Keys follow the bundle: the CA publishes a new JWT key before it signs
// with it and keeps the old one until its tokens have expired, and the
// provider serves the bundle's keys as they change (pushed by the
// Workload API, polled from the admin socket).
package provider
