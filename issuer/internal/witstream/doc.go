// Package witstream is the live view of one FetchWITSVID caller: the view
// of its X509-SVIDs and bundles, with the WIT-SVIDs of its entries, which
// a goroutine of its own keeps fresh (when the base view changes, when a
// WIT key is tainted, when a WIT-SVID is due, and after a failure, with a
// backoff of RetryMin doubling to RetryMax).
package witstream
