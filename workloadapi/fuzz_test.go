package workloadapi

import (
	"strings"

	"github.com/spiffekit/spiffekit/internal/workloadpb"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"google.golang.org/protobuf/proto"
	"testing"

	"github.com/stretchr/testify/require"
)

func FuzzTargetFromAddress(f *testing.F) {
	f.Add("unix:///run/spire/agent.sock")
	f.Fuzz(func(t *testing.T, addr string) {
		target, err := TargetFromAddress(addr)
		if err != nil {
			return // rejected input is fine; a panic is not
		}
		// Round trip: the target, turned back into an address, is accepted
		// and gives the same target.
		again := "tcp://" + target
		if strings.HasPrefix(target, "unix://") {
			again = target
		}
		target2, err := TargetFromAddress(again)
		require.NoError(t, err)
		require.Equal(t, target, target2)
	})
}

func FuzzParseX509SVIDResponse(f *testing.F) {
	fx := newFixture(f)
	resp := fx.x509Response("/a", "/b")
	resp.FederatedBundles = map[string][]byte{"spiffe://other.test": fx.ca.Root().Raw}
	seed, err := proto.Marshal(resp)
	require.NoError(f, err)
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		var msg workloadpb.X509SVIDResponse
		if proto.Unmarshal(b, &msg) != nil {
			return
		}
		x509Ctx, err := parseX509Context(&msg)
		if err != nil {
			return // rejected input is fine; a panic is not
		}
		// Round trip: every accepted SVID marshals and parses again.
		require.NotEmpty(t, x509Ctx.SVIDs)
		for _, svid := range x509Ctx.SVIDs {
			certs, key, err := svid.MarshalRaw()
			require.NoError(t, err)
			again, err := x509svid.ParseRaw(certs, key)
			require.NoError(t, err)
			require.Equal(t, svid.ID, again.ID)
		}
	})
}
