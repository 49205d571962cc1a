package admission

import (
	"fmt"
	"slices"
	"time"

	"github.com/spiffekit/spiffekit/admin/internal/wire"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// CheckEntry enforces what the registry cannot know of e, an entry of the
// server of td written at now: the entry's IDs belong to td, the only
// trust domain the server can sign for, and it federates with other trust
// domains only. It also refuses what no write may hold (a reserved SPIFFE
// ID, also refused by the stores of package registry), selectors the
// built-in attestors can never produce ([CheckSelector]), and an expiry that
// has come.
func CheckEntry(e registry.Entry, td spiffeid.TrustDomain, now time.Time) error {
	if !e.SPIFFEID.IsZero() && !e.SPIFFEID.MemberOf(td) {
		return wire.Invalid("entry SPIFFE ID %q is not in trust domain %q", e.SPIFFEID, td)
	}
	if registry.Reserved(e.SPIFFEID) {
		return wire.Invalid("entry SPIFFE ID %q %s", e.SPIFFEID, reservedNote(td))
	}
	if !e.ParentID.IsZero() && !e.ParentID.MemberOf(td) {
		return wire.Invalid("entry parent ID %q is not in trust domain %q", e.ParentID, td)
	}
	for _, sel := range e.Selectors {
		if err := CheckSelector(sel); err != nil {
			return wire.Invalid("entry selector %q can never match: %v", sel.String(), err)
		}
	}
	// A trust domain without a bundle yet is accepted: a federation
	// relationship may fetch it later, and the workload receives it then.
	if slices.Contains(e.FederatesWith, td) {
		return wire.Invalid("entry federates with %q, this server's own trust domain", td)
	}
	// An entry that has expired is served to no one and pruned: writing
	// one is a mistake.
	if e.Expired(now) {
		return wire.Invalid("entry expiry %s (%d seconds since the epoch) has passed; give a time to come, or none",
			e.ExpiresAt.UTC().Format(time.RFC3339), e.ExpiresAt.Unix())
	}
	return nil
}

func reservedNote(td spiffeid.TrustDomain) string {
	return fmt.Sprintf("is reserved for the server and its agents (spiffe://%s%s/...)", td.Name(), registry.ReservedPath)
}

// CheckAlias checks alias, the node alias a join token request of the server
// of td names.
func CheckAlias(alias spiffeid.ID, td spiffeid.TrustDomain) error {
	switch {
	case !alias.MemberOf(td):
		return wire.Invalid("token SPIFFE ID %q is not in trust domain %q", alias, td)
	case alias.Path() == "":
		return wire.Invalid("token SPIFFE ID %q has no path", alias)
	case registry.Reserved(alias):
		return wire.Invalid("token SPIFFE ID %q %s; the agent's own ID is derived from the token, and the SPIFFE ID becomes a node alias of it", alias, reservedNote(td))
	}
	return nil
}

// CheckMintID checks id, the SPIFFE ID of an SVID to mint by the server of td:
// one of td, with a path, outside the namespace of the server and its
// agents (registry.Reserved), whose identities an operator must not hand
// out.
func CheckMintID(id spiffeid.ID, td spiffeid.TrustDomain) error {
	switch {
	case id.TrustDomain() != td:
		return wire.Invalid("%s is not in trust domain %s, the only one this server signs for", id, td.Name())
	case id.Path() == "":
		return wire.Invalid("%s has no path: an SVID names a workload", id)
	case registry.Reserved(id):
		return wire.Invalid("%s is reserved for the server and its agents", id)
	}
	return nil
}
