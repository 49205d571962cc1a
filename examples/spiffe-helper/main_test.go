package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/logtest"
)

// TestMain runs the program itself when the test binary is started with
// SPIFFE_HELPER_TEST_MAIN=1, so that tests can check exit codes and
// signals.
func TestMain(m *testing.M) {
	if os.Getenv("SPIFFE_HELPER_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func program(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "SPIFFE_HELPER_TEST_MAIN=1")
	return cmd
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "%v", err)
	return ee.ExitCode()
}

func TestExitCodes(t *testing.T) {
	var stdout, stderr bytes.Buffer
	cmd := program("-h")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	assert.Equal(t, 0, exitCode(t, cmd.Run()))
	assert.Contains(t, stdout.String(), "Usage: spiffe-helper [flags]")
	assert.Empty(t, stderr.String())

	// spiffe-helper's default: helper.conf in the working directory.
	stdout.Reset()
	cmd = program()
	cmd.Dir = t.TempDir()
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	assert.Equal(t, 2, exitCode(t, cmd.Run()))
	assert.Contains(t, stderr.String(), "spiffe-helper: open helper.conf: no such file or directory")
}

func TestSIGTERMStopsDaemonCleanly(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "helper.conf")
	// No agent listens: the helper retries until the signal.
	require.NoError(t, os.WriteFile(conf, []byte("agent_address = \""+filepath.Join(dir, "api.sock")+"\"\njwt_bundle_file_name = \"b.json\"\n"), 0o600))
	var stderr logtest.Buffer
	cmd := program("-config", conf)
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for !stderr.Contains("spiffe-helper running") {
		select {
		case err := <-done:
			t.Fatalf("the helper exited early (%v): %s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the helper did not start: %s", stderr.String())
		}
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-done:
		assert.Equal(t, 0, exitCode(t, err), stderr.String())
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the helper did not stop on SIGTERM")
	}
}
