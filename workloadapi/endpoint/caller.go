package endpoint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/unix"
)

// Caller is the process at the other end of a Workload API connection, as
// the kernel reports it (WE rule 5: identified out of band, without the
// caller's participation).
//
// On a unix socket on Linux, PID, UID and GID come from SO_PEERCRED: the
// credentials of the process that connected, taken at connect time. A PID
// may be reused once that process exits, and a process may execute
// another file after connecting, so the server also records, as it
// accepts the connection, a pidfd bound to the process, its start time and
// the identity of its executable (see unix.Peer); [Caller.Workload] hands
// them to a workload attestor, which refuses a process that is no longer
// the one that connected or that executes another file since. Over TCP,
// and where the kernel does not report credentials, PID, UID and GID are
// -1 and only Addr is known (WE rule 2: use TCP only where the address
// itself authenticates). On a Windows named pipe ([ListenNamedPipe]), PID
// is the process ID Windows reports, UID and GID are -1.
type Caller struct {
	PID, UID, GID int
	// Addr is the peer's address; on unix sockets it is usually unnamed.
	Addr net.Addr

	// What the server recorded of the process when it accepted the
	// connection; see Workload.
	pidfd     *os.File
	startTime uint64
	exe       *attest.FileID
}

// Workload returns the caller as a workload to attest: its PID and
// credentials, and what the server recorded of its process when it
// accepted the connection (a pidfd bound to the process, its start time,
// the identity of its executable), so that an attestor can tell whether
// the process it inspects is still the one that connected, running the
// same file. The pidfd belongs to the server, which closes it when the
// connection closes: pass the Workload to attestors while the call (or
// its stream) lasts, and never close its PIDFD. A caller without kernel
// credentials gives a Workload with PID -1, which no attestor accepts.
func (c Caller) Workload() attest.Workload {
	w := attest.Workload{PID: c.PID, PIDFD: c.pidfd, StartTime: c.startTime, Executable: c.exe}
	if c.HasCredentials() {
		w.Credentials = &attest.Credentials{UID: c.UID, GID: c.GID}
	}
	return w
}

// HasCredentials reports whether the kernel identified the caller's
// process, that is whether PID, UID and GID are set. On a Windows named
// pipe only the PID is known: HasCredentials is false.
func (c Caller) HasCredentials() bool { return c.PID >= 0 && c.UID >= 0 && c.GID >= 0 }

func addrString(c Caller) string {
	if c.Addr == nil {
		return ""
	}
	return c.Addr.String()
}

// callerInfo is the credentials.AuthInfo attached to every connection by
// peerCreds, read back by callerFromContext.
type callerInfo struct {
	credentials.CommonAuthInfo
	caller Caller
	err    error
}

func (callerInfo) AuthType() string { return "spiffe-workload-endpoint" }

// peerCreds is a plaintext transport (WE rule 4: no TLS) whose handshake
// records who the peer is. It never fails the handshake: a caller that
// cannot be identified gets Unavailable on each RPC instead (E2), which the
// client can report.
type peerCreds struct{}

func (peerCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("endpoint: server-only transport credentials")
}

func (peerCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	info := callerInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}
	info.caller, info.err = identify(conn)
	if info.caller.pidfd != nil {
		// The pidfd lives as long as the connection.
		conn = &pidfdConn{Conn: conn, pidfd: info.caller.pidfd}
	}
	return conn, info, nil
}

// pidfdConn is a connection that closes its caller's pidfd when it closes.
type pidfdConn struct {
	net.Conn
	pidfd *os.File
	once  sync.Once
}

func (c *pidfdConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.pidfd.Close() })
	return err
}

func (peerCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "insecure"}
}

func (c peerCreds) Clone() credentials.TransportCredentials { return c }

func (peerCreds) OverrideServerName(string) error { return nil }

// identify learns the caller behind conn: on unix sockets, the kernel's
// credentials and the server's record of the process (unix.Peer); on a
// Windows named pipe, the process ID Windows reports; the address only on
// anything else. A caller whose process exited before its
// connection was accepted has no identity: whoever holds the connection
// is another process.
func identify(conn net.Conn) (Caller, error) {
	if c, ok, err := identifyOS(conn); ok {
		return c, err
	}
	c := Caller{PID: -1, UID: -1, GID: -1, Addr: conn.RemoteAddr()}
	if conn.LocalAddr() == nil || conn.LocalAddr().Network() != "unix" {
		return c, nil
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return c, fmt.Errorf("%w: %T gives no access to its socket", errUnidentified, conn)
	}
	w, err := unix.Peer(sc)
	if w.Credentials != nil {
		c.PID, c.UID, c.GID = w.PID, w.Credentials.UID, w.Credentials.GID
		c.pidfd, c.startTime, c.exe = w.PIDFD, w.StartTime, w.Executable
	}
	switch {
	case errors.Is(err, attest.ErrRejected):
		return c, fmt.Errorf("endpoint: %w: %w", ErrNoIdentity, err)
	case err != nil:
		return c, fmt.Errorf("%w: %w", errUnidentified, err)
	}
	return c, nil
}

// callerFromContext returns the caller of the RPC whose context is ctx.
func callerFromContext(ctx context.Context) (Caller, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Caller{PID: -1, UID: -1, GID: -1}, fmt.Errorf("%w: no peer", errUnidentified)
	}
	info, ok := p.AuthInfo.(callerInfo)
	if !ok {
		return Caller{PID: -1, UID: -1, GID: -1, Addr: p.Addr}, fmt.Errorf("%w: connection not accepted by this server", errUnidentified)
	}
	return info.caller, info.err
}
