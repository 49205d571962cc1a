package workloadapi

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The rules of "npipe:" addresses, which TargetFromAddress applies on
// Windows, tested on every system: go-spiffe's table, and the names
// that would leave the pipe namespace.
func TestNamedPipeTarget(t *testing.T) {
	for _, tt := range []struct{ addr, target, err string }{
		{addr: "npipe:pipeName", target: `\\.\pipe\pipeName`},
		{addr: "npipe:pipe/name", target: `\\.\pipe\pipe\name`},
		{addr: `npipe:pipe\name`, target: `\\.\pipe\pipe\name`},
		{addr: "NPIPE:agent", target: `\\.\pipe\agent`},
		{addr: "npipe:spire%20agent", target: `\\.\pipe\spire agent`},
		{addr: "npipe:", err: "named pipe URI must include an opaque part"},
		{addr: "npipe://foo", err: "named pipe URI must be opaque"},
		{addr: "npipe:/foo", err: "named pipe URI must be opaque"},
		{addr: "npipe:///foo", err: "named pipe URI must be opaque"},
		{addr: "npipe://user@/foo", err: "named pipe URI must be opaque"},
		{addr: "npipe:pipeName?query", err: "named pipe URI must not include query values"},
		{addr: "npipe:pipeName?", err: "named pipe URI must not include query values"},
		{addr: "npipe:pipeName#fragment", err: "named pipe URI must not include a fragment"},
		{addr: "npipe:pipeName#", err: "named pipe URI must not include a fragment"},
		// [ours] go-spiffe cleans these into paths outside \\.\pipe\.
		{addr: "npipe:..", err: `must not have empty, "." or ".." elements`},
		{addr: "npipe:../x", err: `must not have empty, "." or ".." elements`},
		{addr: `npipe:a\..\..\x`, err: `must not have empty, "." or ".." elements`},
		{addr: "npipe:./a", err: `must not have empty, "." or ".." elements`},
		{addr: "npipe:a//b", err: `must not have empty, "." or ".." elements`},
		{addr: "npipe:a/", err: `must not have empty, "." or ".." elements`},
		{addr: "npipe:a%00b", err: "must not contain NUL"},
		{addr: "npipe:a%zz", err: "invalid URL escape"},
		{addr: "npipe:" + strings.Repeat("p", 256), target: `\\.\pipe\` + strings.Repeat("p", 256)},
		{addr: "npipe:" + strings.Repeat("p", 257), err: "longer than 256 characters"},
	} {
		t.Run(tt.addr[:min(len(tt.addr), 40)], func(t *testing.T) {
			u, err := url.Parse(tt.addr)
			if err != nil {
				require.NotEmpty(t, tt.err)
				assert.ErrorContains(t, err, tt.err)
				return
			}
			target, err := namedPipeTarget(tt.addr, u)
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				assert.True(t, strings.HasPrefix(err.Error(), "workloadapi: "), err.Error())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.target, target)
		})
	}
	_, err := namedPipePath("")
	assert.EqualError(t, err, "workloadapi: workload endpoint named pipe name is empty")
}

// FuzzNamedPipeTarget: a parsed pipe address is always a path in the
// local pipe namespace, with no element that Windows would clean away.
func FuzzNamedPipeTarget(f *testing.F) {
	for _, s := range []string{"npipe:agent", "npipe:a/b", `npipe:a\..\b`, "npipe:%2e%2e", "npipe://x", "npipe:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		u, err := url.Parse(addr)
		if err != nil || u.Scheme != "npipe" {
			return
		}
		target, err := namedPipeTarget(addr, u)
		if err != nil {
			return
		}
		name, ok := strings.CutPrefix(target, `\\.\pipe\`)
		if !ok || name == "" || len(name) > maxPipeNameLen || strings.ContainsAny(name, "/\x00") {
			t.Fatalf("%q gave %q", addr, target)
		}
		for _, e := range strings.Split(name, `\`) {
			if e == "" || e == "." || e == ".." {
				t.Fatalf("%q gave %q, with element %q", addr, target, e)
			}
		}
	})
}
