package workloadpb

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/spiffekit/spiffekit/internal/testing/pbtest"
)

// wireTable is section B of shared/spec/workload-api.md: every message with
// every field's name, number and type. A change to spiffekit_workload.proto that breaks
// wire compatibility fails here.
var wireTable = map[proto.Message][]string{
	&X509SVIDRequest{}:         nil,
	&X509SVIDResponse{}:        {"svids=1 repeated message X509SVID", "crl=2 repeated bytes", "federated_bundles=3 map<string,bytes>"},
	&X509SVID{}:                {"spiffe_id=1 string", "x509_svid=2 bytes", "x509_svid_key=3 bytes", "bundle=4 bytes", "hint=5 string"},
	&X509BundlesRequest{}:      nil,
	&X509BundlesResponse{}:     {"crl=1 repeated bytes", "bundles=2 map<string,bytes>"},
	&JWTSVIDRequest{}:          {"audience=1 repeated string", "spiffe_id=2 string"},
	&JWTSVIDResponse{}:         {"svids=1 repeated message JWTSVID"},
	&JWTSVID{}:                 {"spiffe_id=1 string", "svid=2 string", "hint=3 string"},
	&JWTBundlesRequest{}:       nil,
	&JWTBundlesResponse{}:      {"bundles=1 map<string,bytes>"},
	&ValidateJWTSVIDRequest{}:  {"audience=1 string", "svid=2 string"},
	&ValidateJWTSVIDResponse{}: {"spiffe_id=1 string", "claims=2 message google.protobuf.Struct"},
	&WITSVIDRequest{}:          {"spiffe_id=1 string"},
	&WITSVIDResponse{}:         {"svids=1 repeated message WITSVID"},
	&WITSVID{}:                 {"spiffe_id=1 string", "wit_svid=2 string", "wit_svid_key=3 string", "hint=4 string"},
	&WITBundlesRequest{}:       nil,
	&WITBundlesResponse{}:      {"bundles=1 map<string,string>"},
}

func TestWireContract(t *testing.T) {
	pbtest.WireContract(t, wireTable, "spiffekit.internal.workload.")
}

// TestGettersAndRoundTrip checks the generated getters and the wire round
// trip of every message.
func TestGettersAndRoundTrip(t *testing.T) {
	msgs := make([]proto.Message, 0, len(wireTable))
	for m := range wireTable {
		msgs = append(msgs, m)
	}
	pbtest.GettersAndRoundTrip(t, msgs)
}
