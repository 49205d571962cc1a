package cgroups

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// ErrAmbiguous is wrapped by the error of [Parse] when the cgroups of a
// process name more than one container or pod. No answer is then safe:
// the process gets none.
var ErrAmbiguous = errors.New("cgroups: the cgroups name more than one container or pod")

// Container is the container a process runs in, as its cgroups name it.
type Container struct {
	// ID is the container's ID: 64 lowercase hexadecimal digits, as the
	// runtime names the container (the Docker Engine API, the kubelet's
	// container statuses after "containerd://", "cri-o://", "docker://").
	ID string

	// PodUID is the UID of the Kubernetes pod the container belongs to,
	// in its canonical form (dashes, lowercase), when the path holds the
	// kubelet's cgroup of the pod. It is empty when the path names no
	// pod: a container outside Kubernetes, or a container of the pod the
	// reader runs in, seen from the reader's own cgroup namespace.
	PodUID string

	// Path is the cgroup path up to and including the container's own
	// cgroup, as the reader sees it, from the first line naming the
	// container: every process of the container is at Path or below it.
	Path string
}

// runtimes are the prefixes container runtimes give the systemd scope of a
// container ("docker-<id>.scope"). Others, such as CRI-O's "crio-conmon-",
// name the runtime's helper processes, not the container.
var runtimes = []string{"docker", "cri-containerd", "crio", "libpod"}

// Parse reads the contents of a /proc/<pid>/cgroup file and returns the
// container the process runs in. ok is false when the process runs in no
// container Parse recognises.
//
// Each line is "hierarchy-ID:controllers:path". A path names a container
// when one of its segments is a container's cgroup:
//
//	<id>                                 cgroupfs driver (Docker, containerd, CRI-O)
//	docker-<id>.scope                    systemd driver; also cri-containerd-, crio-, libpod-
//	<pod slice>:cri-containerd:<id>      containerd's systemd notation, taken literally
//
// where <id> is 64 lowercase hexadecimal digits, and a pod when one of its
// segments is a pod's cgroup:
//
//	pod<uid>                             cgroupfs driver
//	kubepods-besteffort-pod<uid>.slice   systemd driver (any prefix of slices)
//
// where <uid> is a UUID (with dashes, or with underscores as the systemd
// driver writes it) or 32 lowercase hexadecimal digits (a static pod). A
// path with a pod segment names the container whose segment follows it
// directly; one with two pod segments is ambiguous. A path without one
// names its innermost container (a container in a container, such as a
// kind node's, is the inner one). Segments after the container's are
// cgroups the container made below its own, and are ignored. The path may
// be relative ("/../../pod<uid>/<id>"), as it is when read from another
// cgroup namespace than the process's.
//
// On a host that mounts both cgroup versions, container runtimes manage
// the version 1 hierarchies: if any of their lines names a container, the
// version 2 line ("0::path") is ignored. Every line considered that names
// a container must name the same container and pod, or Parse fails with an
// error wrapping [ErrAmbiguous]; lines naming none (a controller the
// runtime does not use) are ignored. A malformed line names no container.
func Parse(data []byte) (c Container, ok bool, err error) {
	var v1, v2 lines
	for line := range bytes.Lines(data) {
		hierarchy, rest, ok1 := bytes.Cut(bytes.TrimSuffix(line, []byte("\n")), []byte(":"))
		controllers, path, ok2 := bytes.Cut(rest, []byte(":"))
		if !ok1 || !ok2 || !decimal(hierarchy) || len(path) == 0 || path[0] != '/' {
			continue
		}
		set := &v1
		if string(hierarchy) == "0" {
			if len(controllers) != 0 {
				continue // hierarchy 0 is the unified one, with no controllers listed
			}
			set = &v2
		}
		set.add(parsePath(string(path)))
	}
	set := v1
	if len(set.found) == 0 && set.err == nil {
		set = v2
	}
	if set.err != nil {
		return Container{}, false, set.err
	}
	if len(set.found) == 0 {
		return Container{}, false, nil
	}
	first := set.found[0]
	for _, other := range set.found[1:] {
		if other.ID != first.ID || other.PodUID != first.PodUID {
			return Container{}, false, fmt.Errorf("%w: %s and %s", ErrAmbiguous, describe(first), describe(other))
		}
	}
	return first, true, nil
}

// lines gathers what the lines of one cgroup version name.
type lines struct {
	found []Container
	err   error // the first line that was ambiguous on its own
}

