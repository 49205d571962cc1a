package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/internal/testing/maintest"
	"github.com/spiffekit/spiffekit/registry/memstore"
)

func TestMain(m *testing.M) { maintest.Main(m, main) }

func TestUsage(t *testing.T) {
	// Help asked for goes to stdout and is no error.
	r := maintest.Run(t, "", "-h")
	assert.Equal(t, 0, r.Code)
	assert.Contains(t, r.Stdout, "Usage: spiffe-agent <command>")
	assert.Empty(t, r.Stderr)

	// No command is a usage error.
	r = maintest.Run(t, "")
	assert.Equal(t, 2, r.Code)
	assert.Contains(t, r.Stderr, "Usage: spiffe-agent <command>")
	assert.Empty(t, r.Stdout)
}

func TestSIGTERMStopsRunCleanly(t *testing.T) {
	dir, err := os.MkdirTemp("", "a")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	// No server listens on port 1: the agent retries until the signal.
	token, _, err := jointoken.Generate(t.Context(), memstore.New(memstore.Config{}), jointoken.Params{})
	require.NoError(t, err)
	cmd := maintest.Command("run", "-trust-domain", "example.org", "-server", "127.0.0.1:1", "-insecure-bootstrap",
		"-join-token", token, "-socket", filepath.Join(dir, "api.sock"))
	// The first attempt's failure comes after the signal handler is installed.
	r := maintest.Signal(t, cmd, "attestation failed; retrying", syscall.SIGTERM)
	assert.Equal(t, 0, r.Code, r.Stderr)
}
