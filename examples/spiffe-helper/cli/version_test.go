package cli

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/spiffekit/spiffekit/examples/internal/version"
)

func TestVersion(t *testing.T) {
	// -version answers before the configuration file is read: there is
	// none here.
	var out, errb bytes.Buffer
	assert.Equal(t, ExitOK, Main(t.Context(), []string{"-config", "/nonexistent/helper.conf", "-version"}, &out, &errb))
	assert.Equal(t, "spiffe-helper "+version.Get().String()+"\n", out.String())
	assert.Empty(t, errb.String())
}
