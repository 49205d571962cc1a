package witsvid

import "github.com/spiffekit/spiffekit/spiffeid"

// Source is a source of WIT-SVIDs keyed by SPIFFE ID. Implementations must be
// safe for concurrent use and must not block.
type Source interface {
	// GetWITSVIDForID returns the WIT-SVID for the given SPIFFE ID.
	GetWITSVIDForID(id spiffeid.ID) (*SVID, error)
}
