package nodeserver_test

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// TestSilentAttestationIsCutOff: a client that starts attestation and then
// never answers the challenge does not hold the server's handler beyond
// AttestTimeout.
func TestSilentAttestationIsCutOff(t *testing.T) {
	e := newEnv(t, func(c *nodeserver.Config) { c.AttestTimeout = 300 * time.Millisecond })
	cc, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})))
	require.NoError(t, err)
	defer cc.Close()
	csr, err := nodeapi.NewCSR(newKey(t), spiffeid.ID{})
	require.NoError(t, err)

	for _, answerFirst := range []bool{false, true} {
		stream, err := nodepb.NewNodeClient(cc).Attest(t.Context())
		require.NoError(t, err)
		if answerFirst {
			// Start, get the challenge, then go silent.
			require.NoError(t, stream.Send(&nodepb.AttestRequest{AttestorType: "echo", Payload: []byte("node1"), Csr: csr}))
			resp, err := stream.Recv()
			require.NoError(t, err)
			require.NotEmpty(t, resp.Challenge)
		}
		// Never send (another message).
		_, err = stream.Recv()
		assert.Equal(t, codes.DeadlineExceeded, status.Code(err), "%v", err)
	}
}
