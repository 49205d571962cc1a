// Package cgrouptest moves test processes into cgroups of the test's
// choosing, in every hierarchy at once, to stage what a process that can
// write its cgroups could do: make a cgroup named like another
// container's and move into it. It needs root. Test only.
//
//	sleeper := exec.Command("sleep", "30") // started by the test
//	cgrouptest.Place(t, sleeper.Process.Pid, containerPID, func(p string) string {
//		return p + "/docker-" + otherID + ".scope" // below the container's own
//	})
package cgrouptest

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// Line is one line of a /proc/<pid>/cgroup file.
type Line struct {
	Hierarchy, Controllers, Path string
}

// Lines returns the cgroup lines of process pid.
func Lines(t testing.TB, pid int) []Line {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	require.NoError(t, err)
	var lines []Line
	for l := range strings.Lines(string(data)) {
		parts := strings.SplitN(strings.TrimSuffix(l, "\n"), ":", 3)
		require.Len(t, parts, 3, "cgroup line %q", l)
		lines = append(lines, Line{parts[0], parts[1], parts[2]})
	}
	return lines
}

// mount is a mounted cgroup hierarchy.
type mount struct {
	point, root string
	v2          bool
	options     []string
}

func mounts(t testing.TB) []mount {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	var ms []mount
	for l := range strings.Lines(string(data)) {
		pre, post, ok := strings.Cut(l, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 || (g[0] != "cgroup" && g[0] != "cgroup2") {
			continue
		}
		ms = append(ms, mount{point: f[4], root: f[3], v2: g[0] == "cgroup2", options: strings.Split(g[2], ",")})
	}
	return ms
}

// dir returns the directory of cgroup path in the hierarchy of line.
func dir(t testing.TB, ms []mount, line Line, path string) string {
	t.Helper()
	for _, m := range ms {
		if line.Hierarchy == "0" && line.Controllers == "" {
			if !m.v2 {
				continue
			}
		} else if m.v2 || !containsAll(m.options, strings.Split(line.Controllers, ",")) {
			continue
		}
		rel, ok := strings.CutPrefix(path, strings.TrimSuffix(m.root, "/"))
		require.True(t, ok, "cgroup %s is outside the mount of %s at %s", path, line.Controllers, m.point)
		return filepath.Join(m.point, rel)
	}
	t.Fatalf("no mount of the cgroup hierarchy %s:%s", line.Hierarchy, line.Controllers)
	return ""
}

func containsAll(set, items []string) bool {
	for _, i := range items {
		if !slices.Contains(set, i) {
			return false
		}
	}
	return true
}

// Place moves process pid, in every hierarchy of process template, into
// the cgroup rename gives for template's cgroup there, creating it. When
// the test ends, pid (if still alive) goes back to the cgroups it was in,
// and the cgroups Place created are removed. Place skips the test unless
// it runs as root.
func Place(t testing.TB, pid, template int, rename func(path string) string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("moving processes between cgroups needs root")
	}
	ms := mounts(t)
	var created, back []string
	t.Cleanup(func() {
		for _, d := range back {
			// ESRCH: the process has exited, and left every cgroup.
			if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil && !errors.Is(err, syscall.ESRCH) {
				t.Errorf("moving %d back to %s: %v", pid, d, err)
			}
		}
		slices.Reverse(created)
		for _, d := range created {
			if err := os.Remove(d); err != nil {
				t.Errorf("removing cgroup %s: %v", d, err)
			}
		}
	})
	for _, line := range Lines(t, pid) {
		back = append(back, dir(t, ms, line, line.Path))
	}
	for _, line := range Lines(t, template) {
		parent := dir(t, ms, line, line.Path)
		target := dir(t, ms, line, rename(line.Path))
		created = append(created, mkdirs(t, parent, target)...)
		require.NoError(t, os.WriteFile(filepath.Join(target, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0),
			"moving %d into %s", pid, target)
	}
}

// mkdirs creates target and the directories between it and the existing
// from, and returns those it created, outermost first. A new cpuset
// cgroup of version 1 gets its parent's CPUs and memory nodes, without
// which it can hold no process.
func mkdirs(t testing.TB, from, target string) []string {
	t.Helper()
	var missing []string
	for d := target; d != from && d != "/" && d != "."; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
	}
	slices.Reverse(missing)
	for _, d := range missing {
		require.NoError(t, os.Mkdir(d, 0o755))
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if v, err := os.ReadFile(filepath.Join(filepath.Dir(d), f)); err == nil {
				if cur, _ := os.ReadFile(filepath.Join(d, f)); strings.TrimSpace(string(cur)) == "" {
					require.NoError(t, os.WriteFile(filepath.Join(d, f), v, 0))
				}
			}
		}
	}
	return missing
}
