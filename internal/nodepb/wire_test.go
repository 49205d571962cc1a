package nodepb

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/spiffekit/spiffekit/internal/testing/pbtest"
)

// wireTable pins every field of the node protocol: an agent and a server
// built from different versions must keep understanding each other, so a
// field is never renumbered or retyped, only added.
var wireTable = map[proto.Message][]string{
	&AttestRequest{}:         {"attestor_type=1 string", "payload=2 bytes", "csr=3 bytes", "challenge_response=4 bytes"},
	&AttestResponse{}:        {"challenge=1 bytes", "result=2 message AgentSVID"},
	&AgentSVID{}:             {"spiffe_id=1 string", "cert_chain=2 repeated bytes", "bundle=3 bytes"},
	&RenewAgentRequest{}:     {"csr=1 bytes"},
	&RenewAgentResponse{}:    {"svid=1 message AgentSVID"},
	&SyncRequest{}:           {"known=1 repeated message EntryRevision"},
	&EntryRevision{}:         {"id=1 string", "revision=2 int64"},
	&SyncResponse{}:          {"upserts=1 repeated message Entry", "deleted_ids=2 repeated string", "bundle=3 bytes", "federated_bundles=4 map<string,bytes>", "federated_bundles_set=5 bool", "tainted_x509_cas=6 repeated bytes", "active_x509_ca=7 bytes", "tainted_jwt_key_ids=8 repeated string", "tainted_wit_key_ids=9 repeated string"},
	&Selector{}:              {"type=1 string", "value=2 string"},
	&Entry{}:                 {"id=1 string", "spiffe_id=2 string", "parent_id=3 string", "selectors=4 repeated message Selector", "x509_svid_ttl_seconds=5 int64", "jwt_svid_ttl_seconds=6 int64", "dns_names=7 repeated string", "federates_with=8 repeated string", "hint=11 string", "revision=12 int64", "created_at_unix_micro=13 int64", "updated_at_unix_micro=14 int64", "expires_at_unix=15 int64"},
	&SignX509SVIDsRequest{}:  {"requests=1 repeated message X509SVIDRequest"},
	&X509SVIDRequest{}:       {"entry_id=1 string", "csr=2 bytes"},
	&SignX509SVIDsResponse{}: {"results=1 repeated message X509SVIDResult"},
	&X509SVIDResult{}:        {"cert_chain=1 repeated bytes", "error=2 string"},
	&SignJWTSVIDRequest{}:    {"entry_id=1 string", "audience=2 repeated string"},
	&SignJWTSVIDResponse{}:   {"token=1 string"},
	&SignWITSVIDRequest{}:    {"entry_id=1 string", "public_key=2 bytes", "key_algorithm=3 string"},
	&SignWITSVIDResponse{}:   {"token=1 string"},
}

func TestWireContract(t *testing.T) {
	pbtest.WireContract(t, wireTable, "spiffekit.node.v1.")
}

func TestGettersAndRoundTrip(t *testing.T) {
	msgs := make([]proto.Message, 0, len(wireTable))
	for m := range wireTable {
		msgs = append(msgs, m)
	}
	pbtest.GettersAndRoundTrip(t, msgs)
}
