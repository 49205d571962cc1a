package attest

import (
	"iter"
	"slices"
	"strings"
)

// Selectors is an immutable set of selectors, kept sorted (by type, then
// value) and free of duplicates. The zero value is the empty set. Methods
// never modify the receiver, so a Selectors is safe for concurrent use.
type Selectors struct {
	s []Selector // sorted, unique; never shared with callers
}

// NewSelectors returns the set of the given selectors, sorted and
// de-duplicated. It does not validate them; see [Selector.Validate].
func NewSelectors(sels ...Selector) Selectors {
	if len(sels) == 0 {
		return Selectors{}
	}
	s := slices.Clone(sels)
	slices.SortFunc(s, Selector.Compare)
	return Selectors{s: slices.Compact(s)}
}

// Len returns the number of selectors in the set.
func (s Selectors) Len() int { return len(s.s) }

// All iterates over the selectors in order.
func (s Selectors) All() iter.Seq[Selector] { return slices.Values(s.s) }

// Slice returns the selectors in order, in a new slice the caller may modify.
func (s Selectors) Slice() []Selector { return slices.Clone(s.s) }

// Contains reports whether sel is in the set. It takes O(log n).
func (s Selectors) Contains(sel Selector) bool {
	_, ok := slices.BinarySearchFunc(s.s, sel, Selector.Compare)
	return ok
}

// ContainsAll reports whether every selector of sub is in s, i.e. whether sub
// is a subset of s. This is how a registration entry (sub) matches an attested
// workload (s). The empty set is a subset of every set. It takes
// O(len(s)+len(sub)).
func (s Selectors) ContainsAll(sub Selectors) bool {
	i := 0
	for _, want := range sub.s {
		for i < len(s.s) && s.s[i].Compare(want) < 0 {
			i++
		}
		if i == len(s.s) || s.s[i] != want {
			return false
		}
		i++
	}
	return true
}

// Equal reports whether s and o hold the same selectors.
func (s Selectors) Equal(o Selectors) bool { return slices.Equal(s.s, o.s) }

// Union returns the set of the selectors in s or in o.
func (s Selectors) Union(o Selectors) Selectors {
	if len(o.s) == 0 {
		return s
	}
	if len(s.s) == 0 {
		return o
	}
	return NewSelectors(append(slices.Clone(s.s), o.s...)...)
}

// String returns the selectors in order, separated by spaces and enclosed in
// brackets: "[unix:gid:0 unix:uid:0]".
func (s Selectors) String() string {
	var b strings.Builder
	b.WriteByte('[')
	for i, sel := range s.s {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(sel.String())
	}
	b.WriteByte(']')
	return b.String()
}
