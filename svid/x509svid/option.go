package x509svid

import "time"

// VerifyOption is an option used when verifying X509-SVIDs.
type VerifyOption interface {
	apply(*verifyConfig)
}

type verifyConfig struct {
	now time.Time
}

type verifyOptionFunc func(*verifyConfig)

func (f verifyOptionFunc) apply(c *verifyConfig) { f(c) }

// WithTime sets the time used when verifying validity periods on the
// X509-SVID. If not used, or if now is the zero time, the current time is
// used.
func WithTime(now time.Time) VerifyOption {
	return verifyOptionFunc(func(c *verifyConfig) { c.now = now })
}
