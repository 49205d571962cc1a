package nodeserver_test

import (
	"crypto/tls"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
)

// tlsDial handshakes with the server as a client without a certificate
// (the server asks for one but requires none).
func tlsDial(addr string) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr,
		&tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}) //nolint:gosec // the handshake is under test, not the server's identity
	if err != nil {
		return err
	}
	return conn.Close()
}

func TestHandshakeIdleConnectionsHoldNoTurn(t *testing.T) {
	// One turn; connections that send nothing, or half a ClientHello,
	// wait on the network, not in a turn: an agent still attests.
	e := newEnv(t, func(c *nodeserver.Config) { c.MaxHandshakes = 1 })
	for i := range 4 {
		conn, err := net.Dial("tcp", e.addr)
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		if i%2 == 1 {
			// A handshake record's header and the first bytes of a
			// ClientHello, then silence.
			_, err = conn.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01})
			require.NoError(t, err)
		}
	}
	a := e.attest(t, "node-1")
	require.NotNil(t, a.svid)
	require.NoError(t, tlsDial(e.addr))
}

// Property: a connection whose handshake's turn does not come within
// the wait is closed, counted in Stats and logged, each at Debug and the
// first at Warn, with the count; later ones within the minute make no
// Warn line of their own. A connection whose turn comes is not counted.
func TestHandshakeWaitBounded(t *testing.T) {
	var logs logtest.Buffer
	e := newEnv(t, func(c *nodeserver.Config) {
		c.MaxHandshakes = 1
		c.HandshakeWait = 50 * time.Millisecond
		c.Logger = logs.Logger()
	})
	require.Zero(t, e.srv.Stats().HandshakesRefused)
	release, err := e.srv.HoldHandshakeTurn()
	require.NoError(t, err)
	// No turn comes within the wait: the server closes the connection.
	require.Error(t, tlsDial(e.addr))
	assert.Equal(t, uint64(1), e.srv.Stats().HandshakesRefused)
	const warn = `level=WARN msg="too many TLS handshakes at once: closed agents' connections whose handshake waited too long for a turn; the agents retry after their backoff"`
	assert.Contains(t, logs.String(), warn+" count=1 total=1 wait=50ms max_handshakes=1")
	require.Error(t, tlsDial(e.addr))
	assert.Equal(t, uint64(2), e.srv.Stats().HandshakesRefused)
	assert.Equal(t, 2, strings.Count(logs.String(), `level=DEBUG msg="closed an agent's connection: its TLS handshake waited too long for a turn" remote=127.0.0.1:`))
	assert.Equal(t, 1, strings.Count(logs.String(), warn), "one Warn line a minute")
	release()
	require.NoError(t, tlsDial(e.addr))
	assert.Equal(t, uint64(2), e.srv.Stats().HandshakesRefused)
}

func TestHandshakeWaitEndsWhenServeStops(t *testing.T) {
	// A handshake waiting for a turn does not hold up the server's stop,
	// however long the wait; a connection so closed is no refusal.
	var logs logtest.Buffer
	e := newEnv(t, func(c *nodeserver.Config) {
		c.MaxHandshakes = 1
		c.HandshakeWait = time.Hour
		c.Logger = logs.Logger()
	})
	release, err := e.srv.HoldHandshakeTurn()
	require.NoError(t, err)
	defer release()
	dialed := make(chan error, 1)
	go func() { dialed <- tlsDial(e.addr) }()
	// Stop once the handshake waits; the cleanup checks that Serve
	// returned.
	time.Sleep(100 * time.Millisecond)
	e.cancel()
	select {
	case err := <-dialed:
		require.Error(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the waiting handshake was not ended by the stop")
	}
	assert.Zero(t, e.srv.Stats().HandshakesRefused)
	assert.NotContains(t, logs.String(), "waited too long for a turn")
}

// HandshakeAdmission gives the Config's values, or the defaults for its
// zeros.
func TestHandshakeAdmission(t *testing.T) {
	e := newEnv(t, nil)
	maxHandshakes, wait := e.srv.HandshakeAdmission()
	assert.Equal(t, 2*runtime.GOMAXPROCS(0), maxHandshakes)
	assert.Equal(t, nodeserver.DefaultHandshakeWait, wait)

	e = newEnv(t, func(c *nodeserver.Config) { c.MaxHandshakes, c.HandshakeWait = 3, time.Minute })
	maxHandshakes, wait = e.srv.HandshakeAdmission()
	assert.Equal(t, 3, maxHandshakes)
	assert.Equal(t, time.Minute, wait)
}
