package attest

import (
	"context"
	"errors"
	"sync"
)

// Combine returns a WorkloadAttestor that asks each of attestors about the
// same workload and returns the union of their selectors, so that one
// registration entry may select on the properties several attestors see
// (a unix user and a container label, say). Nil attestors are skipped;
// with none left, every workload gets the empty set, which no entry
// matches. A single attestor is returned as it is.
//
// The attestors run concurrently, each with the caller's ctx, and Combine
// waits for all of them. The workload gets selectors only when every one
// succeeds:
//   - An attestor that rejects the workload rejects it: the error wraps
//     [ErrRejected], whatever the others found.
//   - An attestor that fails otherwise (a file it could not read, a
//     service it could not reach) fails the attestation too, as SPIRE's
//     agent does, with an error that does not wrap ErrRejected. A partial
//     set would silently give the workload fewer identities than it is
//     entitled to, which a Workload API server takes for a deleted
//     registration: it ends the workload's stream with PermissionDenied.
//     An error instead becomes Unavailable, and the workload retries.
//
// The errors of every attestor that failed are joined, in the order of
// attestors.
func Combine(attestors ...WorkloadAttestor) WorkloadAttestor {
	var c combined
	for _, a := range attestors {
		if a != nil {
			c = append(c, a)
		}
	}
	if len(c) == 1 {
		return c[0]
	}
	return c
}

// combined is the WorkloadAttestor of Combine.
type combined []WorkloadAttestor

// Attest implements WorkloadAttestor.
func (c combined) Attest(ctx context.Context, w Workload) (Selectors, error) {
	sels := make([]Selectors, len(c))
	errs := make([]error, len(c))
	var wg sync.WaitGroup
	for i, a := range c {
		wg.Go(func() { sels[i], errs[i] = a.Attest(ctx, w) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return Selectors{}, err
	}
	var out Selectors
	for _, s := range sels {
		out = out.Union(s)
	}
	return out, nil
}
