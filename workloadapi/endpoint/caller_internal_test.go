package endpoint

import (
	"context"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

func TestPeerCredsTransport(t *testing.T) {
	var c credentials.TransportCredentials = peerCreds{}
	_, _, err := c.ClientHandshake(context.Background(), "x", nil)
	require.ErrorContains(t, err, "endpoint: server-only")
	assert.Equal(t, "insecure", c.Info().SecurityProtocol)
	assert.NotNil(t, c.Clone())
	assert.NoError(t, c.OverrideServerName("x"))

	// A connection that is neither unix nor TCP: only the address is known.
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	_, info, err := c.ServerHandshake(a)
	require.NoError(t, err)
	ci := info.(callerInfo)
	assert.Equal(t, "spiffe-workload-endpoint", ci.AuthType())
	require.NoError(t, ci.err)
	assert.False(t, ci.caller.HasCredentials())
	assert.Equal(t, "pipe", addrString(ci.caller))
	assert.Equal(t, "", addrString(Caller{}))
}

func TestCallerFromContext(t *testing.T) {
	_, err := callerFromContext(context.Background())
	require.ErrorIs(t, err, errUnidentified)
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{}})
	c, err := callerFromContext(ctx)
	require.ErrorIs(t, err, errUnidentified)
	assert.Equal(t, -1, c.UID)
}

func TestCodecName(t *testing.T) {
	assert.Equal(t, "proto", newCodec().Name())
}
