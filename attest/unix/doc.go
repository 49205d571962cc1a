// Package unix is the unix workload attestor: it describes a Linux process
// by its user and group IDs and names, its executable's path and the SHA-256
// of that executable, read from the proc filesystem. See [Attestor] for the
// selectors and for exactly which process they are guaranteed to describe.
//
// On platforms other than Linux, [New] fails with [ErrNotSupported].
//
// # Usage
//
// A Workload API server records the process at the other end of each
// connection as soon as it accepts it, and attests that record:
//
//	a, err := unix.New(unix.Config{})
//	...
//	w, err := unix.Peer(conn) // at accept: SO_PEERCRED, a pidfd, start time, executable
//	if err != nil { ... }     // wraps attest.ErrRejected if the process is already gone
//	defer w.PIDFD.Close()     // when the connection closes
//	...
//	sels, err := a.Attest(ctx, w) // on each request
//	if errors.Is(err, attest.ErrRejected) {
//		// not the process that connected, or it executes another file
//		// since: issue nothing
//	}
//
// workloadapi/endpoint does the first half for every connection, and
// hands the record to its Handler (endpoint.Caller.Workload).
//
// # Cost
//
// An attestation reads a few small files of /proc/<pid>. With a pidfd
// (which [Peer] records), the pidfd alone shows that the process is the
// one that connected and still lives, checked before and after the reads
// (its PID through PIDFD_GET_INFO on Linux 6.13 or later, else fdinfo),
// and on Linux 6.13 or later it also tells the effective user and group
// IDs: then /proc/<pid>/status is read only when an entry could select a
// supplementary group (Workload.Needed), and the attestation reads no
// more than the executable's identity and path. The SHA-256 of
// the executable is the one costly selector: it is computed only when the
// [attest.Workload] says an entry could need it (Workload.Needed, which
// package issuer answers from its registry index), and each file is
// hashed once and remembered by its device, inode, size, modification and
// change times, read from the very descriptor it is hashed through, in a
// bounded cache (Config.HashCacheSize). Any write to the file, or another
// file at its path, changes that key; a process that executes another
// file gets that file's hash. A file changed within the last second is
// hashed every time, until it has settled.
//
// # What a path or sha256 selector promises
//
// A unix:path or unix:sha256 selector says which file the process that
// connected was executing when the server accepted its connection, and
// still executes when it is attested; the kernel's pidfd (or, on kernels
// before 5.3, the recorded start time) ties that process to the
// connection, so a process that took over its PID is refused. The
// selectors do not say which code speaks on the connection:
//
//   - A connected socket can be handed to another process (SCM_RIGHTS, or
//     inherited across fork), which then speaks for the process that
//     connected as long as that process lives and executes the same
//     file. Only code that an entry trusts can do so once the connection
//     is accepted, since the trusted process itself must hand it on.
//   - Between connect and accept, the connecting process can execute
//     another file and nothing records it: the kernel keeps the process
//     that connected, not what it ran then. A process that connects, hands
//     the socket on and executes a trusted binary before the server
//     accepts gets that binary's identity for the process it handed the
//     socket to. The window is short, but the attacker chooses its timing.
//     An exec after accept is refused ([attest.Workload.Executable]).
//
// SPIRE's unix attestor has the same limits. Where they matter, select
// on what such a process cannot change: its user (unix:uid), a dedicated
// user per workload, or a container attestor's properties. Path and hash
// selectors are then a second check against a binary swapped on disk.
package unix
