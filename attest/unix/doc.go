// Package unix is the unix workload attestor: it describes a Linux process
// by its user and group IDs and names, its executable's path and the SHA-256
// of that executable, read from the proc filesystem. See [Attestor] for the
// selectors and for exactly which process they are guaranteed to describe.
//
// On platforms other than Linux, [New] fails with [ErrNotSupported].
//
// # Usage
//
// A Workload API server attests the process that connected. The strongest
// binding takes a pidfd from the socket as soon as the connection is
// accepted:
//
//	a, err := unix.New(unix.Config{})
//	...
//	pidfd, err := unix.PeerPIDFD(conn) // Linux 6.5+; else unix.OpenPIDFD(pid)
//	if err == nil {
//		defer pidfd.Close()
//	}
//	sels, err := a.Attest(ctx, attest.Workload{
//		PID:         caller.PID,
//		Credentials: &attest.Credentials{UID: caller.UID, GID: caller.GID},
//		PIDFD:       pidfd, // nil is allowed
//	})
//	if errors.Is(err, attest.ErrRejected) {
//		// not the process that connected: issue nothing
//	}
package unix
