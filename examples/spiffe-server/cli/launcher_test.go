package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/exchange"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
)

// TestRunLauncher: the program, configured with launcher and a
// token_exchange without issuers, makes a launch on its launcher socket;
// the handle is redeemed at the token exchange endpoint for a JWT-SVID of
// the launch's ID, once.
func TestRunLauncher(t *testing.T) {
	dir, err := os.MkdirTemp("", "lnch")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "admin.sock")
	launchSock := filepath.Join(dir, "launch.sock")
	exchAddr := freeAddr(t)
	cfg, err := json.Marshal(map[string]any{
		"trust_domain": "example.org", "data_dir": filepath.Join(dir, "data"), "bind": "127.0.0.1:0", "admin_socket": sock,
		"token_exchange": map[string]any{"bind_address": exchAddr},
		"launcher": map[string]any{"socket_path": launchSock, "max_ttl": "1h", "allowed_uids": []int{0, os.Getuid()},
			"allowed_path_prefixes": []string{"/sandbox"}},
	})
	require.NoError(t, err)
	cfgPath := filepath.Join(dir, "server.json")
	require.NoError(t, os.WriteFile(cfgPath, cfg, 0o600))

	ctx := t.Context()
	var stderr logtest.Buffer
	done := make(chan int, 1)
	go func() { done <- Main(ctx, []string{"run", "-config", cfgPath}, io.Discard, &stderr) }()
	waitReady(t, &stderr, done)
	assert.Contains(t, stderr.String(), "serving the launcher API")

	var out, errOut bytes.Buffer
	require.Equal(t, ExitOK, Main(ctx, []string{"bundle", "show", "-format", "spiffe", "-admin-socket", sock}, &out, &errOut), errOut.String())
	bundle, err := spiffebundle.Parse(spiffeid.RequireTrustDomainFromString("example.org"), out.Bytes())
	require.NoError(t, err)

	lt := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", launchSock)
	}}
	defer lt.CloseIdleConnections()
	resp, err := (&http.Client{Transport: lt}).Post("http://launcher/v1/launches", "application/json",
		strings.NewReader(`{"spiffe_id": "spiffe://example.org/sandbox/7", "ttl": "30m"}`))
	require.NoError(t, err)
	var l struct{ Handle string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&l))
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	resp, err = (&http.Client{Transport: lt}).Post("http://launcher/v1/launches", "application/json",
		strings.NewReader(`{"spiffe_id": "spiffe://example.org/web", "ttl": "30m"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "outside allowed_path_prefixes")

	tr := &http.Transport{TLSClientConfig: tlsconfig.TLSClientConfig(bundle.X509Bundle(),
		tlsconfig.AuthorizeID(spiffeid.RequireFromString("spiffe://example.org/spiffekit/server")))}
	defer tr.CloseIdleConnections()
	redeem := func() (int, exchange.Response) {
		resp, err := (&http.Client{Transport: tr}).PostForm("https://"+exchAddr+"/token", url.Values{
			"grant_type": {exchange.GrantType}, "subject_token_type": {exchange.TokenTypeLaunchHandle},
			"subject_token": {l.Handle}, "audience": {"https://api.example.com"},
		})
		require.NoError(t, err)
		defer resp.Body.Close()
		var r exchange.Response
		if resp.StatusCode == http.StatusOK {
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
		}
		return resp.StatusCode, r
	}
	code, r := redeem()
	require.Equal(t, http.StatusOK, code, stderr.String())
	svid, err := jwtsvid.ParseAndValidate(r.AccessToken, bundle.JWTBundle(), []string{"https://api.example.com"})
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/sandbox/7", svid.ID.String())
	code, _ = redeem()
	assert.Equal(t, http.StatusBadRequest, code, "a handle is redeemed once")
	assert.Contains(t, stderr.String(), `msg="launch created"`)
	assert.NotContains(t, stderr.String(), l.Handle[33:], "no handle in the log")
}

func TestLauncherSectionRefused(t *testing.T) {
	dir := t.TempDir()
	exch := `, "token_exchange": {"bind_address": "127.0.0.1:0"}`
	for name, tc := range map[string]struct{ config, msg string }{
		"no socket":      {`"launcher": {}` + exch, "launcher.socket_path is required"},
		"no exchange":    {`"launcher": {"socket_path": "/tmp/x.sock"}`, "launcher needs the token_exchange section"},
		"bad TTL":        {`"launcher": {"socket_path": "/tmp/x.sock", "max_ttl": "a day"}` + exch, "launcher.max_ttl"},
		"TTL too long":   {`"launcher": {"socket_path": "/tmp/x.sock", "max_ttl": "48h"}` + exch, "maximum TTL"},
		"bad prefix":     {`"launcher": {"socket_path": "/tmp/x.sock", "allowed_path_prefixes": ["sandbox"]}` + exch, `path prefix "sandbox"`},
		"unknown key":    {`"launcher": {"socket_path": "/tmp/x.sock", "ttl": "1h"}` + exch, `unknown field "ttl"`},
		"exchange alone": {`"token_exchange": {"bind_address": "127.0.0.1:0"}`, "or the launcher section"},
	} {
		t.Run(name, func(t *testing.T) {
			file := writeJSON(t, dir, `{"trust_domain": "example.org", "data_dir": "`+filepath.Join(dir, name)+`", "bind": "127.0.0.1:0", "admin_socket": "", `+tc.config+`}`)
			code, _, stderr := runMain(t, "-config", file)
			assert.NotEqual(t, ExitOK, code)
			assert.Contains(t, stderr, tc.msg)
		})
	}
}
