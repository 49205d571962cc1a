package endpoint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Caller is the process at the other end of a Workload API connection, as
// the kernel reports it (WE rule 5: identified out of band, without the
// caller's participation).
//
// On a unix socket on Linux, PID, UID and GID come from SO_PEERCRED: the
// credentials of the process that connected, taken at connect time. A PID
// may be reused once that process exits, so a Handler that looks a process
// up by PID should check it is still the same process (for example by its
// start time) before trusting what it finds. Over TCP, and where the kernel
// does not report credentials, PID, UID and GID are -1 and only Addr is
// known (WE rule 2: use TCP only where the address itself authenticates).
type Caller struct {
	PID, UID, GID int
	// Addr is the peer's address; on unix sockets it is usually unnamed.
	Addr net.Addr
}

// HasCredentials reports whether the kernel identified the caller's
// process, that is whether PID, UID and GID are set.
func (c Caller) HasCredentials() bool { return c.PID >= 0 }

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
	return conn, info, nil
}

func (peerCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "insecure"}
}

func (c peerCreds) Clone() credentials.TransportCredentials { return c }

func (peerCreds) OverrideServerName(string) error { return nil }

// identify learns the caller behind conn: kernel credentials on unix
// sockets, the address only on anything else.
func identify(conn net.Conn) (Caller, error) {
	c := Caller{PID: -1, UID: -1, GID: -1, Addr: conn.RemoteAddr()}
	if conn.LocalAddr() == nil || conn.LocalAddr().Network() != "unix" {
		return c, nil
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return c, fmt.Errorf("%w: %T gives no access to its socket", errUnidentified, conn)
	}
	pid, uid, gid, err := peerCredentials(sc)
	if err != nil {
		return c, fmt.Errorf("%w: %w", errUnidentified, err)
	}
	c.PID, c.UID, c.GID = pid, uid, gid
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