func (l *lines) add(c Container, ok bool, err error) {
	switch {
	case err != nil:
		if l.err == nil {
			l.err = err
		}
	case ok:
		l.found = append(l.found, c)
	}
}

func describe(c Container) string {
	if c.PodUID == "" {
		return "container " + c.ID
	}
	return "container " + c.ID + " of pod " + c.PodUID
}

// parsePath returns the container the cgroup path p names, if any.
func parsePath(p string) (Container, bool, error) {
	segs := strings.Split(p[1:], "/")
	pod, podUID := -1, ""
	for i, s := range segs {
		if uid, ok := podSegment(s); ok {
			if pod >= 0 {
				return Container{}, false, fmt.Errorf("%w: the path %q holds two pods", ErrAmbiguous, p)
			}
			pod, podUID = i, uid
		}
	}
	at, id := -1, ""
	switch {
	case pod >= 0:
		// The kubelet makes the pod's cgroup, the runtime the container's
		// right below it. Anything deeper was made inside the container.
		if cid, ok := combinedSegment(segs[pod]); ok {
			at, id = pod, cid
		} else if pod+1 < len(segs) {
			if cid, ok := containerSegment(segs[pod+1]); ok {
				at, id = pod+1, cid
			}
		}
	default:
		for i := len(segs) - 1; i >= 0 && at < 0; i-- {
			if cid, ok := containerSegment(segs[i]); ok {
				at, id = i, cid
			}
		}
	}
	if at < 0 {
		return Container{}, false, nil
	}
	return Container{ID: id, PodUID: podUID, Path: "/" + strings.Join(segs[:at+1], "/")}, true, nil
}

// containerSegment returns the container ID a path segment names as the
// cgroup of a container: "<id>" or "<runtime>-<id>.scope".
func containerSegment(s string) (string, bool) {
	if isID(s) {
		return s, true
	}
	if scope, ok := strings.CutSuffix(s, ".scope"); ok {
		for _, rt := range runtimes {
			if id, ok := strings.CutPrefix(scope, rt+"-"); ok && isID(id) {
				return id, true
			}
		}
	}
	return "", false
}

// combinedSegment returns the container ID of a segment in containerd's
// systemd notation, "<pod slice>:<runtime>:<id>".
func combinedSegment(s string) (string, bool) {
	slice, rest, ok := strings.Cut(s, ":")
	if !ok || !strings.HasSuffix(slice, ".slice") {
		return "", false
	}
	rt, id, ok := strings.Cut(rest, ":")
	if !ok || !isID(id) {
		return "", false
	}
	for _, r := range runtimes {
		if rt == r {
			return id, true
		}
	}
	return "", false
}

// podSegment returns the canonical pod UID a path segment names as the
// cgroup of a pod: "pod<uid>", "<slices>-pod<uid>.slice", or the latter
// followed by a container in containerd's systemd notation.
func podSegment(s string) (string, bool) {
	if slice, _, ok := strings.Cut(s, ":"); ok {
		if _, ok := combinedSegment(s); !ok {
			return "", false
		}
		s = slice
	}
	if base, ok := strings.CutSuffix(s, ".slice"); ok {
		// systemd separates nested slices with dashes, so the UID's own
		// dashes are written as underscores.
		name := base[strings.LastIndexByte(base, '-')+1:]
		uid, ok := strings.CutPrefix(name, "pod")
		if !ok {
			return "", false
		}
		return canonicalUID(uid)
	}
	uid, ok := strings.CutPrefix(s, "pod")
	if !ok {
		return "", false
	}
	return canonicalUID(uid)
}

// canonicalUID returns uid with dashes if it is a pod UID: a UUID in
// lowercase hex whose four separators are all dashes or all underscores,
// or the 32 lowercase hex digits the kubelet gives a static pod.
func canonicalUID(uid string) (string, bool) {
	switch len(uid) {
	case 32:
		return uid, isHex(uid)
	case 36:
		sep := uid[8]
		if sep != '-' && sep != '_' {
			return "", false
		}
		b := []byte(uid)
		for i, c := range b {
			switch i {
			case 8, 13, 18, 23:
				if c != sep {
					return "", false
				}
				b[i] = '-'
			default:
				if !hexDigit(c) {
					return "", false
				}
			}
		}
		return string(b), true
	}
	return "", false
}

// isID reports whether s is a container ID: 64 lowercase hex digits.
func isID(s string) bool { return len(s) == 64 && isHex(s) }

func isHex(s string) bool {
	for i := range len(s) {
		if !hexDigit(s[i]) {
			return false
		}
	}
	return true
}

func hexDigit(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

func decimal(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
