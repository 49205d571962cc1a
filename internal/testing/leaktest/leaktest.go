// Package leaktest is the one goroutine-leak check of the module's tests:
// go.uber.org/goleak, given more time than its default on a loaded
// machine, where gRPC's connection goroutines can take a few seconds to
// wind down after Close.
//
//	func TestServe(t *testing.T) {
//		defer leaktest.Check(t)() // everything started after this point must stop
//		...
//	}
package leaktest

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Patience is how long a check waits for goroutines to end.
const Patience = 15 * time.Second

// Check records the goroutines running now and returns a function that
// fails t if any goroutine started since is still running after
// [Patience]. No slack is allowed: one leaked goroutine fails the test, and
// the failure lists it with its stack.
func Check(t testing.TB, opts ...goleak.Option) func() {
	t.Helper()
	opts = append(opts, goleak.IgnoreCurrent())
	return func() {
		t.Helper()
		VerifyNone(t, opts...)
	}
}

// VerifyNone fails t if goroutines other than those opts ignore are still
// running after [Patience].
func VerifyNone(t testing.TB, opts ...goleak.Option) {
	t.Helper()
	verify(t, Patience, opts...)
}

func verify(t testing.TB, patience time.Duration, opts ...goleak.Option) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		err := goleak.Find(opts...)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("goroutines leaked: %v", err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
