package unix

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/spiffekit/spiffekit/attest"
)

// SelectorType is the type of every selector the attestor produces.
const SelectorType = "unix"

// Defaults for the zero values of [Config] fields.
const (
	DefaultProcRoot          = "/proc"
	DefaultMaxExecutableSize = 256 << 20 // 256 MiB
	DefaultNameCacheTTL      = time.Minute
	DefaultHashCacheSize     = 1024
)

// Config configures [New]. The zero value is a working configuration.
type Config struct {
	// ProcRoot is where the proc filesystem is mounted. Empty means
	// [DefaultProcRoot]. Set it when the attestor runs in a container that
	// sees the host's proc filesystem elsewhere. It must show the same
	// processes, with the same PIDs, as the one [Peer] reads at
	// DefaultProcRoot when the connection is accepted.
	ProcRoot string

	// SkipExecutable, when true, leaves out the path and sha256 selectors.
	// Reading another user's /proc/<pid>/exe takes ptrace access (root or
	// CAP_SYS_PTRACE); with SkipExecutable the attestor needs neither.
	SkipExecutable bool

	// SkipHash, when true, leaves out the sha256 selector. Without it, the
	// executable is hashed only when the [attest.Workload] says a sha256
	// selector is needed (Workload.Needed; package issuer asks its
	// registry), and each file is hashed once while it stays the same
	// file (see HashCacheSize). SHA-256 runs at roughly 0.5 to 2 GB/s per
	// core depending on the CPU, so the first attestation of a 50 MB
	// binary costs 25 to 100 ms of CPU, plus the read if the file is not
	// in the page cache.
	SkipHash bool

	// HashCacheSize bounds how many executables' hashes are remembered,
	// the least recently used forgotten first. A hash is remembered under
	// the file's device, inode, size, modification and change times, read
	// from the descriptor it was hashed through: writing the file, or
	// putting another file at its path, changes one of them, and the file
	// is hashed again. A file changed within the second before it was
	// read is not remembered (file systems stamp changes with a coarse
	// clock). On file systems whose files can change without these
	// changing (some network and FUSE file systems), disable the cache.
	// Zero means [DefaultHashCacheSize]; negative disables the cache.
	HashCacheSize int

	// MaxExecutableSize bounds the bytes hashed. Attesting a process whose
	// executable is larger fails (it is not silently left unhashed). Zero
	// means [DefaultMaxExecutableSize]; it must not be negative.
	MaxExecutableSize int64

	// NameCacheTTL is how long user and group names (and the absence of
	// one) are remembered. Zero means [DefaultNameCacheTTL]; negative
	// disables the cache.
	NameCacheTTL time.Duration

	// Now returns the current time for the name and hash caches. Nil
	// means time.Now.
	Now func() time.Time

	// Logger receives a warning for each selector the attestor leaves out
	// because it would not be a valid [attest.Selector] (see [Attestor]).
	// Nil discards them.
	Logger *slog.Logger
}

// Attestor is the unix workload attestor: it reads what the Linux kernel
// knows of a process from the proc filesystem. It is safe for concurrent use.
//
// For a process it returns the selectors (all of type "unix"):
//
//	uid:<n>                   effective user ID
//	gid:<n>                   effective group ID
//	user:<name>               name of uid, if it has one
//	group:<name>              name of gid, if it has one
//	supplementary_gid:<n>     one per supplementary group
//	supplementary_group:<name> one per supplementary group with a name
//	path:<path>               executable path (unless Config.SkipExecutable, or the
//	                          Workload says no entry needs it)
//	sha256:<hex>              SHA-256 of the executable (unless SkipExecutable or SkipHash,
//	                          or the Workload says no entry needs it)
//
// A property that would not make a valid [attest.Selector] is left out, with
// a warning to Config.Logger, and the others are returned: Linux allows any
// byte but NUL in a file name (a newline, invalid UTF-8) and almost any in a
// user or group name, but selectors are UTF-8 text without control
// characters, so that registries keep them unchanged. Leaving one out only
// narrows what the workload matches (an entry applies when all its
// selectors are present), so such a workload can still be registered by its
// other selectors, for example its sha256. An error would instead deny the
// workload every identity, and an escaped form would make a selector that
// administrators must learn to write and that could collide with a real path.
//
// The IDs are the effective ones, which is what the kernel reports for a
// socket peer (SO_PEERCRED). Names are resolved in the attestor's own user
// database (/etc/passwd, /etc/group or NSS), not the workload's; in a
// container they may differ. The path is the kernel's view of
// /proc/<pid>/exe, with " (deleted)" appended when the file was removed, and
// relative to the attestor's root directory; the hash is taken from the file
// the process runs, even when that file was since replaced on disk.
//
// # Which process is described
//
// [Attestor.Attest] opens /proc/<pid> once and reads everything through that
// directory handle, which stays bound to the process that held the PID when
// it was opened: if that process exits, reads through it fail instead of
// reaching a new process with the same PID. Before and after everything
// else it checks, through the Workload's pidfd when it has one, else by
// reading the start time, that the process is the same and has not
// exited, and rejects it otherwise. The path and the hash are read from
// one open descriptor of the executable, whose identity (device and inode)
// is checked again after every read, so they describe the one file the
// process executed throughout; when no entry could select either, the
// executable is only identified, and that identity checked the same way. So all selectors describe one process, alive from the first
// read to the last, and its executable. That this process is the one that
// connected is guaranteed as far as the [attest.Workload] allows:
//
//   - With a PIDFD taken from the socket (SO_PEERPIDFD, [Peer] on Linux
//     6.5+, or [PeerPIDFD]): fully. The pidfd is bound to the connecting
//     process, and the attestor checks that it refers to PID and that the
//     process is still alive after all reads, so the PID cannot have been
//     reused.
//   - With a PIDFD opened after accept ([OpenPIDFD], which Peer falls back
//     to) or a recorded StartTime ([Attestor.StartTime]): from that moment
//     on. Before it, the connecting process could have exited and its PID
//     been reused, which takes the kernel cycling through the whole PID
//     space.
//   - With neither: from the first read on, with the same window before it.
//
// The executable is the one of the connection as far as the Workload
// allows too: with an Executable recorded at accept ([Peer]), a process
// that has since executed another file is rejected; without one, the
// executable is whatever the process runs when it is attested. See the
// package documentation for what no record can tell.
//
// Credentials narrow every window: when set, a process whose effective IDs
// differ from the ones the kernel gave for the connection is rejected, so a
// process reusing the PID must also run as the same user and group. Every
// rejection wraps [attest.ErrRejected].
type Attestor struct {
	procRoot          string
	skipExecutable    bool
	skipHash          bool
	maxExecutableSize int64
	names             *nameCache
	hashes            *hashCache
	log               *slog.Logger
}

