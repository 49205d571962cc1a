// Package clockstep notices steps of a wall clock (an issuer's
// Config.Now): it compares how far the clock moved with how far the
// monotonic clock did, so that the issuer refreshes its SVIDs when they
// may have expired, or come from what is now the future, long before the
// timers of the monotonic clock fire.
package clockstep
