package admission

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
)

// FuzzCheckSelector feeds arbitrary selectors to the shape check of the
// built-in attestors' selectors: no panic, and a unix uid or gid it
// accepts is exactly what the unix attestor writes for some id.
func FuzzCheckSelector(f *testing.F) {
	for _, s := range [][2]string{
		{"unix", "uid:1000"}, {"unix", "gid:0"}, {"unix", "uid:01"}, {"UNIX", "uid:0"},
		{"unix", "sha256:" + strings.Repeat("a", 64)}, {"unix", "path:/usr/bin/x"},
		{"x509pop", "serialnumber:1f"}, {"join_token", "id:abc"}, {"k8s", "ns:prod"},
		{"oidc", "https://i.example:sub:x"}, {"oidc", "https://i.example:claim:a:b"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, typ, value string) {
		err := CheckSelector(attest.Selector{Type: typ, Value: value})
		if err != nil || typ != "unix" {
			return
		}
		for _, kind := range []string{"uid:", "gid:"} {
			if id, ok := strings.CutPrefix(value, kind); ok {
				n, perr := strconv.ParseUint(id, 10, 32)
				require.NoError(t, perr, "accepted %s%s", kind, id)
				require.Equal(t, strconv.FormatUint(n, 10), id, "accepted a non-canonical id")
			}
		}
	})
}
