package attest

import (
	"fmt"
	"strings"
)

// Limits on the parts of a selector. They bound what a registration entry or
// an attestor can make a server store and compare; the value limit leaves room
// for a PATH_MAX (4096-byte) executable path plus a prefix.
const (
	MaxTypeLength  = 64
	MaxValueLength = 8192
)

// Selector is one property of a workload: a Type naming the attestor that
// produced it ("unix", "k8s") and a Value whose format the attestor defines
// ("uid:1000"). Its string form is "type:value".
//
// Selector is a small value type: compare with ==, use as a map key. The zero
// value is not a valid selector ([Selector.IsZero]).
type Selector struct {
	Type  string
	Value string
}

// ParseSelector parses "type:value". The type ends at the first ':'; the
// value is the rest and may itself contain ':' ("unix:uid:1000" has type
// "unix" and value "uid:1000"). The result satisfies [Selector.Validate];
// errors wrap [ErrInvalidSelector].
func ParseSelector(s string) (Selector, error) {
	typ, value, ok := strings.Cut(s, ":")
	if !ok {
		return Selector{}, fmt.Errorf("%w: %q has no ':' between type and value", ErrInvalidSelector, truncate(s))
	}
	sel := Selector{Type: typ, Value: value}
	if err := sel.Validate(); err != nil {
		return Selector{}, err
	}
	return sel, nil
}

// Validate reports whether s is well formed: a Type of 1 to [MaxTypeLength]
// characters from [A-Za-z0-9_.-] (so never a ':'), and a Value of 1 to
// [MaxValueLength] bytes without NUL. Errors wrap [ErrInvalidSelector].
func (s Selector) Validate() error {
	switch {
	case s.Type == "":
		return fmt.Errorf("%w: type is empty", ErrInvalidSelector)
	case len(s.Type) > MaxTypeLength:
		return fmt.Errorf("%w: type is longer than %d bytes", ErrInvalidSelector, MaxTypeLength)
	case s.Value == "":
		return fmt.Errorf("%w: value is empty", ErrInvalidSelector)
	case len(s.Value) > MaxValueLength:
		return fmt.Errorf("%w: value is longer than %d bytes", ErrInvalidSelector, MaxValueLength)
	case strings.IndexByte(s.Value, 0) >= 0:
		return fmt.Errorf("%w: value contains a NUL byte", ErrInvalidSelector)
	}
	for i := 0; i < len(s.Type); i++ {
		if !isTypeChar(s.Type[i]) {
			return fmt.Errorf("%w: type %q contains %q", ErrInvalidSelector, s.Type, s.Type[i])
		}
	}
	return nil
}

// IsZero reports whether s is the zero Selector.
func (s Selector) IsZero() bool { return s == Selector{} }

// String returns "type:value", the form [ParseSelector] reads.
func (s Selector) String() string { return s.Type + ":" + s.Value }

// compare orders selectors by type, then value.
func (s Selector) compare(o Selector) int {
	if c := strings.Compare(s.Type, o.Type); c != 0 {
		return c
	}
	return strings.Compare(s.Value, o.Value)
}

func isTypeChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-'
}

// truncate keeps error messages short when the input is attacker-sized.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
