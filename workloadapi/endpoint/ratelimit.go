package endpoint

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Defaults of RateLimit.
const (
	// DefaultRate is the default of RateLimit.Rate, in calls per second.
	// A workload opens a few watch streams when it starts and holds them;
	// a client that caches JWT-SVIDs fetches one per audience about twice
	// per lifetime. But every call is attested, which may mean reading
	// /proc, hashing an executable not seen before, or asking another
	// service: twenty calls a second keep one uid to a small share of the
	// agent, far above what such workloads need.
	DefaultRate = 20
	// DefaultBurst is the default of RateLimit.Burst: enough for dozens of
	// workloads of one uid starting at once.
	DefaultBurst = 100
)

// RateLimit bounds how often each caller may call the Workload API, so
// that one noisy caller cannot starve the others (Config.RateLimit).
//
// Each caller has a token bucket that holds up to Burst calls and refills
// at Rate calls per second. Every unary call, and every watch stream when
// it opens, takes one token; an open stream then costs nothing more,
// however many rotations it receives. A call that finds its caller's
// bucket empty fails at once with ResourceExhausted, whose message names
// the limit, before any other check and before the Handler is asked
// anything: a refused call costs no attestation and no signing. Clients
// retry it with backoff, as they do Unavailable.
//
// A caller is keyed by its uid, as the kernel reports it: every process of
// one uid shares one bucket, so a flood cannot be spread over many
// processes to escape the limit, and one uid's flood leaves other uids'
// buckets untouched. The limit is checked before the Handler attests the
// caller, so it cannot be keyed by the attested identity: that key would
// cost the attestation the limit is there to spare. Where many workloads
// run as one uid they share its bucket; raise Rate and Burst to suit.
// Over TCP a caller is keyed by its IP address; callers the server could
// not identify share one bucket.
type RateLimit struct {
	// Rate is how many calls per second each caller may make, sustained.
	// Zero means DefaultRate. It must not be negative or infinite.
	Rate float64

	// Burst is how many calls a caller may make at once after a pause: the
	// size of its bucket. Zero means DefaultBurst. It must not be
	// negative.
	Burst int
}

// sweepEvery is how often, at most, the limiter drops the buckets of
// callers gone quiet.
const sweepEvery = time.Minute

// limiter enforces a RateLimit. A nil *limiter allows everything.
type limiter struct {
	rate  float64 // tokens per second
	burst float64
	msg   string // the status message after the method's name
	log   *slog.Logger
	epoch time.Time // times are kept as offsets from it

	mu      sync.Mutex
	buckets map[limitKey]bucket
	swept   time.Duration // offset of the last sweep
}

// limitKey is whom a bucket belongs to: a uid, or without kernel
// credentials an IP address (uid -1).
type limitKey struct {
	uid int
	ip  netip.Addr
}

// bucket is one caller's token bucket as of at (offset from epoch).
type bucket struct {
	tokens  float64
	at      time.Duration
	limited bool // refused since the bucket was last full (logged once)
}

// newLimiter returns the limiter of rl, or nil for no limit.
func newLimiter(rl *RateLimit, log *slog.Logger) (*limiter, error) {
	if rl == nil {
		return nil, nil
	}
	rate, burst := rl.Rate, rl.Burst
	switch {
	case rate < 0 || math.IsNaN(rate) || math.IsInf(rate, 0):
		return nil, fmt.Errorf("endpoint: rate limit: the rate must be a positive number of calls per second, not %v (a nil RateLimit is no limit)", rate)
	case burst < 0:
		return nil, fmt.Errorf("endpoint: rate limit: the burst must not be negative, not %d", burst)
	}
	if rate == 0 {
		rate = DefaultRate
	}
	if burst == 0 {
		burst = DefaultBurst
	}
	return &limiter{
		rate:    rate,
		burst:   float64(burst),
		msg:     fmt.Sprintf(": each caller may make %g calls per second, %d at once; retry later", rate, burst),
		log:     log,
		epoch:   time.Now(),
		buckets: make(map[limitKey]bucket),
	}, nil
}

// options returns the interceptors that enforce the limit on Workload API
// methods; none for a nil limiter.
func (l *limiter) options() []grpc.ServerOption {
	if l == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(l.unary), grpc.ChainStreamInterceptor(l.stream)}
}

func (l *limiter) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := l.check(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// stream takes the stream's token when it opens.
func (l *limiter) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := l.check(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}

// check takes a token from the bucket of the caller of ctx, or returns
// the ResourceExhausted status to answer with. Services other than the
// Workload API (Config.Register) are not limited.
func (l *limiter) check(ctx context.Context, fullMethod string) error {
	method, ok := strings.CutPrefix(fullMethod, wapiPrefix)
	if !ok {
		return nil
	}
	caller, _ := callerFromContext(ctx) // an unidentified caller fails later; it shares the key of its kind
	allowed, first := l.allow(keyOf(caller), time.Since(l.epoch))
	if allowed {
		return nil
	}
	if first {
		l.log.Warn("workload API caller exceeds its rate limit; refusing its calls until it slows down",
			"method", method, callerAttrs(caller), "rate", l.rate, "burst", l.burst)
	}
	return status.Error(codes.ResourceExhausted, "workload API rate limit exceeded for "+method+l.msg)
}

// keyOf returns the bucket key of c: its uid, or, for a caller without
// kernel credentials, its IP address if it has one.
func keyOf(c Caller) limitKey {
	if c.HasCredentials() {
		return limitKey{uid: c.UID}
	}
	k := limitKey{uid: -1}
	if a, ok := c.Addr.(*net.TCPAddr); ok {
		k.ip = a.AddrPort().Addr().Unmap()
	}
	return k
}

// allow takes a token from the bucket of k at now (an offset from epoch),
// and reports whether there was one, and if not whether this is the
// first refusal since the bucket was last full: a caller held at its rate
// is logged once, not at every call, until it slows down.
func (l *limiter) allow(k limitKey, now time.Duration) (allowed, first bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[k]
	switch {
	case !ok:
		l.sweep(now)
		b.tokens, b.at = l.burst, now
	case now > b.at:
		// Concurrent callers read the clock before they take mu, so now
		// may be earlier than b.at: that is no time at all, never a
		// negative refill.
		b.tokens = min(l.burst, b.tokens+(now-b.at).Seconds()*l.rate)
		b.at = now
	}
	if b.tokens >= l.burst {
		b.limited = false
	}
	if b.tokens >= 1 {
		b.tokens--
		allowed = true
	} else {
		first = !b.limited
		b.limited = true
	}
	l.buckets[k] = b
	return allowed, first
}

// sweep drops, at most once per sweepEvery, the buckets that would be full
// at now: a full bucket is what a new caller gets, so dropping it changes
// nothing but the memory held for callers gone quiet. Called with mu held.
func (l *limiter) sweep(now time.Duration) {
	if now-l.swept < sweepEvery {
		return
	}
	l.swept = now
	for k, b := range l.buckets {
		if b.tokens+(now-b.at).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}
