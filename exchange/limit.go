package exchange

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// subjectLimiter keeps one token bucket per issuer and subject, at most max
// of them: when full, the buckets that are full again (their subjects idle)
// are dropped, and if none is, an arbitrary one, so that a flood of
// subjects costs bounded memory.
type subjectLimiter struct {
	limit rate.Limit
	burst int
	max   int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[subjectKey]*rate.Limiter
}

type subjectKey struct{ issuer, subject string }

func newSubjectLimiter(limit rate.Limit, burst, max int, now func() time.Time) *subjectLimiter {
	return &subjectLimiter{limit: limit, burst: burst, max: max, now: now, buckets: map[subjectKey]*rate.Limiter{}}
}

// allow takes a token of the bucket of issuer and subject.
func (l *subjectLimiter) allow(issuer, subject string) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	k := subjectKey{issuer, subject}
	b := l.buckets[k]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.sweep(now)
		}
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[k] = b
	}
	return b.AllowN(now, 1)
}

// sweep drops the full buckets, or one bucket if none is full. It must be
// called with l.mu held.
func (l *subjectLimiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < l.max {
			break
		}
		delete(l.buckets, k)
	}
}

// len returns the number of buckets kept.
func (l *subjectLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
