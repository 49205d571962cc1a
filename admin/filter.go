package admin

import (
	"github.com/spiffekit/spiffekit/admin/internal/wire"
	"github.com/spiffekit/spiffekit/registry"
)

// ParseMatchMode parses the name of a match mode, as a list filter's
// selector_match and federates_with_match parameters name it: "exact",
// "subset", "superset" or "any". The error wraps [registry.ErrInvalid].
func ParseMatchMode(s string) (registry.MatchMode, error) {
	return wire.ParseMatchMode(s)
}
