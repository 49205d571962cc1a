package registry

import (
	"cmp"
	"strings"
	"unicode/utf8"
)

const (
	// MaxSelectorTypeLen is the maximum length in bytes of a selector type.
	MaxSelectorTypeLen = 128
	// MaxSelectorValueLen is the maximum length in bytes of a selector value.
	MaxSelectorValueLen = 1024
)

// Selector is one attested property of a workload or node, such as
// {Type: "unix", Value: "uid:1000"}. Selectors are small comparable values:
// they can be compared with == and used as map keys.
//
// A valid selector has a non-empty type of at most [MaxSelectorTypeLen] bytes
// that contains no ':' and no control character, and a non-empty value of at
// most [MaxSelectorValueLen] bytes with no control character. The value may
// contain ':'. Both are valid UTF-8, so that every store keeps them
// unchanged.
type Selector struct {
	// Type names the attestor that produced the selector, e.g. "unix", "k8s".
	Type string
	// Value is the attested property, e.g. "uid:1000".
	Value string
}

// ParseSelector parses the text form "type:value" produced by
// [Selector.String]. The type ends at the first ':'. It returns an error
// wrapping [ErrInvalid] when the result is not a valid selector.
func ParseSelector(s string) (Selector, error) {
	typ, value, ok := strings.Cut(s, ":")
	if !ok {
		return Selector{}, invalidf("selector %q: missing ':' between type and value", truncate(s))
	}
	sel := Selector{Type: typ, Value: value}
	if err := sel.Validate(); err != nil {
		return Selector{}, err
	}
	return sel, nil
}

// String returns the selector as "type:value".
func (s Selector) String() string { return s.Type + ":" + s.Value }

// Validate reports whether the selector is valid (see [Selector]). The error
// wraps [ErrInvalid].
func (s Selector) Validate() error {
	switch {
	case s.Type == "":
		return invalidf("selector type is empty")
	case len(s.Type) > MaxSelectorTypeLen:
		return invalidf("selector type is longer than %d bytes", MaxSelectorTypeLen)
	case strings.IndexByte(s.Type, ':') >= 0:
		return invalidf("selector type %q contains ':'", s.Type)
	case hasControl(s.Type):
		return invalidf("selector type %q contains a control character", s.Type)
	case s.Value == "":
		return invalidf("selector %q has an empty value", s.Type)
	case len(s.Value) > MaxSelectorValueLen:
		return invalidf("selector %q value is longer than %d bytes", s.Type, MaxSelectorValueLen)
	case hasControl(s.Value):
		return invalidf("selector %q value contains a control character", s.Type)
	case !utf8.ValidString(s.Type) || !utf8.ValidString(s.Value):
		// Stores keep selectors as text; invalid UTF-8 would come back
		// changed, and then match other workloads than the one registered.
		return invalidf("selector %q is not valid UTF-8", truncate(s.String()))
	}
	return nil
}

// Compare orders selectors by type, then by value. It returns -1, 0 or +1.
func (s Selector) Compare(other Selector) int {
	if c := cmp.Compare(s.Type, other.Type); c != 0 {
		return c
	}
	return cmp.Compare(s.Value, other.Value)
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// truncate shortens attacker-supplied text before it goes into an error.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
