package attest

import (
	"cmp"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits on the parts of a [Selector]. They are the one set of limits every
// package applies: what passes [Selector.Validate] can be produced by an
// attestor, registered in every registry store and compared, and comes back
// from a store unchanged.
//
// No selector type of SPIRE comes near MaxTypeLength ("unix", "k8s",
// "k8s_psat", "docker", "systemd", "aws_iid", "gcp_iit", "azure_msi",
// "x509pop", "join_token", "tpm_devid", "spiffe_id"). MaxValueLength leaves
// room for a Linux executable path of PATH_MAX (4096) bytes, with a prefix
// ("path:") and a suffix (" (deleted)"), twice over.
const (
	MaxTypeLength  = 64
	MaxValueLength = 8192
)

// Selector is one property of a workload or node: a Type naming the attestor
// that produced it ("unix", "k8s") and a Value whose format the attestor
// defines ("uid:1000"). Its string form is "type:value".
//
// A valid selector ([Selector.Validate]) has:
//
//   - a Type of 1 to [MaxTypeLength] bytes from [A-Za-z0-9_.-] (so never a
//     ':', which ends the type in the string form);
//   - a Value of 1 to [MaxValueLength] bytes of valid UTF-8 without ASCII
//     control characters (U+0000 to U+001F and U+007F). The value may
//     contain ':'.
//
// Stores keep selectors as text: a value that is not UTF-8 would come back
// changed and then match other workloads than the one registered, and a
// control character could make two selector lists print alike. An attestor
// that observes such a property (a file name is any bytes but NUL) must
// leave the selector out rather than produce an invalid one, and say so in
// its documentation.
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

// Validate reports whether s is well formed (see [Selector] for the rules).
// Errors wrap [ErrInvalidSelector] and keep attacker-sized input short.
func (s Selector) Validate() error {
	switch {
	case s.Type == "":
		return fmt.Errorf("%w: type is empty", ErrInvalidSelector)
	case len(s.Type) > MaxTypeLength:
		return fmt.Errorf("%w: type is longer than %d bytes", ErrInvalidSelector, MaxTypeLength)
	case s.Value == "":
		return fmt.Errorf("%w: %q has an empty value", ErrInvalidSelector, s.Type)
	case len(s.Value) > MaxValueLength:
		return fmt.Errorf("%w: %q value is longer than %d bytes", ErrInvalidSelector, truncate(s.Type), MaxValueLength)
	}
	for i := 0; i < len(s.Type); i++ {
		if !isTypeChar(s.Type[i]) {
			return fmt.Errorf("%w: type %q contains %q", ErrInvalidSelector, s.Type, s.Type[i])
		}
	}
	for i := 0; i < len(s.Value); i++ {
		if c := s.Value[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("%w: %q value contains control character %q", ErrInvalidSelector, s.Type, c)
		}
	}
	if !utf8.ValidString(s.Value) {
		return fmt.Errorf("%w: %q value is not valid UTF-8", ErrInvalidSelector, s.Type)
	}
	return nil
}

// Kind returns the part of the value before its first ':', or the whole
// value when it has none: "sha256" for unix:sha256:<hex>, "uid" for
// unix:uid:1000. The built-in attestors, like SPIRE's, write every value
// as kind:rest, so that a (type, kind) pair names one property an
// attestor observes; see [Workload.Needed].
func (s Selector) Kind() string {
	kind, _, _ := strings.Cut(s.Value, ":")
	return kind
}

// IsZero reports whether s is the zero Selector.
func (s Selector) IsZero() bool { return s == Selector{} }

// String returns "type:value", the form [ParseSelector] reads.
func (s Selector) String() string { return s.Type + ":" + s.Value }

// Compare orders selectors by type, then by value, comparing bytes. It
// returns -1, 0 or +1. [Selectors] are kept in this order, and so are the
// selectors of registry entries and agents.
func (s Selector) Compare(o Selector) int {
	if c := cmp.Compare(s.Type, o.Type); c != 0 {
		return c
	}
	return cmp.Compare(s.Value, o.Value)
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
