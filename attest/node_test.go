package attest_test

import (
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/spiffekit/spiffekit/attest"
)

func TestRejectNode(t *testing.T) {
	err := attest.RejectNode(io.ErrUnexpectedEOF, "tpm: payload cut at %d bytes", 12)
	assert.EqualError(t, err, "tpm: payload cut at 12 bytes")
	assert.ErrorIs(t, err, attest.ErrNodeRejected)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF, "the cause is kept")

	err = attest.RejectNode(nil, "token expired")
	assert.ErrorIs(t, err, attest.ErrNodeRejected)
	assert.Nil(t, errors.Unwrap(err))
	assert.NotErrorIs(t, err, attest.ErrRejected, "a node's rejection is not a workload's")
}
