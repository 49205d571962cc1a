package adminserver_test

import "github.com/spiffekit/spiffekit/internal/testing/admintest"

// td is the trust domain of the servers admintest starts.
var td = admintest.TrustDomain
