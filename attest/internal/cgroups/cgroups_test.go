package cgroups_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest/internal/cgroups"
)

// IDs of the cases below; what matters is their shape.
const (
	cid    = "3f1c9e0b7a5d4c2e8f6a1b0d9c8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e"
	cid2   = "b2a102854b4969b2ce98dc329c86b4fb2b06e4ad2cc8da9d8a7578c9cd2004a2"
	node   = "93529524695bb00d91c1f6dba692ea8d3550c3b94fb2463af7bc9ec82f992d26"
	uid    = "6f3e0c1a-9b2d-4e8f-a7c6-5d4b3a291807"
	uidU   = "6f3e0c1a_9b2d_4e8f_a7c6_5d4b3a291807" // as the systemd driver writes it
	uid2   = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	static = "2732ca68f6358eba7703fb6f82a25c94" // the kubelet's UID of a static pod
)

// v1 repeats path on a cgroup v1 host's usual hierarchies, as the file
// lists them, and adds the unified line.
func v1(path, unified string) string {
	var b strings.Builder
	for i, c := range []string{"name=systemd", "pids", "blkio", "freezer", "devices", "memory", "cpuset", "cpu,cpuacct"} {
		b.WriteString(string(rune('9'-i)) + ":" + c + ":" + path + "\n")
	}
	b.WriteString("0::" + unified + "\n")
	return b.String()
}

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		name string
		data string
		want cgroups.Container // zero: no container
	}{
		// Docker.
		{
			name: "docker, cgroupfs driver, cgroup v1 (as dockerd 20.10 runs here)",
			data: v1("/docker/"+cid, "/docker/"+cid),
			want: cgroups.Container{ID: cid, Path: "/docker/" + cid},
		},
		{
			name: "docker, systemd driver, cgroup v2",
			data: "0::/system.slice/docker-" + cid + ".scope\n",
			want: cgroups.Container{ID: cid, Path: "/system.slice/docker-" + cid + ".scope"},
		},
		{
			name: "docker, systemd driver, a container running systemd",
			data: "0::/system.slice/docker-" + cid + ".scope/init.scope\n",
			want: cgroups.Container{ID: cid, Path: "/system.slice/docker-" + cid + ".scope"},
		},
		{
			name: "docker, cgroupfs driver, cgroup v2, no newline at the end",
			data: "0::/docker/" + cid,
			want: cgroups.Container{ID: cid, Path: "/docker/" + cid},
		},
		{
			name: "podman, systemd driver",
			data: "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + cid + ".scope/container\n",
			want: cgroups.Container{ID: cid, Path: "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + cid + ".scope"},
		},
		{
			name: "a container in a container: the inner one",
			data: "0::/docker/" + node + "/docker/" + cid + "\n",
			want: cgroups.Container{ID: cid, Path: "/docker/" + node + "/docker/" + cid},
		},

		// Kubernetes.
		{
			name: "kubelet, cgroupfs driver, cgroup v1, containerd, besteffort",
			data: v1("/kubepods/besteffort/pod"+uid+"/"+cid, "/"),
			want: cgroups.Container{ID: cid, PodUID: uid, Path: "/kubepods/besteffort/pod" + uid + "/" + cid},
		},
		{
			name: "kubelet, cgroupfs driver, guaranteed (no QoS slice)",
			data: "0::/kubepods/pod" + uid + "/" + cid + "\n",
			want: cgroups.Container{ID: cid, PodUID: uid, Path: "/kubepods/pod" + uid + "/" + cid},
		},
		{
			name: "kubelet, systemd driver, cgroup v2, containerd",
			data: "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope\n",
			want: cgroups.Container{ID: cid, PodUID: uid, Path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope"},
		},
		{
			name: "kubelet, systemd driver, guaranteed",
			data: "0::/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope\n",
			want: cgroups.Container{ID: cid, PodUID: uid, Path: "/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope"},
		},
		{
			name: "kubelet, systemd driver, cgroup v1, CRI-O; rdma not used; unified line elsewhere",
			data: "12:hugetlb:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/crio-" + cid + ".scope\n" +
				"3:rdma:/\n" +
				"1:name=systemd:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/crio-" + cid + ".scope\n" +
				"0::/system.slice/crio.service\n",
			want: cgroups.Container{ID: cid, PodUID: uid, Path: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/crio-" + cid + ".scope"},
		},
		{
			name: "kubelet, cgroupfs driver, UID written with underscores",
			data: "0::/kubepods/pod" + uidU + "/" + cid + "\n",
			want: cgroups.Container{ID: cid, PodUID: uid, Path: "/kubepods/pod" + uidU + "/" + cid},
		},
		{
			name: "containerd's systemd notation taken literally as a path",
			data: "0::/kubepods-besteffort-pod" + uidU + ".slice:cri-containerd:" + cid + "\n",
			want: cgroups.Container{ID: cid, PodUID: uid, Path: "/kubepods-besteffort-pod" + uidU + ".slice:cri-containerd:" + cid},
		},
		{
			name: "a static pod",
			data: "0::/kubepods/besteffort/pod" + static + "/" + cid + "\n",
			want: cgroups.Container{ID: cid, PodUID: static, Path: "/kubepods/besteffort/pod" + static + "/" + cid},
		},
		{
			name: "kind: a pod in a node container; the unified line shows the node's containerd",
			data: v1("/docker/"+node+"/kubepods/besteffort/pod"+uid+"/"+cid, "/docker/"+node+"/system.slice/containerd.service"),
			want: cgroups.Container{ID: cid, PodUID: uid, Path: "/docker/" + node + "/kubepods/besteffort/pod" + uid + "/" + cid},
		},
		{
			name: "Docker Desktop's kubelet",
			data: "0::/kubepods/kubepods/besteffort/pod" + uid + "/" + cid + "\n",
			want: cgroups.Container{ID: cid, PodUID: uid, Path: "/kubepods/kubepods/besteffort/pod" + uid + "/" + cid},
		},
		{
			name: "another pod, read from the reader's own cgroup namespace",
			data: "0::/../../besteffort/pod" + uid + "/" + cid + "\n",
			want: cgroups.Container{ID: cid, PodUID: uid, Path: "/../../besteffort/pod" + uid + "/" + cid},
		},
		{
			name: "a container of the reader's own pod, from its cgroup namespace: no pod named",
			data: "0::/../" + cid + "\n",
			want: cgroups.Container{ID: cid, Path: "/../" + cid},
		},
		{
			name: "CRI-O from another cgroup namespace",
			data: "0::/../crio-" + cid + ".scope\n",
			want: cgroups.Container{ID: cid, Path: "/../crio-" + cid + ".scope"},
		},
		{
			name: "cgroups a pod's container made below its own",
			data: "0::/kubepods/besteffort/pod" + uid + "/" + cid + "/" + cid2 + "\n",
			want: cgroups.Container{ID: cid, PodUID: uid, Path: "/kubepods/besteffort/pod" + uid + "/" + cid},
		},
		{
			name: "a v1 controller the runtime left out does not count",
			data: "5:devices:/docker/" + cid + "\n4:misc:/\n0::/\n",
			want: cgroups.Container{ID: cid, Path: "/docker/" + cid},
		},
		{
			name: "a malformed line among good ones is ignored",
			data: "garbage\n0::/docker/" + cid + "\n",
			want: cgroups.Container{ID: cid, Path: "/docker/" + cid},
		},
		{
			name: "a v1 host whose runtime only uses the unified hierarchy",
			data: "4:memory:/\n0::/docker/" + cid + "\n",
			want: cgroups.Container{ID: cid, Path: "/docker/" + cid},
		},

		// A segment that is almost a pod's names no pod; the container is
		// still the one named, and a pod holding it must be found by its ID.
		{
			name: "a pod UID with mixed separators",
			data: "0::/kubepods/pod6f3e0c1a-9b2d_4e8f-a7c6-5d4b3a291807/" + cid + "\n",
			want: cgroups.Container{ID: cid, Path: "/kubepods/pod6f3e0c1a-9b2d_4e8f-a7c6-5d4b3a291807/" + cid},
		},
		{
			name: "a pod UID in capitals",
			data: "0::/kubepods/pod" + strings.ToUpper(uid) + "/" + cid + "\n",
			want: cgroups.Container{ID: cid, Path: "/kubepods/pod" + strings.ToUpper(uid) + "/" + cid},
		},
		{
			name: "a dash-UUID in a systemd slice",
			data: "0::/kubepods.slice/kubepods-pod" + uid + ".slice/cri-containerd-" + cid + ".scope\n",
			want: cgroups.Container{ID: cid, Path: "/kubepods.slice/kubepods-pod" + uid + ".slice/cri-containerd-" + cid + ".scope"},
		},

		// No container.
		{name: "empty file", data: ""},
		{name: "the root cgroup", data: "0::/\n"},
		{name: "a host service", data: "0::/system.slice/ssh.service\n"},
		{name: "a user session", data: v1("/user.slice/user-1000.slice/session-2.scope", "/user.slice/user-1000.slice/session-2.scope")},
		{name: "a pod's own cgroup, not a container's", data: "0::/kubepods/besteffort/pod" + uid + "\n"},
		{name: "the runtime of the pod's container, CRI-O's conmon", data: "0::/kubepods.slice/kubepods-pod" + uidU + ".slice/crio-conmon-" + cid + ".scope\n"},
		{name: "a container ID without its pod's segment right before it", data: "0::/kubepods/pod" + uid + "/extra/" + cid + "\n"},
		{name: "a container ID in capitals", data: "0::/docker/" + strings.ToUpper(cid) + "\n"},
		{name: "a container ID too short", data: "0::/docker/" + cid[:63] + "\n"},
		{name: "a container ID too long", data: "0::/docker/" + cid + "0\n"},
		{name: "a container ID inside another name", data: "0::/system.slice/foo-" + cid + ".service\n"},
		{name: "an unknown runtime's scope", data: "0::/system.slice/rkt-" + cid + ".scope\n"},
		{name: "a removed cgroup", data: "0::/docker/" + cid + " (deleted)\n"},
		{name: "a relative path without a slash", data: "0::docker/" + cid + "\n"},
		{name: "no hierarchy ID", data: ":cpu:/docker/" + cid + "\n"},
		{name: "a hierarchy ID that is no number", data: "x:cpu:/docker/" + cid + "\n"},
		{name: "hierarchy 0 with controllers", data: "0:cpu:/docker/" + cid + "\n"},
		{name: "one colon only", data: "0:/docker/" + cid + "\n"},
		{name: "the combined notation with an unknown runtime", data: "0::/kubepods-pod" + uidU + ".slice:rkt:" + cid + "\n"},
		{name: "the combined notation without a slice", data: "0::/system:docker:" + cid + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := cgroups.Parse([]byte(tt.data))
			require.NoError(t, err)
			assert.Equal(t, tt.want != cgroups.Container{}, ok)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestParseAmbiguous tries to make Parse pick one of several answers: it
// must give none.
func TestParseAmbiguous(t *testing.T) {
	for _, tt := range []struct{ name, data string }{
		{"two containers in v1 lines", "4:memory:/docker/" + cid + "\n3:cpu:/docker/" + cid2 + "\n"},
		{"two pods in v1 lines", "4:memory:/kubepods/pod" + uid + "/" + cid + "\n3:cpu:/kubepods/pod" + uid2 + "/" + cid + "\n"},
		{"a pod in one line, none in another", "4:memory:/kubepods/pod" + uid + "/" + cid + "\n3:cpu:/docker/" + cid + "\n"},
		{"two containers in v2 lines", "0::/docker/" + cid + "\n0::/docker/" + cid2 + "\n"},
		{
			// A container that can write its cgroups makes one that looks
			// like another pod's container below its own.
			name: "a pod nested in a pod's container",
			data: "0::/kubepods/besteffort/pod" + uid + "/" + cid + "/kubepods/besteffort/pod" + uid2 + "/" + cid2 + "\n",
		},
		{"a pod nested in a combined segment", "0::/kubepods-pod" + uidU + ".slice:cri-containerd:" + cid + "/pod" + uid2 + "/" + cid2 + "\n"},
		{"an ambiguous v1 line beside a good one", "4:memory:/pod" + uid + "/pod" + uid2 + "/" + cid + "\n3:cpu:/pod" + uid2 + "/" + cid + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := cgroups.Parse([]byte(tt.data))
			require.ErrorIs(t, err, cgroups.ErrAmbiguous)
			assert.False(t, ok)
			assert.Zero(t, got)
		})
	}
}
