package registry

import (
	"github.com/spiffekit/spiffekit/attest"
)

// validateSelector checks s with [attest.Selector.Validate], the one set of
// selector rules, and returns an error that wraps both [ErrInvalid] and
// [attest.ErrInvalidSelector]. what names the field ("entry selector").
func validateSelector(what string, s attest.Selector) error {
	if err := s.Validate(); err != nil {
		return &invalidError{msg: "registry: " + what + ": " + err.Error(), cause: err}
	}
	return nil
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
