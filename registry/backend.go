package registry

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// The functions in this file help implement a [Store]; applications do not
// need them.

// PrepareCreate validates e for [Writer.Create] and returns the entry to
// store: a deep copy with its ID, or a new one when it has none (an ID
// given must have the form [NewEntryID] makes; the store checks that no
// entry has it), Revision 1, both timestamps set to now
// (UTC, truncated to the microsecond), Selectors and FederatesWith
// sorted, and ExpiresAt as [ExpiryTime] makes it. It refuses, besides what [Entry.Validate] refuses, an entry whose
// SPIFFE ID is [Reserved] or with a non-zero SVID TTL below [MinSVIDTTL].
// Errors wrap [ErrInvalid].
func PrepareCreate(e Entry, now time.Time) (Entry, error) {
	if e.ID != "" && !ValidEntryID(e.ID) {
		return Entry{}, invalidf("entry ID %q is not 32 lowercase hexadecimal digits, the form of the IDs stores assign", truncate(e.ID))
	}
	if e.Revision != 0 {
		return Entry{}, invalidf("entry revision must be zero on create")
	}
	if err := e.Validate(); err != nil {
		return Entry{}, err
	}
	if err := checkWritable(e); err != nil {
		return Entry{}, err
	}
	e = normalize(e)
	if e.ID == "" {
		e.ID = NewEntryID()
	}
	e.Revision = 1
	e.CreatedAt = StoreTime(now)
	e.UpdatedAt = e.CreatedAt
	return e, nil
}

// PrepareUpdate validates e for [Writer.Update] against the stored entry
// with the same ID and returns the entry to store: a deep copy with the next
// revision, stored's CreatedAt, UpdatedAt set to now, and sorted sets. As
// [PrepareCreate], it refuses a [Reserved] SPIFFE ID and an SVID TTL below
// [MinSVIDTTL]. Errors wrap
// [ErrConflict] or [ErrInvalid].
func PrepareUpdate(stored, e Entry, now time.Time) (Entry, error) {
	if e.Revision != stored.Revision {
		return Entry{}, revisionConflict(e.ID, e.Revision, stored.Revision)
	}
	if err := e.Validate(); err != nil {
		return Entry{}, err
	}
	if err := checkWritable(e); err != nil {
		return Entry{}, err
	}
	e = normalize(e)
	e.Revision = stored.Revision + 1
	e.CreatedAt = stored.CreatedAt
	e.UpdatedAt = StoreTime(now)
	return e, nil
}

// CheckDelete returns an error wrapping [ErrConflict] if revision is not zero
// and differs from the stored entry's revision.
func CheckDelete(stored Entry, revision int64) error {
	if revision != 0 && revision != stored.Revision {
		return revisionConflict(stored.ID, revision, stored.Revision)
	}
	return nil
}

func revisionConflict(id string, got, stored int64) error {
	return &conflictError{id: id, got: got, stored: stored}
}

type conflictError struct {
	id          string
	got, stored int64
}

func (e *conflictError) Error() string {
	return "registry: entry " + e.id + " is at revision " + itoa(e.stored) + ", not " + itoa(e.got)
}

func (e *conflictError) Is(target error) bool { return target == ErrConflict }

// StoreTime converts t to the form stores keep: UTC, microsecond precision,
// without a monotonic clock reading.
func StoreTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond).Round(0)
}

// ExpiryTime converts t to the form stores keep an [Entry.ExpiresAt] in:
// UTC, truncated to the second, without a monotonic clock reading.
func ExpiryTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Second).Round(0)
}

// SimilarityKey returns a string that two entries share exactly when they
// have the same SPIFFE ID, parent ID and selector set; stores use it to
// reject similar entries with [ErrAlreadyExists]. It expects sorted
// selectors, as [PrepareCreate] and [PrepareUpdate] leave them.
func SimilarityKey(e Entry) string {
	var b strings.Builder
	b.WriteString(e.SPIFFEID.String())
	b.WriteByte('\n')
	b.WriteString(e.ParentID.String())
	for _, s := range e.Selectors {
		// Control characters are invalid in selectors, so '\n' separates
		// unambiguously.
		b.WriteByte('\n')
		b.WriteString(s.String())
	}
	return b.String()
}

func normalize(e Entry) Entry {
	e = e.Clone()
	slices.SortFunc(e.Selectors, attest.Selector.Compare)
	slices.SortFunc(e.FederatesWith, spiffeid.TrustDomain.Compare)
	if !e.ExpiresAt.IsZero() {
		e.ExpiresAt = ExpiryTime(e.ExpiresAt)
	}
	return e
}

func itoa(n int64) string {
	return strconv.FormatInt(n, 10)
}
