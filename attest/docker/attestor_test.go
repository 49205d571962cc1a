package docker_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/docker"
)

func TestNew(t *testing.T) {
	for _, tt := range []struct {
		name    string
		cfg     docker.Config
		wantErr string
	}{
		{name: "zero value", cfg: docker.Config{}},
		{name: "negative timeout", cfg: docker.Config{Timeout: -1}, wantErr: "Timeout must not be negative"},
		{name: "empty variable name", cfg: docker.Config{AllowedEnv: []string{""}}, wantErr: "is not an environment variable name"},
		{name: "variable name with =", cfg: docker.Config{AllowedEnv: []string{"A=B"}}, wantErr: "is not an environment variable name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, err := docker.New(tt.cfg)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.NotNil(t, a)
		})
	}
	a, err := docker.New(docker.Config{})
	require.NoError(t, err)
	_, err = a.Attest(t.Context(), attest.Workload{PID: 0})
	require.ErrorContains(t, err, "is not a process")
}
