package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/registry/memstore"
)

// TestMain runs the program itself when the test binary is started with
// SPIFFE_AGENT_TEST_MAIN=1, so that tests can check exit codes and signals.
func TestMain(m *testing.M) {
	if os.Getenv("SPIFFE_AGENT_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func program(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "SPIFFE_AGENT_TEST_MAIN=1")
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

func TestUsage(t *testing.T) {
	// Help asked for goes to stdout and is no error.
	var stdout, stderr bytes.Buffer
	cmd := program("-h")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	assert.Equal(t, 0, exitCode(t, cmd.Run()))
	assert.Contains(t, stdout.String(), "Usage: spiffe-agent <command>")
	assert.Empty(t, stderr.String())

	// No command is a usage error.
	stdout.Reset()
	cmd = program()
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	assert.Equal(t, 2, exitCode(t, cmd.Run()))
	assert.Contains(t, stderr.String(), "Usage: spiffe-agent <command>")
	assert.Empty(t, stdout.String())
}

func TestSIGTERMStopsRunCleanly(t *testing.T) {
	dir, err := os.MkdirTemp("", "a")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	// No server listens on port 1: the agent retries until the signal.
	token, _, err := jointoken.Generate(t.Context(), memstore.New(memstore.Config{}), jointoken.Params{})
	require.NoError(t, err)
	var stderr logtest.Buffer
	cmd := program("run", "-trust-domain", "example.org", "-server", "127.0.0.1:1", "-insecure-bootstrap",
		"-join-token", token, "-socket", filepath.Join(dir, "api.sock"))
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Wait for the first attempt, so that the signal handler is installed.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), "attestation failed; retrying") {
		select {
		case err := <-done:
			t.Fatalf("the agent exited early (%v): %s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the agent did not start: %s", stderr.String())
		}
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-done:
		assert.Equal(t, 0, exitCode(t, err), stderr.String())
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the agent did not stop on SIGTERM")
	}
}
