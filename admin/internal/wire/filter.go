package wire

import (
	"fmt"
	"net/url"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// A list filter travels as query parameters: spiffe_id, parent_id, hint,
// selector (repeated, "type:value") with selector_match, and federates_with
// (repeated) with federates_with_match. Match modes are named as below.

var matchNames = map[registry.MatchMode]string{
	registry.MatchExact:    "exact",
	registry.MatchSubset:   "subset",
	registry.MatchSuperset: "superset",
	registry.MatchAny:      "any",
}

// ParseMatchMode parses the name of a match mode: "exact", "subset",
// "superset" or "any". The error wraps [registry.ErrInvalid].
func ParseMatchMode(s string) (registry.MatchMode, error) {
	for m, name := range matchNames {
		if name == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("admin: unknown match mode %q (want exact, subset, superset or any): %w", s, registry.ErrInvalid)
}

// EncodeFilter returns the query parameters of f.
func EncodeFilter(f registry.Filter) url.Values {
	q := url.Values{}
	if !f.BySPIFFEID.IsZero() {
		q.Set("spiffe_id", f.BySPIFFEID.String())
	}
	if !f.ByParentID.IsZero() {
		q.Set("parent_id", f.ByParentID.String())
	}
	if f.ByHint != "" {
		q.Set("hint", f.ByHint)
	}
	if f.BySelectors != nil {
		for _, s := range f.BySelectors.Selectors {
			q.Add("selector", s.String())
		}
		q.Set("selector_match", matchNames[f.BySelectors.Match])
	}
	if f.ByFederatesWith != nil {
		for _, td := range f.ByFederatesWith.TrustDomains {
			q.Add("federates_with", td.Name())
		}
		q.Set("federates_with_match", matchNames[f.ByFederatesWith.Match])
	}
	return q
}

// DecodeFilter is the inverse of EncodeFilter, and checks the filter
// (registry.Filter.Validate). Errors wrap registry.ErrInvalid.
func DecodeFilter(q url.Values) (registry.Filter, error) {
	var f registry.Filter
	var err error
	if f.BySPIFFEID, err = OptionalID("spiffe_id", q.Get("spiffe_id")); err != nil {
		return f, fmt.Errorf("admin: %w: %w", err, registry.ErrInvalid)
	}
	if f.ByParentID, err = OptionalID("parent_id", q.Get("parent_id")); err != nil {
		return f, fmt.Errorf("admin: %w: %w", err, registry.ErrInvalid)
	}
	f.ByHint = q.Get("hint")
	if sels, ok := q["selector"]; ok {
		sf := &registry.SelectorFilter{}
		if len(sels) > registry.MaxSelectors {
			return f, fmt.Errorf("admin: at most %d selectors may filter a list: %w", registry.MaxSelectors, registry.ErrInvalid)
		}
		for _, s := range sels {
			sel, err := attest.ParseSelector(s)
			if err != nil {
				return f, fmt.Errorf("admin: selector: %w: %w", err, registry.ErrInvalid)
			}
			sf.Selectors = append(sf.Selectors, sel)
		}
		if sf.Match, err = matchParam(q, "selector_match"); err != nil {
			return f, err
		}
		f.BySelectors = sf
	}
	if tds, ok := q["federates_with"]; ok {
		ff := &registry.FederatesWithFilter{}
		if len(tds) > registry.MaxFederatesWith {
			return f, fmt.Errorf("admin: at most %d trust domains may filter a list: %w", registry.MaxFederatesWith, registry.ErrInvalid)
		}
		for _, s := range tds {
			td, err := spiffeid.TrustDomainFromString(s)
			if err != nil {
				return f, fmt.Errorf("admin: federates_with: %w: %w", err, registry.ErrInvalid)
			}
			ff.TrustDomains = append(ff.TrustDomains, td)
		}
		if ff.Match, err = matchParam(q, "federates_with_match"); err != nil {
			return f, err
		}
		f.ByFederatesWith = ff
	}
	if err := f.Validate(); err != nil {
		return f, fmt.Errorf("admin: %w", err)
	}
	return f, nil
}

func matchParam(q url.Values, name string) (registry.MatchMode, error) {
	s := q.Get(name)
	if s == "" {
		return registry.MatchExact, nil
	}
	return ParseMatchMode(s)
}
