package pbtest_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/internal/testing/pbtest"
	"github.com/spiffekit/spiffekit/internal/workloadpb"
)

// The helpers on messages with every kind of field they support: strings,
// bytes, bools, integers, maps, repeated and nested messages, a Struct.
func TestHelpers(t *testing.T) {
	pbtest.WireContract(t, map[proto.Message][]string{
		&nodepb.EntryRevision{}:               {"id=1 string", "revision=2 int64"},
		&workloadpb.ValidateJWTSVIDResponse{}: {"spiffe_id=1 string", "claims=2 message google.protobuf.Struct"},
		&nodepb.SyncRequest{}:                 {"known=1 repeated message EntryRevision"},
		&workloadpb.X509BundlesResponse{}:     {"crl=1 repeated bytes", "bundles=2 map<string,bytes>"},
	}, "spiffekit.node.v1.")
	pbtest.GettersAndRoundTrip(t, []proto.Message{
		&nodepb.Entry{}, &nodepb.SyncResponse{}, &workloadpb.ValidateJWTSVIDResponse{},
	})
}
