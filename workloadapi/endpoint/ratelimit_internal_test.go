package endpoint

import (
	"bytes"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewLimiterChecksTheLimit(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	l, err := newLimiter(nil, log)
	require.NoError(t, err)
	assert.Nil(t, l, "no RateLimit, no limiter")
	assert.Nil(t, l.options(), "a nil limiter adds no interceptor")

	l, err = newLimiter(&RateLimit{}, log)
	require.NoError(t, err)
	assert.Equal(t, float64(DefaultRate), l.rate)
	assert.Equal(t, float64(DefaultBurst), l.burst)
	assert.Len(t, l.options(), 2)

	l, err = newLimiter(&RateLimit{Rate: 2.5, Burst: 7}, log)
	require.NoError(t, err)
	assert.Equal(t, 2.5, l.rate)
	assert.Equal(t, 7.0, l.burst)
	assert.Equal(t, ": each caller may make 2.5 calls per second, 7 at once; retry later", l.msg)

	for _, rl := range []RateLimit{{Rate: -1}, {Rate: math.NaN()}, {Rate: math.Inf(1)}, {Rate: math.Inf(-1)}, {Burst: -1}} {
		t.Run(fmt.Sprintf("%+v", rl), func(t *testing.T) {
			_, err := newLimiter(&rl, log)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "endpoint: rate limit: "), err.Error())
		})
	}
}

