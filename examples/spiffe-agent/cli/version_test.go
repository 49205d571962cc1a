package cli

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/spiffekit/spiffekit/examples/internal/version"
)

func TestVersion(t *testing.T) {
	want := "spiffe-agent " + version.Get().String() + "\n"
	for _, args := range [][]string{{"version"}, {"-version"}, {"--version"}} {
		var out, errb bytes.Buffer
		assert.Equal(t, ExitOK, Main(t.Context(), args, &out, &errb), "%v", args)
		assert.Equal(t, want, out.String(), "%v", args)
		assert.Empty(t, errb.String(), "%v", args)
	}
	var out, errb bytes.Buffer
	assert.Equal(t, ExitUsage, Main(t.Context(), []string{"version", "extra"}, &out, &errb))
	assert.Contains(t, errb.String(), `unexpected argument "extra"`)
	assert.Empty(t, out.String())

	out.Reset()
	assert.Equal(t, ExitOK, Main(t.Context(), []string{"-h"}, &out, &errb))
	assert.Contains(t, out.String(), "version")
}
