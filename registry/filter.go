package registry

import (
	"slices"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// MatchMode says how a set in a [Filter] compares with the same set of an
// entry.
type MatchMode uint8

const (
	// MatchExact selects entries whose set equals the filter's set.
	MatchExact MatchMode = iota
	// MatchSubset selects entries whose set is a subset of the filter's set:
	// with selectors, the entries that a workload holding exactly the filter's
	// selectors is entitled to.
	MatchSubset
	// MatchSuperset selects entries whose set contains all of the filter's
	// set.
	MatchSuperset
	// MatchAny selects entries that share at least one element with the
	// filter's set.
	MatchAny
)

// A Filter narrows [Reader.List]. Its zero value matches every entry; each
// set field narrows the result further (the conditions are joined with AND).
type Filter struct {
	// BySPIFFEID, if not zero, keeps entries with this SPIFFE ID.
	BySPIFFEID spiffeid.ID
	// ByParentID, if not zero, keeps entries with this parent ID.
	ByParentID spiffeid.ID
	// BySelectors, if not nil, compares entries' selectors with a set.
	BySelectors *SelectorFilter
	// ByFederatesWith, if not nil, compares entries' federated trust domains
	// with a set.
	ByFederatesWith *FederatesWithFilter
	// ByHint, if not empty, keeps entries with this hint.
	ByHint string
}

// A SelectorFilter compares an entry's selectors with Selectors.
type SelectorFilter struct {
	// Selectors is the set to compare with; at least one, at most
	// [MaxSelectors].
	Selectors []attest.Selector
	// Match is the comparison; the zero value is MatchExact.
	Match MatchMode
}

// A FederatesWithFilter compares an entry's FederatesWith with TrustDomains.
type FederatesWithFilter struct {
	// TrustDomains is the set to compare with; at least one, at most
	// [MaxFederatesWith].
	TrustDomains []spiffeid.TrustDomain
	// Match is the comparison; the zero value is MatchExact.
	Match MatchMode
}

// Validate checks the filter's bounds. The error wraps [ErrInvalid].
func (f Filter) Validate() error {
	if s := f.BySelectors; s != nil {
		if len(s.Selectors) == 0 || len(s.Selectors) > MaxSelectors {
			return invalidf("selector filter needs 1 to %d selectors", MaxSelectors)
		}
		if s.Match > MatchAny {
			return invalidf("selector filter has unknown match mode %d", s.Match)
		}
		for _, sel := range s.Selectors {
			if err := validateSelector("selector filter", sel); err != nil {
				return err
			}
		}
	}
	if fw := f.ByFederatesWith; fw != nil {
		if len(fw.TrustDomains) == 0 || len(fw.TrustDomains) > MaxFederatesWith {
			return invalidf("federates-with filter needs 1 to %d trust domains", MaxFederatesWith)
		}
		if fw.Match > MatchAny {
			return invalidf("federates-with filter has unknown match mode %d", fw.Match)
		}
		for _, td := range fw.TrustDomains {
			if td.IsZero() {
				return invalidf("federates-with filter has an empty trust domain")
			}
		}
	}
	if len(f.ByHint) > MaxHintLen {
		return invalidf("hint filter is longer than %d bytes", MaxHintLen)
	}
	return nil
}

// Matches reports whether e passes the filter. Stores that filter in memory
// use it; it assumes f is valid.
func (f Filter) Matches(e Entry) bool {
	switch {
	case !f.BySPIFFEID.IsZero() && e.SPIFFEID != f.BySPIFFEID:
		return false
	case !f.ByParentID.IsZero() && e.ParentID != f.ByParentID:
		return false
	case f.ByHint != "" && e.Hint != f.ByHint:
		return false
	case f.BySelectors != nil && !setMatch(e.Selectors, f.BySelectors.Selectors, f.BySelectors.Match):
		return false
	case f.ByFederatesWith != nil && !setMatch(e.FederatesWith, f.ByFederatesWith.TrustDomains, f.ByFederatesWith.Match):
		return false
	}
	return true
}

// setMatch compares the entry's set (which has no duplicates) with the
// filter's set (which may have some).
func setMatch[T comparable](entry, filter []T, mode MatchMode) bool {
	inFilter := func(v T) bool { return slices.Contains(filter, v) }
	inEntry := func(v T) bool { return slices.Contains(entry, v) }
	switch mode {
	case MatchSubset:
		return len(entry) > 0 && all(entry, inFilter)
	case MatchSuperset:
		return all(filter, inEntry)
	case MatchAny:
		return slices.ContainsFunc(entry, inFilter)
	default:
		return all(entry, inFilter) && all(filter, inEntry)
	}
}

func all[T any](s []T, pred func(T) bool) bool {
	for _, v := range s {
		if !pred(v) {
			return false
		}
	}
	return true
}

// Page selects one page of a [Reader.List] result.
type Page struct {
	// Token is "" for the first page, then the token the previous call
	// returned.
	Token string
	// Size is the maximum number of entries to return; zero means no limit.
	// It must not be negative.
	Size int
}

// Validate checks the page. The error wraps [ErrInvalid].
func (p Page) Validate() error {
	if p.Size < 0 {
		return invalidf("page size is negative")
	}
	if p.Token != "" && !ValidEntryID(p.Token) {
		return invalidf("page token %q is malformed", truncate(p.Token))
	}
	return nil
}
