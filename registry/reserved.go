package registry

import (
	"strings"
	"time"

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

// MinSVIDTTL is the shortest non-zero X509- or JWT-SVID TTL an entry may be
// written with: a shorter one gives SVIDs that expire before a workload can
// use them, or that a CA refuses, and the entry's workloads would get none.
const MinSVIDTTL = time.Second

// checkWritable refuses an entry that a store must not write, beyond
// [Entry.Validate]: one whose SPIFFE ID is [Reserved], or whose X509- or
// JWT-SVID TTL is non-zero and below [MinSVIDTTL]. It is not part of
// Validate so that an entry stored before these rules can still be read,
// listed and deleted (and updated to follow them).
func checkWritable(e Entry) error {
	if Reserved(e.SPIFFEID) {
		return invalidf("entry SPIFFE ID %q is reserved for the server and its agents (spiffe://%s%s/...)",
			e.SPIFFEID, e.SPIFFEID.TrustDomain().Name(), ReservedPath)
	}
	if e.X509SVIDTTL > 0 && e.X509SVIDTTL < MinSVIDTTL {
		return invalidf("entry X509-SVID TTL %v is too short: it must be zero (the default) or at least %v", e.X509SVIDTTL, MinSVIDTTL)
	}
	if e.JWTSVIDTTL > 0 && e.JWTSVIDTTL < MinSVIDTTL {
		return invalidf("entry JWT-SVID TTL %v is too short: it must be zero (the default) or at least %v", e.JWTSVIDTTL, MinSVIDTTL)
	}
	return nil
}
