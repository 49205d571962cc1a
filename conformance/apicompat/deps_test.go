package apicompat_test

// The compatibility test reads the packages below through "go list", which
// the test cache does not see. Linking them into the test binary makes any
// change to them invalidate cached results. Keep this list in step with
// sharedPackages.
import (
	_ "github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	_ "github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	_ "github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	_ "github.com/spiffe/go-spiffe/v2/exp/bundle/witbundle"
	_ "github.com/spiffe/go-spiffe/v2/exp/svid/witsvid"
	_ "github.com/spiffe/go-spiffe/v2/federation"
	_ "github.com/spiffe/go-spiffe/v2/logger"
	_ "github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	_ "github.com/spiffe/go-spiffe/v2/spiffeid"
	_ "github.com/spiffe/go-spiffe/v2/spiffetls"
	_ "github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	_ "github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	_ "github.com/spiffe/go-spiffe/v2/svid/x509svid"
	_ "github.com/spiffe/go-spiffe/v2/workloadapi"

	_ "github.com/spiffekit/spiffekit/bundle/jwtbundle"
	_ "github.com/spiffekit/spiffekit/bundle/spiffebundle"
	_ "github.com/spiffekit/spiffekit/bundle/x509bundle"
	_ "github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	_ "github.com/spiffekit/spiffekit/exp/svid/witsvid"
	_ "github.com/spiffekit/spiffekit/federation"
	_ "github.com/spiffekit/spiffekit/logger"
	_ "github.com/spiffekit/spiffekit/spiffegrpc/grpccredentials"
	_ "github.com/spiffekit/spiffekit/spiffeid"
	_ "github.com/spiffekit/spiffekit/spiffetls"
	_ "github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	_ "github.com/spiffekit/spiffekit/svid/jwtsvid"
	_ "github.com/spiffekit/spiffekit/svid/x509svid"
	_ "github.com/spiffekit/spiffekit/workloadapi"
)
