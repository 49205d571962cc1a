package cli

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// TestRunFederationWebPKIRoots: an https_web relationship made with
// federation create is fetched from an endpoint whose certificate chains
// to the roots of -federation-web-pki-roots; without the flag, the system
// roots do not know it and federation refresh says so.
func TestRunFederationWebPKIRoots(t *testing.T) {
	other := spiffeid.RequireTrustDomainFromString("other.test")
	b := spiffebundle.FromX509Authorities(other, []*x509.Certificate{testca.New(t, other).Root()})
	b.SetSequenceNumber(3)
	doc, err := b.Marshal()
	require.NoError(t, err)
	endpoint := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	}))
	t.Cleanup(endpoint.Close)

	dir, err := os.MkdirTemp("", "roots")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	roots := filepath.Join(dir, "roots.pem")
	require.NoError(t, os.WriteFile(roots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: endpoint.Certificate().Raw}), 0o644))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	admin := func(args ...string) (int, string, string) {
		var out, stderr bytes.Buffer
		code := Main(ctx, args, &out, &stderr)
		return code, out.String(), stderr.String()
	}
	var runs []chan int
	serve := func(name string, args ...string) string {
		sock := filepath.Join(dir, name+".sock")
		var logs logtest.Buffer
		done := make(chan int, 1)
		go func() {
			done <- Main(ctx, append([]string{"run", "-trust-domain", "example.org", "-data-dir", filepath.Join(dir, name),
				"-bind", "127.0.0.1:0", "-admin-socket", sock, "-federation-refresh", "1h"}, args...), io.Discard, &logs)
		}()
		waitReady(t, &logs, done)
		runs = append(runs, done)
		code, _, stderr := admin("federation", "create", "-admin-socket", sock, "-trustDomain", "other.test",
			"-bundleEndpointURL", endpoint.URL+"/", "-bundleEndpointProfile", "https_web")
		require.Equal(t, ExitOK, code, stderr)
		return sock
	}

	trusting := serve("trusting", "-federation-web-pki-roots", roots)
	code, out, stderr := admin("federation", "refresh", "-admin-socket", trusting, "-id", "other.test")
	require.Equal(t, ExitOK, code, stderr)
	assert.Regexp(t, `^Bundle of other\.test refreshed: (updated|unchanged) \(sequence 3\)\n$`, out)
	code, out, stderr = admin("bundle", "show", "-admin-socket", trusting, "-id", "other.test", "-format", "spiffe")
	require.Equal(t, ExitOK, code, stderr)
	got, err := spiffebundle.Parse(other, []byte(out))
	require.NoError(t, err)
	assert.True(t, got.Equal(b))

	systemOnly := serve("system")
	code, _, stderr = admin("federation", "refresh", "-admin-socket", systemOnly, "-id", "other.test")
	assert.Equal(t, ExitFailure, code)
	assert.Contains(t, stderr, `fetching the bundle of "other.test" from `+endpoint.URL+"/ failed; the stored bundle stays: ")
	assert.Contains(t, stderr, "certificate signed by unknown authority")

	stopRuns(t, cancel, nil, runs...)
}
