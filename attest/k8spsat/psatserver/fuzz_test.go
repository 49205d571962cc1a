package psatserver

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzParseServiceAccount feeds arbitrary user names to the service
// account parser: it must never panic, and the namespace and name it
// returns are not empty, hold no ':' and rebuild the user name.
func FuzzParseServiceAccount(f *testing.F) {
	f.Add("system:serviceaccount:spire:spire-agent")
	f.Add("system:serviceaccount:a:b:c")
	f.Add("system:serviceaccount::")
	f.Add("system:node:worker-1")
	f.Fuzz(func(t *testing.T, s string) {
		ns, name, err := parseServiceAccount(s)
		if err != nil {
			return
		}
		require.NotEmpty(t, ns)
		require.NotEmpty(t, name)
		require.False(t, strings.Contains(ns, ":") || strings.Contains(name, ":"))
		require.Equal(t, s, serviceAccountPrefix+ns+":"+name)
	})
}
