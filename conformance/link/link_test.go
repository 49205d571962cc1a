// Package link proves that one program can link spiffekit and go-spiffe
// v2.9.0 side by side: no duplicate protobuf registration, no init-time
// conflict, and values of both libraries describing the same identity.
package link

import (
	"reflect"
	"testing"

	gsx509bundle "github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	gsid "github.com/spiffe/go-spiffe/v2/spiffeid"
	gsworkloadapi "github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// TestBothModulesLinked fails unless this test binary contains both modules.
// go-spiffe's workloadapi is linked on purpose: it registers the Workload API
// protobuf messages at start-up, which would panic on a duplicate
// registration by spiffekit.
func TestBothModulesLinked(t *testing.T) {
	assert.Equal(t, "github.com/spiffe/go-spiffe/v2/spiffeid", reflect.TypeFor[gsid.ID]().PkgPath())
	assert.Equal(t, "github.com/spiffekit/spiffekit/spiffeid", reflect.TypeFor[spiffeid.ID]().PkgPath())

	// go-spiffe registered the Workload API messages (they have no proto
	// package, so their full names are bare) and start-up did not panic.
	_ = gsworkloadapi.WithAddr("unix:///tmp/agent.sock")
	_, err := protoregistry.GlobalTypes.FindMessageByName("X509SVIDRequest")
	require.NoError(t, err, "go-spiffe's Workload API messages must be registered")

	ours := spiffeid.RequireFromString("spiffe://example.org/workload")
	theirs := gsid.RequireFromString("spiffe://example.org/workload")
	assert.Equal(t, theirs.String(), ours.String())

	td := ours.TrustDomain()
	assert.True(t, x509bundle.New(td).Empty())
	assert.True(t, jwtbundle.New(td).Empty())
	assert.True(t, spiffebundle.New(td).Empty())
	assert.True(t, witbundle.New(td).Empty())
	assert.True(t, gsx509bundle.New(theirs.TrustDomain()).Empty())
	assert.Equal(t, "ES256", ca.ES256)
}
