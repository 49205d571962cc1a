package unix

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	sys "golang.org/x/sys/unix"

	"github.com/spiffekit/spiffekit/attest"
)

// ReadProcFile returns the contents of the file name of /proc/<pid>, for
// the process w describes, under procRoot ("" means [DefaultProcRoot]).
// It is for attestors that describe a process by other facts than this
// package's, such as its cgroups (attest/docker, attest/k8s), and reads
// the way [Attestor.Attest] does: through a handle bound to the process
// that held the PID when it was opened, checking before and after the read
// that the process is alive, started at w.StartTime (when set) and is the
// one w.PIDFD refers to (when set). So what it returns describes the
// process that connected, as far as w allows (see [Attestor]).
//
// name is a file directly in /proc/<pid> ("cgroup"); a symbolic link is
// not followed. A file longer than limit bytes is an error. Errors wrap
// [attest.ErrRejected] when the process does not exist, exited or is not
// the one w describes.
func ReadProcFile(procRoot string, w attest.Workload, name string, limit int64) ([]byte, error) {
	if w.PID <= 0 {
		return nil, errors.New("unix: PID " + strconv.Itoa(w.PID) + " is not a process")
	}
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return nil, fmt.Errorf("unix: %q is not a file name", name)
	}
	if procRoot == "" {
		procRoot = DefaultProcRoot
	}
	dir, err := openProcDir(procRoot, w.PID)
	if err != nil {
		return nil, err
	}
	defer sys.Close(dir)
	data, err := readBound(dir, w, name, limit)
	if err != nil {
		if st, serr := readStat(dir); errors.Is(serr, sys.ENOENT) || errors.Is(serr, sys.ESRCH) || serr == nil && st.exited() {
			if !errors.Is(err, attest.ErrRejected) {
				return nil, rejected(w.PID, "exited while it was read", err)
			}
		}
		return nil, err
	}
	return data, nil
}

// readBound reads name under dir, checking before and after that dir is
// the live process w describes.
func readBound(dir int, w attest.Workload, name string, limit int64) ([]byte, error) {
	if err := checkPIDFD(w); err != nil {
		return nil, err
	}
	before, err := readStat(dir)
	if err != nil {
		return nil, err
	}
	if before.exited() {
		return nil, rejected(w.PID, "has exited", nil)
	}
	if w.StartTime != 0 && before.startTime != w.StartTime {
		return nil, rejected(w.PID, fmt.Sprintf("started at %d, not at the recorded %d: the PID was reused", before.startTime, w.StartTime), nil)
	}
	data, err := readFile(dir, name, limit)
	if err != nil {
		return nil, err
	}
	after, err := readStat(dir)
	if err != nil {
		return nil, err
	}
	if after.exited() {
		return nil, rejected(w.PID, "exited while it was read", nil)
	}
	if after.startTime != before.startTime {
		return nil, rejected(w.PID, "was replaced while it was read", nil)
	}
	if err := checkPIDFD(w); err != nil {
		return nil, err
	}
	return data, nil
}
