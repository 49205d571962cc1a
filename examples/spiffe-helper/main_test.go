package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/maintest"
)

func TestMain(m *testing.M) { maintest.Main(m, main) }

func TestExitCodes(t *testing.T) {
	r := maintest.Run(t, "", "-h")
	assert.Equal(t, 0, r.Code)
	assert.Contains(t, r.Stdout, "Usage: spiffe-helper [flags]")
	assert.Empty(t, r.Stderr)

	// spiffe-helper's default: helper.conf in the working directory.
	r = maintest.Run(t, t.TempDir())
	assert.Equal(t, 2, r.Code)
	assert.Contains(t, r.Stderr, "spiffe-helper: open helper.conf: no such file or directory")
}

func TestSIGTERMStopsDaemonCleanly(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "helper.conf")
	// No agent listens: the helper retries until the signal.
	require.NoError(t, os.WriteFile(conf, []byte("agent_address = \""+filepath.Join(dir, "api.sock")+"\"\njwt_bundle_file_name = \"b.json\"\n"), 0o600))
	r := maintest.Signal(t, maintest.Command("-config", conf), "spiffe-helper running", syscall.SIGTERM)
	assert.Equal(t, 0, r.Code, r.Stderr)
}
