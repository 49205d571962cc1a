package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/internal/cgroups"
	"github.com/spiffekit/spiffekit/attest/unix"
)

// SelectorType is the type of every selector the attestor produces.
const SelectorType = "docker"

// Defaults for the zero values of [Config] fields.
const (
	DefaultSocketPath = "/var/run/docker.sock"
	DefaultTimeout    = 10 * time.Second
)

// maxCgroupSize bounds what is read of a /proc/<pid>/cgroup file: a
// dozen lines of paths of at most a few KiB each.
const maxCgroupSize = 1 << 20

// Config configures [New]. The zero value is a working configuration.
type Config struct {
	// SocketPath is the path of the Docker daemon's API socket. Empty
	// means [DefaultSocketPath]. The attestor connects only when it
	// attests a process in a container.
	SocketPath string

	// AllowedEnv names the environment variables of a container that
	// become docker:env:NAME=value selectors, with the value the container
	// was created with. Empty means none: a container's environment often
	// holds secrets, which have no place in selectors. Names are matched
	// exactly.
	AllowedEnv []string

	// ProcRoot is where the proc filesystem showing the workloads and the
	// daemon's containers is mounted. Empty means unix.DefaultProcRoot.
	ProcRoot string

	// Timeout bounds each request to the daemon. Zero means
	// [DefaultTimeout]; it must not be negative.
	Timeout time.Duration

	// Logger receives a warning for each selector left out because it
	// would not be a valid [attest.Selector], and the daemon's failures.
	// Nil discards them.
	Logger *slog.Logger
}

// Attestor is the docker workload attestor. It is safe for concurrent use,
// holds no connection between attestations and needs no closing.
//
// For a process in a container the daemon runs, it returns (all of type
// "docker"):
//
//	label:<key>:<value>      one per label of the container
//	image_id:<image>         the image as the container was created from it
//	                         (Config.Image: a name such as "web:1.4", or an ID)
//	image_id:sha256:<hex>    the ID of that image
//	env:<NAME>=<value>       one per variable of Config.AllowedEnv the container has
//
// label and image_id are SPIRE's docker selectors, with the same values;
// SPIRE gives docker:env for every variable, this attestor only for those
// allowed. A label or variable that would not make a valid selector (a
// value with a newline) is left out, with a warning, and the others are
// returned.
//
// A process in no container, or in one the daemon does not know (a
// Kubernetes pod's, say), gets no selectors and no error. The container
// is the innermost one its cgroups name (see package attest/internal/cgroups
// for the forms recognised, with cgroup v1 or v2 and the cgroupfs or
// systemd driver). The attestor then reads the cgroups of the container's
// first process, whose PID the daemon reports, and requires the process
// to be in the same cgroup: a container allowed to write its cgroups (a
// privileged one, or one running systemd) could otherwise make a cgroup
// below its own named like another container's, move into it and be
// taken for that container.
//
// The cgroups are read as attest/unix reads a process (see
// unix.ReadProcFile): an error wraps [attest.ErrRejected] when the process
// exited or is not the one the [attest.Workload] recorded, and when its
// cgroups are ambiguous or place it below a container's own cgroup. A
// daemon that cannot be reached, or a container that is not running yet,
// is an error that does not wrap ErrRejected, so that the caller is told
// to retry.
type Attestor struct {
	engine   *engine
	allowed  []string
	procRoot string
	log      *slog.Logger
}

var _ attest.WorkloadAttestor = (*Attestor)(nil)