var _ attest.WorkloadAttestor = (*Attestor)(nil)

// New returns an attestor configured by cfg. It fails with [ErrNotSupported]
// on platforms other than Linux, and if cfg is invalid.
func New(cfg Config) (*Attestor, error) {
	if !supported {
		return nil, ErrNotSupported
	}
	if cfg.MaxExecutableSize < 0 {
		return nil, errors.New("unix: MaxExecutableSize must not be negative")
	}
	a := &Attestor{
		procRoot:          cfg.ProcRoot,
		skipExecutable:    cfg.SkipExecutable,
		skipHash:          cfg.SkipHash,
		maxExecutableSize: cfg.MaxExecutableSize,
		log:               cfg.Logger,
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.procRoot == "" {
		a.procRoot = DefaultProcRoot
	}
	if a.maxExecutableSize == 0 {
		a.maxExecutableSize = DefaultMaxExecutableSize
	}
	ttl, now := cfg.NameCacheTTL, cfg.Now
	if ttl == 0 {
		ttl = DefaultNameCacheTTL
	}
	if now == nil {
		now = time.Now
	}
	a.names = newNameCache(ttl, now)
	size := cfg.HashCacheSize
	if size == 0 {
		size = DefaultHashCacheSize
	}
	a.hashes = newHashCache(size, now)
	return a, nil
}

// Attest returns the selectors of the process w describes. See [Attestor]
// for what they are and which process they describe. Errors wrap
// [attest.ErrRejected] when the process exited, was replaced or does not
// match w; other errors (permissions, malformed /proc content, ctx done) are
// returned as they are.
func (a *Attestor) Attest(ctx context.Context, w attest.Workload) (attest.Selectors, error) {
	if w.PID <= 0 {
		return attest.Selectors{}, errors.New("unix: PID " + strconv.Itoa(w.PID) + " is not a process")
	}
	if err := ctx.Err(); err != nil {
		return attest.Selectors{}, err
	}
	return a.attest(ctx, w)
}

// facts is what the attestor learned about a process.
type facts struct {
	status procStatus
	path   string // "" when not read
	sha256 string // hex; "" when not read
}

// selectors turns the facts of process pid into selectors, resolving names
// and leaving out, with a warning, those that would be invalid.
func (a *Attestor) selectors(pid int, f facts) (attest.Selectors, error) {
	id := func(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
	var sels []attest.Selector
	add := func(kind, value string) {
		sel := attest.Selector{Type: SelectorType, Value: kind + ":" + value}
		if err := sel.Validate(); err != nil {
			a.log.Warn("unix: left out a selector that would be invalid", "pid", pid, "kind", kind, "error", err)
			return
		}
		sels = append(sels, sel)
	}
	add("uid", id(f.status.uid))
	add("gid", id(f.status.gid))
	name, err := a.names.user(f.status.uid)
	if err != nil {
		return attest.Selectors{}, err
	}
	if name != "" {
		add("user", name)
	}
	if name, err = a.names.group(f.status.gid); err != nil {
		return attest.Selectors{}, err
	}
	if name != "" {
		add("group", name)
	}
	for _, g := range f.status.groups {
		add("supplementary_gid", id(g))
		if name, err = a.names.group(g); err != nil {
			return attest.Selectors{}, err
		}
		if name != "" {
			add("supplementary_group", name)
		}
	}
	if f.path != "" {
		add("path", f.path)
	}
	if f.sha256 != "" {
		add("sha256", f.sha256)
	}
	return attest.NewSelectors(sels...), nil
}
