package nodeapi

import (
	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// ParseUpdate runs the client's conversion of one entry stream message, as
// Client.Sync does for each message it receives.
func ParseUpdate(td spiffeid.TrustDomain, resp *nodepb.SyncResponse) (Update, error) {
	c := &Client{cfg: ClientConfig{TrustDomain: td}}
	return c.update(resp)
}

// AgentSVIDFromPB exposes the client's check of an agent SVID.
var AgentSVIDFromPB = agentSVIDFromPB
