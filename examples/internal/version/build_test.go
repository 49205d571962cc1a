package version_test

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// buildScript runs scripts/build with env added to the environment, from
// dir, and returns the path of the program it built into out.
func buildScript(t *testing.T, dir, out, program string, env ...string) string {
	t.Helper()
	script, err := filepath.Abs("../../../scripts/build")
	require.NoError(t, err)
	cmd := exec.Command(script, out, program)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "scripts/build: %s", msg)
	bin := filepath.Join(out, program)
	require.Equal(t, bin, strings.TrimSpace(string(msg)), "scripts/build prints the path of what it built")
	return bin
}

// runVersion runs bin with args and returns its output, which must be one
// line and exit 0.
func runVersion(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).Output()
	require.NoError(t, err, "%s %v", bin, args)
	require.Equal(t, 1, strings.Count(string(out), "\n"), "one line: %q", out)
	return strings.TrimSuffix(string(out), "\n")
}

// TestBuildScript builds a program twice with scripts/build, from
// different working directories into different directories, and checks
// that the binaries are the same bytes, static, built with -trimpath, and
// answer -version with what the toolchain recorded in them, or what
// VERSION and REVISION set.
func TestBuildScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program three times")
	}
	tmp := t.TempDir()
	first := buildScript(t, ".", filepath.Join(tmp, "a"), "spiffe-helper")
	second := buildScript(t, tmp, filepath.Join(tmp, "b", "c"), "spiffe-helper")
	a, err := os.ReadFile(first)
	require.NoError(t, err)
	b, err := os.ReadFile(second)
	require.NoError(t, err)
	require.True(t, bytes.Equal(a, b), "two builds of the same source differ (%d and %d bytes)", len(a), len(b))

	// Static: no program interpreter, no shared library.
	f, err := elf.Open(first)
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		require.NotEqual(t, elf.PT_INTERP, p.Type, "the binary asks for a dynamic loader")
	}
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	require.Empty(t, libs)

	bi, err := buildinfo.ReadFile(first)
	require.NoError(t, err)
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	require.Equal(t, "true", settings["-trimpath"])
	require.Equal(t, "0", settings["CGO_ENABLED"])
	require.Equal(t, runtime.Version(), bi.GoVersion)
	require.NotContains(t, string(a), tmp, "the binary holds a path of the build")

	// -version tells what the toolchain recorded: the module's version,
	// and the revision when the checkout is a Git repository the
	// toolchain recognizes (not a linked worktree).
	want := "spiffe-helper " + bi.Main.Version
	if rev := settings["vcs.revision"]; rev != "" {
		want += " (revision " + rev
		if settings["vcs.modified"] == "true" {
			want += " with local changes"
		}
		want += ", " + settings["vcs.time"] + ", " + bi.GoVersion + ")"
	} else {
		want += " (" + bi.GoVersion + ")"
	}
	require.Equal(t, want, runVersion(t, first, "-version"))

	released := buildScript(t, ".", filepath.Join(tmp, "release"), "spiffe-helper", "VERSION=v1.2.3", "REVISION=0123abcd")
	require.Equal(t, "spiffe-helper v1.2.3 (revision 0123abcd, "+bi.GoVersion+")", runVersion(t, released, "-version"))
}

// TestBuildScriptRefuses checks that scripts/build says what is wrong
// with its command line, with exit code 2.
func TestBuildScriptRefuses(t *testing.T) {
	script, err := filepath.Abs("../../../scripts/build")
	require.NoError(t, err)
	for _, args := range [][]string{{}, {t.TempDir(), "no-such-program"}} {
		out, err := exec.Command(script, args...).CombinedOutput()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "%v: %s", args, out)
		require.Equal(t, 2, exit.ExitCode(), "%v: %s", args, out)
		require.NotEmpty(t, out)
	}
	out, err := exec.Command(script, "-h").CombinedOutput()
	require.NoError(t, err)
	require.Contains(t, string(out), "scripts/build DIR [PROGRAM...]")
}
