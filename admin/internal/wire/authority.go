package wire

import (
	"time"

	"github.com/spiffekit/spiffekit/registry"
)

// Authority is the wire form of an admin.Authority, field for field, so
// that each converts to the other.
type Authority struct {
	Kind     registry.AuthorityKind  `json:"kind"`
	ID       string                  `json:"id"`
	ServerID string                  `json:"server_id"`
	Local    bool                    `json:"local"`
	State    registry.AuthorityState `json:"state"`
	NotAfter time.Time               `json:"not_after"`
	Tainted  bool                    `json:"tainted"`
	Revoked  bool                    `json:"revoked"`
	Pending  bool                    `json:"pending"`
}

// AuthorityID names the authority an action is for: required to taint or
// revoke, optional to activate.
type AuthorityID struct {
	AuthorityID string `json:"authority_id"`
}

// The actions on an authority, each the last element of its route:
// POST /v1/authorities/{kind}/{action}.
const (
	ActionPrepare  = "prepare"
	ActionActivate = "activate"
	ActionTaint    = "taint"
	ActionRevoke   = "revoke"
)
