package version

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func buildInfo(version string, settings ...string) *debug.BuildInfo {
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/spiffekit/spiffekit", Version: version}}
	for i := 0; i+1 < len(settings); i += 2 {
		bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
	}
	return bi
}

func TestFromBuildInfo(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name       string
		bi         *debug.BuildInfo
		ok         bool
		ldV, ldRev string
		want       Info
		str        string
	}{{
		name: "a tagged build from a clean checkout",
		bi:   buildInfo("v1.2.0", "vcs", "git", "vcs.revision", rev, "vcs.time", "2026-12-06T12:00:00Z", "vcs.modified", "false", "-trimpath", "true"),
		ok:   true,
		want: Info{Version: "v1.2.0", Revision: rev, Time: "2026-12-06T12:00:00Z", GoVersion: "go1.26.0"},
		str:  "v1.2.0 (revision " + rev + ", 2026-12-06T12:00:00Z, go1.26.0)",
	}, {
		name: "a checkout with local changes",
		bi:   buildInfo("v0.0.0-20261206120000-0123456789ab+dirty", "vcs.revision", rev, "vcs.modified", "true"),
		ok:   true,
		want: Info{Version: "v0.0.0-20261206120000-0123456789ab+dirty", Revision: rev, Modified: true, GoVersion: "go1.26.0"},
		str:  "v0.0.0-20261206120000-0123456789ab+dirty (revision " + rev + " with local changes, go1.26.0)",
	}, {
		name: "the linker's values win",
		bi:   buildInfo("(devel)", "vcs.revision", rev, "vcs.time", "2026-12-06T12:00:00Z", "vcs.modified", "true"),
		ok:   true, ldV: "v2.0.0", ldRev: "feedbee",
		want: Info{Version: "v2.0.0", Revision: "feedbee", GoVersion: "go1.26.0"},
		str:  "v2.0.0 (revision feedbee, go1.26.0)",
	}, {
		name: "no VCS information",
		bi:   buildInfo("(devel)"),
		ok:   true,
		want: Info{Version: "(devel)", GoVersion: "go1.26.0"},
		str:  "(devel) (go1.26.0)",
	}, {
		name: "no build information at all",
		want: Info{Version: "unknown"},
		str:  "unknown",
	}, {
		name: "no build information, versioned by the linker",
		ldV:  "v1.0.0",
		want: Info{Version: "v1.0.0"},
		str:  "v1.0.0",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fromBuildInfo(tt.bi, tt.ok, tt.ldV, tt.ldRev)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.str, got.String())
		})
	}
}

func TestGetAndPrint(t *testing.T) {
	// A test binary has build information: at least the toolchain.
	i := Get()
	require.NotEmpty(t, i.Version)
	require.True(t, strings.HasPrefix(i.GoVersion, "go"), "GoVersion %q", i.GoVersion)

	var out bytes.Buffer
	Print(&out, "prog")
	require.Equal(t, "prog "+i.String()+"\n", out.String())
}

func TestIsFlag(t *testing.T) {
	for _, a := range []string{"-version", "--version"} {
		require.True(t, IsFlag(a), a)
	}
	for _, a := range []string{"version", "-v", "-versions", "", "---version"} {
		require.False(t, IsFlag(a), a)
	}
}