// New returns an attestor configured by cfg. It starts nothing and does not
// contact the daemon.
func New(cfg Config) (*Attestor, error) {
	if cfg.Timeout < 0 {
		return nil, errors.New("docker: Timeout must not be negative")
	}
	for _, name := range cfg.AllowedEnv {
		if name == "" || strings.ContainsAny(name, "=\x00") {
			return nil, fmt.Errorf("docker: %q is not an environment variable name", name)
		}
	}
	a := &Attestor{
		allowed:  slices.Clone(cfg.AllowedEnv),
		procRoot: cfg.ProcRoot,
		log:      cfg.Logger,
	}
	if a.procRoot == "" {
		a.procRoot = unix.DefaultProcRoot
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	socket, timeout := cfg.SocketPath, cfg.Timeout
	if socket == "" {
		socket = DefaultSocketPath
	}
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	a.engine = newEngine(socket, timeout)
	return a, nil
}

// Attest returns the selectors of the container the process w describes
// runs in. See [Attestor] for what they are, and which errors wrap
// [attest.ErrRejected].
func (a *Attestor) Attest(ctx context.Context, w attest.Workload) (attest.Selectors, error) {
	if w.PID <= 0 {
		return attest.Selectors{}, errors.New("docker: PID " + strconv.Itoa(w.PID) + " is not a process")
	}
	data, err := unix.ReadProcFile(a.procRoot, w, "cgroup", maxCgroupSize)
	if err != nil {
		return attest.Selectors{}, fmt.Errorf("docker: %w", err)
	}
	c, ok, err := cgroups.Parse(data)
	if err != nil {
		return attest.Selectors{}, fmt.Errorf("docker: process %d: %w: %w", w.PID, attest.ErrRejected, err)
	}
	if !ok {
		return attest.Selectors{}, nil
	}
	info, found, err := a.engine.inspect(ctx, c.ID)
	if err != nil {
		return attest.Selectors{}, fmt.Errorf("docker: container %s of process %d: %w", c.ID, w.PID, err)
	}
	if !found {
		a.log.Debug("docker: the daemon does not know the container of the process", "pid", w.PID, "container", c.ID)
		return attest.Selectors{}, nil
	}
	if err := a.checkOwnCgroup(w.PID, c, info); err != nil {
		return attest.Selectors{}, err
	}
	return a.selectors(w.PID, info), nil
}

// checkOwnCgroup checks that the process pid, whose cgroups name c, is in
// the cgroup of the container info describes, where its first process is.
func (a *Attestor) checkOwnCgroup(pid int, c cgroups.Container, info container) error {
	if !info.State.Running || info.State.Pid <= 0 {
		return fmt.Errorf("docker: container %s of process %d is not running", c.ID, pid)
	}
	first := info.State.Pid
	data, err := readBounded(filepath.Join(a.procRoot, strconv.Itoa(first), "cgroup"), maxCgroupSize)
	if err != nil {
		// The container stopped since the daemon answered.
		return fmt.Errorf("docker: container %s of process %d: reading the cgroups of its first process: %w", c.ID, pid, err)
	}
	own, ok, err := cgroups.Parse(data)
	switch {
	case err != nil || !ok || own.ID != c.ID:
		// The first process left the container's cgroups, or its PID was
		// taken by another process after the container stopped.
		return fmt.Errorf("docker: container %s of process %d: its first process (%d) is not in it", c.ID, pid, first)
	case own.Path != c.Path:
		return fmt.Errorf("docker: process %d is in cgroup %s, not in %s where container %s is: %w",
			pid, c.Path, own.Path, c.ID, attest.ErrRejected)
	}
	return nil
}

// selectors turns what the daemon said of a container into selectors,
// leaving out, with a warning, those that would be invalid.
func (a *Attestor) selectors(pid int, info container) attest.Selectors {
	var sels []attest.Selector
	add := func(kind, value string) {
		sel := attest.Selector{Type: SelectorType, Value: kind + ":" + value}
		if err := sel.Validate(); err != nil {
			a.log.Warn("docker: left out a selector that would be invalid", "pid", pid, "container", info.ID, "kind", kind, "error", err)
			return
		}
		sels = append(sels, sel)
	}
	for k, v := range info.Config.Labels {
		add("label", k+":"+v)
	}
	if info.Config.Image != "" {
		add("image_id", info.Config.Image)
	}
	if info.Image != "" {
		add("image_id", info.Image)
	}
	for _, kv := range info.Config.Env {
		if name, _, ok := strings.Cut(kv, "="); ok && slices.Contains(a.allowed, name) {
			add("env", kv)
		}
	}
	return attest.NewSelectors(sels...)
}

// readBounded reads the file at path, failing if it holds more than limit
// bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}
