package spiffebundle

import (
	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
)

// A Bundle and a Set serve every per-format source, as in go-spiffe.
var (
	_ Source            = (*Bundle)(nil)
	_ x509bundle.Source = (*Bundle)(nil)
	_ jwtbundle.Source  = (*Bundle)(nil)
	_ witbundle.Source  = (*Bundle)(nil)
	_ Source            = (*Set)(nil)
	_ x509bundle.Source = (*Set)(nil)
	_ jwtbundle.Source  = (*Set)(nil)
	_ witbundle.Source  = (*Set)(nil)
)
