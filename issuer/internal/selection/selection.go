package selection

import (
	"log/slog"
	"slices"
	"strings"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// ForCaller returns the entries of idx that apply to a caller with the
// given selectors (of parent, unless it is zero), in a stable order (by
// SPIFFE ID, then entry ID), without a second entry carrying a hint
// already seen (WAPI rule 8: hints are unique within a response), which
// it logs to log.
func ForCaller(idx *index.Index, sels []attest.Selector, parent spiffeid.ID, log *slog.Logger) []registry.Entry {
	all := idx.ForWorkload(sels)
	out := all[:0]
	for _, e := range all {
		if parent.IsZero() || e.ParentID == parent {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b registry.Entry) int {
		if c := strings.Compare(a.SPIFFEID.String(), b.SPIFFEID.String()); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	var hints map[string]bool // only for callers with hints
	kept := out[:0]
	for _, e := range out {
		if e.Hint != "" {
			if hints == nil {
				hints = make(map[string]bool)
			}
			if hints[e.Hint] {
				log.Warn("entry skipped: its hint is taken by another entry of the same caller",
					"entry", e.ID, "spiffe_id", e.SPIFFEID.String(), "hint", e.Hint)
				continue
			}
			hints[e.Hint] = true
		}
		kept = append(kept, e)
	}
	return kept
}

// Served returns every entry of idx the issuer serves: those whose parent
// is parent, or, when it is zero, every entry; at most limit of them, the
// first by ID, when limit is not zero, so that the same ones are kept from
// one call to the next. It keeps no copy: a node agent's ten thousand
// entries are already held twice, by its replica of the registry and by
// the index.
func Served(idx *index.Index, parent spiffeid.ID, limit int) []registry.Entry {
	var out []registry.Entry
	if parent.IsZero() {
		out = idx.All()
	} else {
		all := idx.ForAgent(parent, nil)
		out = all[:0]
		for _, e := range all {
			// ForAgent also returns the entries of nested parents.
			if e.ParentID == parent {
				out = append(out, e)
			}
		}
	}
	if limit > 0 && len(out) > limit {
		// The index returns them sorted by ID.
		out = out[:limit]
	}
	return out
}
