package attest

import (
	"context"
	"os"
)

// A WorkloadAttestor derives the selectors of a workload process. It must
// describe the process that connected, not a later process that happens to
// hold the same PID; when it cannot be sure, it returns an error wrapping
// [ErrRejected].
//
// Implementations are safe for concurrent use.
type WorkloadAttestor interface {
	Attest(ctx context.Context, w Workload) (Selectors, error)
}

// Workload is a process to attest, as the Workload API endpoint saw it when
// the process connected. Only PID is required; every other field, when set,
// lets an attestor check that the process it inspects is the one that
// connected.
type Workload struct {
	// PID is the process ID the kernel reported for the connection's peer
	// (SO_PEERCRED). It must be positive.
	PID int

	// Credentials, when not nil, are the effective user and group IDs the
	// kernel reported for the peer at connect time. An attestor that reads
	// IDs from elsewhere rejects the workload if they differ. Nil means
	// unknown.
	Credentials *Credentials

	// PIDFD, when not nil, is a Linux pidfd that refers to the peer process,
	// opened when the connection was accepted: best from the socket itself
	// (SO_PEERPIDFD, see unix.PeerPIDFD), otherwise with pidfd_open right
	// after accept (unix.OpenPIDFD). Attestors use it to prove the process is
	// still alive, and so that its PID was not reused, while they read. They
	// do not close it; the caller owns it.
	PIDFD *os.File

	// StartTime, when not zero, is the process start time recorded when the
	// connection was accepted, in the units of field 22 of Linux's
	// /proc/<pid>/stat (clock ticks since boot; see unix.StartTime). A process
	// now at PID with another start time is a different process, and is
	// rejected.
	StartTime uint64

	// Executable, when not nil, identifies the file the process executed
	// when the connection was accepted (see unix.Peer). A process that has
	// executed another file since then is not described by what it runs
	// now: an attestor that describes the executable (by path or hash)
	// rejects it. This stops a process from connecting, handing the
	// connection to another process and then executing a binary an entry
	// trusts. A zero FileID records that the executable could not be
	// identified then (the process was exiting, or the server may not
	// inspect it); such an attestor rejects the workload as well, rather
	// than describe an executable it cannot tie to the connection.
	Executable *FileID

	// Needed, when not nil, reports whether a selector of type typ and
	// kind kind (see [Selector.Kind]) could matter: whether some
	// registration entry has one. An attestor may then skip the work
	// whose only product is selectors nobody needs (attest/unix hashes
	// the executable only if Needed("unix", "sha256")); it may still
	// return them. Nil means every selector may be needed. A server that
	// keeps a workload's selectors while its entries change (a Workload
	// API stream) must attest it again once a kind it was told is not
	// needed becomes needed; package issuer does. It may be called
	// concurrently.
	Needed func(typ, kind string) bool
}

// FileID identifies a file on one machine: the device of its file system
// and its inode number, as stat(2) reports them. Two names with the same
// FileID are the same file; a file replaced on disk (written anew and
// renamed over the old name) has another FileID. The zero value
// identifies no file.
type FileID struct {
	Dev, Ino uint64
}

// IsZero reports whether id identifies no file.
func (id FileID) IsZero() bool { return id == FileID{} }

// Credentials are the user and group IDs of a socket peer as the kernel
// reports them.
type Credentials struct {
	UID, GID int
}
