// Package viewcache shares the Snapshots of an issuer's callers: every
// caller and stream that sees the same X509-SVIDs and bundles (a View) is
// given one endpoint.Snapshot, which the Workload API server encodes once.
package viewcache
