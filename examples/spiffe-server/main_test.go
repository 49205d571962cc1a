package main

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/spiffekit/spiffekit/internal/testing/maintest"
)

func TestMain(m *testing.M) { maintest.Main(m, main) }

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
			r := maintest.Run(t, "", tt.args...)
			assert.Equal(t, tt.code, r.Code, r.Stderr)
			if tt.stdout == "" {
				assert.Empty(t, r.Stdout)
			} else {
				assert.Contains(t, r.Stdout, tt.stdout)
			}
			if tt.stderr == "" {
				assert.Empty(t, r.Stderr)
			} else {
				assert.Contains(t, r.Stderr, tt.stderr)
			}
		})
	}
}
