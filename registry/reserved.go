package registry

import (
	"strings"

	"github.com/spiffekit/spiffekit/spiffeid"
)

// The namespace of the server and its agents. In every trust domain, the
// IDs whose path is ReservedPath or begins with ReservedPath + "/" belong to
// spiffekit itself: the issuing server presents
// spiffe://<td>/spiffekit/server (nodeapi.ServerPath) to agents and
// federation partners, and node attestors give agents IDs under
// spiffe://<td>/spiffekit/agent/ (AgentPath). No registration entry may
// issue such an ID: a workload holding one would pass for the server or an
// agent. An entry may still be parented by one (node alias entries are
// parented by the server's ID, workload entries by an agent's).
const (
	// ReservedPath is the path of the reserved namespace.
	ReservedPath = "/spiffekit"
	// AgentPath is the path under which agents' IDs are: an agent ID's path
	// begins with AgentPath + "/".
	AgentPath = ReservedPath + "/agent"
)

// Reserved reports whether id is in the reserved namespace of its trust
// domain (see [ReservedPath]).
func Reserved(id spiffeid.ID) bool {
	return underPath(id, ReservedPath)
}

// IsAgentID reports whether id is in the agents' namespace of its trust
// domain: its path begins with [AgentPath] + "/".
func IsAgentID(id spiffeid.ID) bool {
	return strings.HasPrefix(id.Path(), AgentPath+"/")
}

func underPath(id spiffeid.ID, path string) bool {
	p := id.Path()
	return p == path || strings.HasPrefix(p, path+"/")
}

// checkWritable refuses an entry that a store must not write, beyond
// [Entry.Validate]: one whose SPIFFE ID is [Reserved]. It is not part of
// Validate so that an entry stored before the namespace was reserved can
// still be read, listed and deleted.
func checkWritable(e Entry) error {
	if Reserved(e.SPIFFEID) {
		return invalidf("entry SPIFFE ID %q is reserved for the server and its agents (spiffe://%s%s/...)",
			e.SPIFFEID, e.SPIFFEID.TrustDomain().Name(), ReservedPath)
	}
	return nil
}