func TestLimiterTokenBucket(t *testing.T) {
	l, err := newLimiter(&RateLimit{Rate: 10, Burst: 3}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	alice, bob := limitKey{uid: 1000}, limitKey{uid: 1001}
	at := func(ms int) time.Duration { return time.Duration(ms) * time.Millisecond }

	// A new caller has a full bucket: Burst calls at once, then refusals.
	for i := range 3 {
		ok, _ := l.allow(alice, 0)
		require.True(t, ok, "call %d of the burst", i)
	}
	ok, first := l.allow(alice, 0)
	assert.False(t, ok, "the bucket is empty")
	assert.True(t, first, "the first refusal is reported, to be logged")
	ok, first = l.allow(alice, at(50))
	assert.False(t, ok, "half a token refilled is not a call")
	assert.False(t, first, "later refusals are not reported again")

	// Another caller is not affected.
	ok, _ = l.allow(bob, at(50))
	assert.True(t, ok, "another uid has its own bucket")

	// Refill at Rate: one call per 100 ms; a caller held at its rate is
	// still not reported again.
	ok, _ = l.allow(alice, at(100))
	assert.True(t, ok, "one token refilled after 100 ms")
	ok, first = l.allow(alice, at(100))
	assert.False(t, ok)
	assert.False(t, first, "the caller has not slowed down since the first refusal")

	// The bucket never holds more than Burst, however long the pause; once
	// it is full again, a refusal is reported again.
	for i := range 3 {
		ok, _ := l.allow(alice, time.Hour)
		require.True(t, ok, "call %d after a pause", i)
	}
	ok, first = l.allow(alice, time.Hour)
	assert.False(t, ok, "a pause refills to Burst, not beyond")
	assert.True(t, first, "the caller had slowed down; a new flood is reported")
}

// TestLimiterTimeGoingBack: concurrent callers read the clock before they
// take the lock, so a call may come with a time earlier than the last
// one. That is no time at all: it must not take tokens back, which at a
// high rate would empty the bucket for good.
func TestLimiterTimeGoingBack(t *testing.T) {
	l, err := newLimiter(&RateLimit{Rate: 1e30, Burst: 3}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	k := limitKey{uid: 1000}
	ok, _ := l.allow(k, time.Second)
	require.True(t, ok)
	ok, _ = l.allow(k, time.Second-time.Nanosecond)
	assert.True(t, ok, "a call read the clock a nanosecond before the last one")
	ok, _ = l.allow(k, time.Second)
	assert.True(t, ok)
}

func TestLimiterSweepsOnlyFullBuckets(t *testing.T) {
	l, err := newLimiter(&RateLimit{Rate: 1, Burst: 100}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	quiet, busy := limitKey{uid: 1}, limitKey{uid: 2}
	l.allow(quiet, 0)
	for range 100 {
		l.allow(busy, 0)
	}
	// Before sweepEvery, nothing is swept.
	l.allow(limitKey{uid: 3}, time.Second)
	assert.Len(t, l.buckets, 3)

	// After it, a new caller sweeps the buckets that are full by now
	// (quiet: 99 + 1 token/s × 60 s; uid 3 likewise), not the busy one,
	// which has refilled only 60 of its 100 tokens.
	l.allow(limitKey{uid: 4}, sweepEvery+time.Second)
	assert.Len(t, l.buckets, 2)
	assert.Contains(t, l.buckets, busy)
	assert.Contains(t, l.buckets, limitKey{uid: 4})

	// The busy caller's bucket was kept as it was: it has 61 tokens.
	for i := range 61 {
		ok, _ := l.allow(busy, sweepEvery+time.Second)
		require.True(t, ok, "call %d", i)
	}
	ok, _ := l.allow(busy, sweepEvery+time.Second)
	assert.False(t, ok, "the sweep gave the busy caller no fresh bucket")
}

func TestKeyOf(t *testing.T) {
	tcp := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	for _, tt := range []struct {
		name   string
		caller Caller
		want   limitKey
	}{
		{"uid", Caller{PID: 42, UID: 1000, GID: 1000, Addr: &net.UnixAddr{Net: "unix"}}, limitKey{uid: 1000}},
		{"root", Caller{PID: 1, UID: 0, GID: 0}, limitKey{uid: 0}},
		{"tcp, any port", Caller{PID: -1, UID: -1, GID: -1, Addr: tcp("127.0.0.2:4000")}, limitKey{uid: -1, ip: netip.MustParseAddr("127.0.0.2")}},
		{"tcp v4-mapped is v4", Caller{PID: -1, UID: -1, GID: -1, Addr: tcp("[::ffff:127.0.0.2]:4001")}, limitKey{uid: -1, ip: netip.MustParseAddr("127.0.0.2")}},
		{"tcp v6", Caller{PID: -1, UID: -1, GID: -1, Addr: tcp("[::1]:4002")}, limitKey{uid: -1, ip: netip.MustParseAddr("::1")}},
		{"unidentified", Caller{PID: -1, UID: -1, GID: -1, Addr: &net.UnixAddr{Net: "unix"}}, limitKey{uid: -1}},
		{"no address", Caller{PID: -1, UID: -1, GID: -1}, limitKey{uid: -1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, keyOf(tt.caller))
		})
	}
}

func TestLimiterLogsAFloodOnce(t *testing.T) {
	var buf bytes.Buffer
	l, err := newLimiter(&RateLimit{Rate: 0.001, Burst: 1}, slog.New(slog.NewTextHandler(&buf, nil)))
	require.NoError(t, err)
	ctx := t.Context() // no peer: an unidentified caller, sharing its kind's bucket
	require.NoError(t, l.check(ctx, wapiPrefix+"FetchJWTSVID"))
	for range 5 {
		err := l.check(ctx, wapiPrefix+"FetchJWTSVID")
		require.ErrorContains(t, err, "workload API rate limit exceeded for FetchJWTSVID: each caller may make 0.001 calls per second, 1 at once; retry later")
	}
	assert.Equal(t, 1, strings.Count(buf.String(), "exceeds its rate limit"), buf.String())
	assert.NoError(t, l.check(ctx, "/grpc.health.v1.Health/Check"), "other services are not limited")
}

// BenchmarkLimiterAllow measures one limiter decision: callers of distinct
// uids in parallel, and all of one uid.
func BenchmarkLimiterAllow(b *testing.B) {
	for _, shared := range []bool{false, true} {
		b.Run(fmt.Sprintf("one-uid=%t", shared), func(b *testing.B) {
			l, err := newLimiter(&RateLimit{Rate: math.MaxFloat32, Burst: math.MaxInt32}, slog.New(slog.DiscardHandler))
			require.NoError(b, err)
			var next atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				k := limitKey{uid: int(next.Add(1))}
				if shared {
					k.uid = 0
				}
				for pb.Next() {
					if ok, _ := l.allow(k, time.Since(l.epoch)); !ok {
						b.Fatal("refused")
					}
				}
			})
		})
	}
}
