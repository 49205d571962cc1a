package nodeapi_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/internal/wire"
)

// FuzzUpdate feeds the client's conversion of entry stream messages with
// arbitrary server bytes: it must never panic, and every entry it accepts
// survives a round trip through the wire form.
func FuzzUpdate(f *testing.F) {
	seed, err := proto.Marshal(&nodepb.SyncResponse{Upserts: []*nodepb.Entry{validPBEntry()}, DeletedIds: []string{"fedcba9876543210fedcba9876543210"}})
	require.NoError(f, err)
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		var resp nodepb.SyncResponse
		if proto.Unmarshal(data, &resp) != nil {
			return
		}
		u, err := nodeapi.ParseUpdate(td, &resp)
		if err != nil {
			return // refused input is fine; a panic is not
		}
		for _, e := range u.Upserts {
			again, err := wire.EntryFromPB(wire.EntryToPB(e))
			require.NoError(t, err)
			require.Equal(t, e, again)
		}
		for _, b := range u.FederatedBundles {
			require.NotEqual(t, td, b.TrustDomain(), "the own trust domain never comes through federation")
		}
	})
}
