//go:build !windows

package nested_test

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/server"
)

// BenchmarkMintX509CA measures one intermediate CA signed by a real
// upstream server in process, over the node API's mutual TLS on loopback,
// on a connection of its own (a TLS handshake each): the downstream entry
// read from the upstream server's store (memstore), the signature (ECDSA
// P-256) and the checks of the answer.
func BenchmarkMintX509CA(b *testing.B) {
	root := startLevel(b, nil, server.Config{})
	up := downstreamOf(b, root, "/regional")
	req := newCSR(b, td.IDString())
	_, err := up.MintX509CA(b.Context(), req)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := up.MintX509CA(b.Context(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRotateDistributed measures a nested server's CA from the
// moment it is asked for to the moment a workload of the nested server's
// agent holds an X509-SVID it signed: the new CA prepared (its key made,
// signed by the upstream server through the node API) and activated, the
// agent told, its SVIDs re-signed and pushed over the Workload API.
func BenchmarkRotateDistributed(b *testing.B) {
	root := startLevel(b, nil, server.Config{})
	regional := startLevel(b, downstreamOf(b, root, "/regional"), server.Config{})
	id := regional.createEntry(b, "/workload", false).SPIFFEID
	src := regional.source(b, id)
	b.ResetTimer()
	for b.Loop() {
		_, err := regional.server.CA().PrepareX509CA(b.Context())
		require.NoError(b, err)
		require.NoError(b, regional.server.CA().ActivateX509CA(b.Context()))
		want := regional.server.CA().X509Authority().Certificate().Raw
		for {
			svid, err := src.GetX509SVID()
			require.NoError(b, err)
			if len(svid.Certificates) > 1 && bytes.Equal(svid.Certificates[1].Raw, want) {
				break
			}
			time.Sleep(200 * time.Microsecond)
		}
		// The CA before is dropped, outside the measure: a CA keeps at
		// most 32 of them.
		b.StopTimer()
		active := hex.EncodeToString(regional.server.CA().X509Authority().Certificate().SubjectKeyId)
		for _, info := range regional.server.CA().X509CAs() {
			if info.ID != active {
				require.NoError(b, regional.server.CA().RevokeX509CA(b.Context(), info.ID))
			}
		}
		b.StartTimer()
	}
}
