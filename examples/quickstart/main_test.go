package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
)

func TestRun(t *testing.T) {
	defer leaktest.Check(t)()
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), &out))
	story := out.String()
	t.Log("\n" + story)
	for _, want := range []string{
		"1. [", "Issuer up for example.org", "SQLite registry",
		"Registered spiffe://example.org/billing (hint billing) and spiffe://example.org/web (hint web)",
		"WithDefaultX509SVIDPicker",
		`got "billing to spiffe://example.org/web: hello"`,
		"CA rotation: prepared and activated X.509 CA",
		"The Workload API stream pushed billing's new SVID",
		"New handshake: billing presented the new SVID",
		"The old connection keeps working",
		"Done in",
	} {
		assert.Contains(t, story, want)
	}
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.Error(t, run(ctx, &bytes.Buffer{}))
}
