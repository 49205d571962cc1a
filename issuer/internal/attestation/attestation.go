package attestation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// Outcomes of an attestation, as an Observer is told of them.
const (
	OutcomeOK       = "ok"
	OutcomeRejected = "rejected"
	OutcomeError    = "error"
)

// An Observer is told of every attestation: its outcome and how long it
// took. It must be safe for concurrent use and must not block.
type Observer interface {
	WorkloadAttested(outcome string, d time.Duration)
}

// Attested is what one attestation of a caller found. The zero value has
// no selectors, and is never stale.
type Attested struct {
	// Selectors are the caller's, sorted.
	Selectors []attest.Selector
	// skipped are the selector kinds the attestor was told no entry needs
	// (attest.Workload.Needed), and may have left out.
	skipped []kind
}

// kind is a selector type and kind (attest.Selector.Kind).
type kind struct{ typ, kind string }

// Attestor attests callers. The zero value is not usable: set Attestor,
// Index and Log.
type Attestor struct {
	// Attestor describes each caller by its selectors.
	Attestor attest.WorkloadAttestor
	// Index is the issuer's index of the registry: it says which
	// selector kinds an entry uses now.
	Index *index.Index
	// Observer, when not nil, is told of every attestation.
	Observer Observer
	// Log receives each attestation's selectors, at Debug.
	Log *slog.Logger
}

// Attest attests caller, with what the Workload API server recorded of it
// at accept. The attestor is told which selector kinds the registry's
// entries use, so that it can skip the work of those none does
// (attest/unix hashes the executable only for an entry that selects a
// hash); what it was told is not needed is recorded (see Stale).
//
// A caller without kernel credentials, or one the attestor rejects, gets
// an error wrapping endpoint.ErrNoIdentity; an attestor that fails, one
// wrapping endpoint.ErrUnavailable, or ctx's error once ctx is done.
func (a *Attestor) Attest(ctx context.Context, caller endpoint.Caller) (Attested, error) {
	if !caller.HasCredentials() {
		// Only a caller identified by the kernel can be attested (WE rule 5).
		return Attested{}, fmt.Errorf("issuer: %w: caller has no kernel credentials", endpoint.ErrNoIdentity)
	}
	var start time.Time
	if a.Observer != nil {
		start = time.Now()
	}
	var mu sync.Mutex // Needed may be called concurrently (attest.Combine)
	var skipped []kind
	w := caller.Workload()
	w.Needed = func(typ, k string) bool {
		if a.Index.Uses(typ, k) {
			return true
		}
		mu.Lock()
		if k := (kind{typ, k}); !slices.Contains(skipped, k) {
			skipped = append(skipped, k)
		}
		mu.Unlock()
		return false
	}
	sels, err := a.Attestor.Attest(ctx, w)
	if o := a.Observer; o != nil {
		o.WorkloadAttested(outcome(err), time.Since(start))
	}
	switch {
	case errors.Is(err, attest.ErrRejected):
		return Attested{}, fmt.Errorf("issuer: %w: %w", endpoint.ErrNoIdentity, err)
	case err != nil && ctx.Err() != nil:
		return Attested{}, ctx.Err()
	case err != nil:
		return Attested{}, fmt.Errorf("issuer: %w: attesting pid %d: %w", endpoint.ErrUnavailable, caller.PID, err)
	}
	mu.Lock()
	defer mu.Unlock()
	att := Attested{Selectors: sels.Slice(), skipped: skipped}
	if a.Log.Enabled(ctx, slog.LevelDebug) {
		// What an operator needs to write the entry a caller lacks.
		a.Log.Debug("caller attested", "pid", caller.PID, "uid", caller.UID, "gid", caller.GID,
			"selectors", selectorStrings(att.Selectors), "skipped", len(skipped))
	}
	return att, nil
}

// Fresh attests caller until no selector kind the attestor skipped is
// needed by then, rounds times at most after the first: for a call that
// looks its entries up once, right after.
func (a *Attestor) Fresh(ctx context.Context, caller endpoint.Caller, rounds int) (Attested, error) {
	for round := 0; ; round++ {
		att, err := a.Attest(ctx, caller)
		if err != nil || !a.Stale(att) || round >= rounds {
			return att, err
		}
	}
}

// Stale reports whether an entry now needs a selector kind the
// attestation att skipped.
func (a *Attestor) Stale(att Attested) bool {
	for _, k := range att.skipped {
		if a.Index.Uses(k.typ, k.kind) {
			return true
		}
	}
	return false
}

// selectorStrings returns the "type:value" form of each selector.
func selectorStrings(ss []attest.Selector) []string {
	out := make([]string, len(ss))
	for k, s := range ss {
		out[k] = s.String()
	}
	return out
}

// outcome is the outcome an Observer is told of an attestation that ended
// with err.
func outcome(err error) string {
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, attest.ErrRejected):
		return OutcomeRejected
	}
	return OutcomeError
}
