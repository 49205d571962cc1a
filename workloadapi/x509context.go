package workloadapi

import (
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// X509Context conveys X.509 materials from the Workload API.
type X509Context struct {
	// SVIDs is a list of workload X509-SVIDs.
	SVIDs []*x509svid.SVID

	// Bundles is a set of X.509 bundles.
	Bundles *x509bundle.Set
}

// DefaultSVID returns the default X509-SVID (the first in the list, WAPI
// rule 9), or nil if there is none.
func (x *X509Context) DefaultSVID() *x509svid.SVID {
	if len(x.SVIDs) == 0 {
		return nil
	}
	return x.SVIDs[0]
}
