//go:build !windows

package endpoint_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

func TestListenNamedPipeElsewhere(t *testing.T) {
	lis, err := endpoint.ListenNamedPipe("spiffe-agent", "")
	assert.Nil(t, lis)
	assert.ErrorIs(t, err, endpoint.ErrNamedPipesUnsupported)
	_, err = endpoint.ListenNamedPipe("../x", "")
	assert.ErrorContains(t, err, `must not have empty, "." or ".." elements`)
}
