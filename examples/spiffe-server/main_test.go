package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain runs the program itself when the test binary is started with
// SPIFFE_SERVER_TEST_MAIN=1, so that tests can check its exit codes.
func TestMain(m *testing.M) {
	if os.Getenv("SPIFFE_SERVER_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string
	}{
		{"help", []string{"-h"}, 0, "Usage: spiffe-server <command>", ""},
		{"run help", []string{"run", "-h"}, 0, "environment SPIFFE_SERVER_TRUST_DOMAIN, file key trust_domain", ""},
		{"no command", nil, 2, "", "Usage: spiffe-server <command>"},
		{"bad configuration", []string{"run", "-trust-domain", "example.org"}, 2, "", "spiffe-server run: -data-dir is required"},
		{"server not running", []string{"agent", "list", "-admin-socket", "/nonexistent/admin.sock"}, 1, "", "spiffe-server agent list: admin: cannot reach the server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(os.Args[0], tt.args...)
			cmd.Env = append(os.Environ(), "SPIFFE_SERVER_TEST_MAIN=1")
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if err != nil {
				var ee *exec.ExitError
				require.True(t, errors.As(err, &ee), "%v", err)
				code = ee.ExitCode()
			}
			assert.Equal(t, tt.code, code, stderr.String())
			if tt.stdout == "" {
				assert.Empty(t, stdout.String())
			} else {
				assert.Contains(t, stdout.String(), tt.stdout)
			}
			if tt.stderr == "" {
				assert.Empty(t, stderr.String())
			} else {
				assert.Contains(t, stderr.String(), tt.stderr)
			}
		})
	}
}
