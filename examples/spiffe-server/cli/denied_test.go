package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/calltest"
	"github.com/spiffekit/spiffekit/launch"
)

// nobody is the uid a root test runs a command as, to be refused by a
// socket's mode (root never is).
const nobody = 65534

// runRefused runs the command line args as a user whom the mode of the
// socket at socket refuses: as root, the test binary as uid 65534 (see
// commandEnv); otherwise in the test, with the socket's mode 0 for the
// command. It returns the result and the uid it ran as.
func runRefused(t *testing.T, socket string, args ...string) (result, int) {
	t.Helper()
	if os.Getuid() != 0 {
		fi, err := os.Stat(socket)
		require.NoError(t, err)
		require.NoError(t, os.Chmod(socket, 0))
		defer func() { require.NoError(t, os.Chmod(socket, fi.Mode().Perm())) }()
		var out, errb bytes.Buffer
		code := Main(t.Context(), args, &out, &errb)
		return result{code, out.String(), errb.String()}, os.Getuid()
	}
	// The binary sits in a private build directory: copy it where the
	// other user can run it.
	dir, err := os.MkdirTemp("", "spiffekit-cli-")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	require.NoError(t, os.Chmod(dir, 0o755))
	bin := calltest.Binary(t, dir)

	line, err := json.Marshal(args)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run=^$")
	cmd.Dir = dir
	// A test binary built with -cover writes its counters to GOCOVERDIR,
	// else a warning to stderr: a directory the other user may write to.
	cover := filepath.Join(dir, "cover")
	require.NoError(t, os.Mkdir(cover, 0o700))
	require.NoError(t, os.Chown(cover, nobody, nobody))
	cmd.Env = []string{commandEnv + "=" + string(line), "PATH=/usr/bin:/bin", "GOCOVERDIR=" + cover}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err, "stderr: %s", errb.String())
	}
	return result{code, out.String(), errb.String()}, nobody
}

// A socket whose mode refuses the caller: the admin and launch commands
// say so once, naming the socket and the caller, and what to do.
func TestSocketModeRefused(t *testing.T) {
	const modeRefused = "the mode of the socket or of a directory above it refuses that uid; run as a user they allow, such as the socket's owner\n"
	s := startServer(t)
	for _, args := range [][]string{{"entry", "list"}, {"token", "generate"}} {
		r, uid := runRefused(t, s.socket, append(args, "-admin-socket", s.socket)...)
		assert.Equal(t, ExitFailure, r.code, r.stderr)
		assert.Equal(t, "spiffe-server "+args[0]+" "+args[1]+": admin: permission denied: uid "+strconv.Itoa(uid)+
			" may not connect to "+s.socket+": "+modeRefused, r.stderr)
		assert.Empty(t, r.stdout)
	}

	l := startLauncher(t, nil)
	for _, args := range [][]string{
		{"show", "-launch-id", "0123456789abcdef0123456789abcdef"},
		{"create", "-spiffe-id", "spiffe://example.org/sandbox/1"},
	} {
		r, uid := runRefused(t, l.socket, append([]string{"launch"}, append(args, "-launcher-socket", l.socket)...)...)
		assert.Equal(t, ExitFailure, r.code, r.stderr)
		assert.Equal(t, "spiffe-server launch "+args[0]+": launch: permission denied: uid "+strconv.Itoa(uid)+
			" may not connect to "+l.socket+": "+modeRefused, r.stderr)
		assert.Empty(t, r.stdout)
	}
}

// An admin command given the launcher API's socket says that it answered
// not as the admin API does, whether the launcher serves the caller (a
// 404) or refuses it (a 403 of its own form, no refusal of the admin
// API's).
func TestAdminCommandOnLauncherSocket(t *testing.T) {
	for _, tt := range []struct {
		name    string
		allowed []int
		status  string
	}{
		{"served", nil, "404 Not Found"},
		{"refused", []int{os.Getuid() + 4242}, "403 Forbidden"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := startLauncher(t, func(c *launch.Config) { c.AllowedUIDs = tt.allowed })
			var out, errb bytes.Buffer
			code := Main(t.Context(), []string{"entry", "list", "-admin-socket", l.socket}, &out, &errb)
			assert.Equal(t, ExitFailure, code)
			assert.Equal(t, "spiffe-server entry list: admin: "+l.socket+" answered "+tt.status+
				", not as the admin API does: is it the server's admin socket (-admin-socket)?\n", errb.String())
			assert.Empty(t, out.String())
		})
	}
}
