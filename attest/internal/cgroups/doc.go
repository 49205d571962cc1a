// Package cgroups finds the container a Linux process runs in, and the
// Kubernetes pod holding it, from the process's control groups
// (/proc/<pid>/cgroup), for the container workload attestors
// (attest/docker, attest/k8s).
//
// Container runtimes put each container in a cgroup of its own, named for
// the container's ID, and the kubelet puts each pod's containers under a
// cgroup named for the pod's UID. [Parse] recognises the names that the
// runtimes and drivers in use give them (cgroup v1 and v2; the cgroupfs and
// systemd drivers; Docker, containerd, CRI-O and Podman) and nothing else:
// a path it does not recognise is no container, never a guess.
//
//	data, err := os.ReadFile("/proc/1234/cgroup")
//	...
//	c, ok, err := cgroups.Parse(data)
//	switch {
//	case err != nil: // lines that disagree: trust none of them
//	case !ok:        // not in a container
//	default:         // c.ID, and c.PodUID if the kubelet made the cgroup
//	}
package cgroups
