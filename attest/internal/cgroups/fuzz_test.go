package cgroups_test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest/internal/cgroups"
)

// FuzzParse checks that Parse never panics, that what it finds is a
// container ID and a pod UID of the forms it documents, named in the input,
// and that the path it returns names the same container on its own.
func FuzzParse(f *testing.F) {
	f.Add([]byte(v1("/kubepods/besteffort/pod"+uid+"/"+cid, "/")))
	f.Add([]byte("0::/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope\n"))
	f.Add([]byte("0::/kubepods-besteffort-pod" + uidU + ".slice:cri-containerd:" + cid + "\n"))
	if self, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		f.Add(self)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, ok, err := cgroups.Parse(data)
		if err != nil {
			require.ErrorIs(t, err, cgroups.ErrAmbiguous)
			require.False(t, ok)
			return
		}
		if !ok {
			require.Zero(t, c)
			return
		}
		require.Len(t, c.ID, 64)
		require.Equal(t, strings.ToLower(c.ID), c.ID)
		require.True(t, bytes.Contains(data, []byte(c.ID)), "the ID is in the input")
		require.True(t, bytes.Contains(data, []byte(c.Path)), "the path is in the input")
		require.True(t, strings.HasPrefix(c.Path, "/"))
		require.True(t, strings.Contains(c.Path, c.ID), "the path ends in the container's cgroup")
		if c.PodUID != "" {
			require.Contains(t, []int{32, 36}, len(c.PodUID))
			require.NotContains(t, c.PodUID, "_")
		}
		again, ok, err := cgroups.Parse([]byte("0::" + c.Path + "\n"))
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, c, again)
	})
}
