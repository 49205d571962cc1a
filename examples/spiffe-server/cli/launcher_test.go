package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
			"allowed_path_prefixes": []string{"/sandbox"}, "max_live_launches": 3},
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
	redeemAs := func(spiffeID string) (int, exchange.Response) {
		form := url.Values{
			"grant_type": {exchange.GrantType}, "subject_token_type": {exchange.TokenTypeLaunchHandle},
			"subject_token": {l.Handle}, "audience": {"https://api.example.com"},
		}
		if spiffeID != "" {
			form.Set("spiffe_id", spiffeID)
		}
		resp, err := (&http.Client{Transport: tr}).PostForm("https://"+exchAddr+"/token", form)
		require.NoError(t, err)
		defer resp.Body.Close()
		var r exchange.Response
		if resp.StatusCode == http.StatusOK {
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
		}
		return resp.StatusCode, r
	}
	redeem := func() (int, exchange.Response) { return redeemAs("") }
	code, _ := redeemAs("spiffe://example.org/sandbox/8")
	require.Equal(t, http.StatusBadRequest, code, "another spiffe_id than the launch's")
	code, r := redeemAs("spiffe://example.org/sandbox/7")
	require.Equal(t, http.StatusOK, code, "the refusal before left the handle unspent: %s", stderr.String())
	assert.Equal(t, "spiffe://example.org/sandbox/7", r.SPIFFEID)
	code, r = redeem()
	require.Equal(t, http.StatusBadRequest, code, "a handle is redeemed once")

	// The launch commands, on the program's launcher socket.
	out.Reset()
	errOut.Reset()
	require.Equal(t, ExitOK, Main(ctx, []string{"launch", "create", "-spiffe-id", "spiffe://example.org/sandbox/9",
		"-launcher-socket", launchSock, "-output", "json"}, &out, &errOut), errOut.String())
	var created launchCreatedJSON
	require.NoError(t, json.Unmarshal(out.Bytes(), &created))
	assert.Equal(t, "spiffe://example.org/sandbox/9", created.SPIFFEID)
	assert.NotEmpty(t, created.X509Authorities, "the server's authorities")
	l.Handle = created.Handle
	out.Reset()
	require.Equal(t, ExitOK, Main(ctx, []string{"launch", "end", "-launch-id", created.LaunchID, "-launcher-socket", launchSock}, &out, &errOut),
		errOut.String())
	code, _ = redeem()
	assert.Equal(t, http.StatusBadRequest, code, "an ended launch's handle is refused")

	// Another launch, redeemed once.
	resp, err = (&http.Client{Transport: lt}).Post("http://launcher/v1/launches", "application/json",
		strings.NewReader(`{"spiffe_id": "spiffe://example.org/sandbox/7", "ttl": "30m"}`))
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&l))
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	code, r = redeem()
	require.Equal(t, http.StatusOK, code, stderr.String())
	svid, err := jwtsvid.ParseAndValidate(r.AccessToken, bundle.JWTBundle(), []string{"https://api.example.com"})
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/sandbox/7", svid.ID.String())
	code, _ = redeem()
	assert.Equal(t, http.StatusBadRequest, code, "a handle is redeemed once")
	assert.Contains(t, stderr.String(), `msg="launch created"`)
	assert.NotContains(t, stderr.String(), l.Handle[33:], "no handle in the log")

	// max_live_launches: two launches are alive (the ended one is not);
	// launches are made until the server's entry index, which follows
	// the store within moments, counts three.
	made := 0
	waitFor(t, "a launch past max_live_launches refused", func() bool {
		var o, e bytes.Buffer
		code := Main(ctx, []string{"launch", "create", "-spiffe-id", fmt.Sprintf("spiffe://example.org/sandbox/more/%d", made),
			"-launcher-socket", launchSock}, &o, &e)
		if code == ExitOK {
			made++
			return false
		}
		assert.Contains(t, e.String(), "launch: too many live launches: ")
		return true
	})
	assert.GreaterOrEqual(t, made, 1, "the third launch is allowed")
}

func TestLauncherSectionRefused(t *testing.T) {
	dir := t.TempDir()
	exch := `, "token_exchange": {"bind_address": "127.0.0.1:0"}`
	for name, tc := range map[string]struct{ config, msg string }{
		"socket too long":  {`"launcher": {"socket_path": "/tmp/` + strings.Repeat("x", 120) + `.sock"}` + exch, "longer than"},
		"no exchange":      {`"launcher": {"socket_path": "/tmp/x.sock"}`, "launcher needs the token_exchange section"},
		"bad TTL":          {`"launcher": {"socket_path": "/tmp/x.sock", "max_ttl": "a day"}` + exch, "launcher.max_ttl"},
		"TTL too long":     {`"launcher": {"socket_path": "/tmp/x.sock", "max_ttl": "48h"}` + exch, "maximum TTL"},
		"negative maximum": {`"launcher": {"socket_path": "/tmp/x.sock", "max_live_launches": -1}` + exch, "negative maximum of live launches"},
		"bad prefix":       {`"launcher": {"socket_path": "/tmp/x.sock", "allowed_path_prefixes": ["sandbox"]}` + exch, `path prefix "sandbox"`},
		"unknown key":      {`"launcher": {"socket_path": "/tmp/x.sock", "ttl": "1h"}` + exch, `unknown field "ttl"`},
		"exchange alone":   {`"token_exchange": {"bind_address": "127.0.0.1:0"}`, "or the launcher section"},
	} {
		t.Run(name, func(t *testing.T) {
			file := writeJSON(t, dir, `{"trust_domain": "example.org", "data_dir": "`+filepath.Join(dir, name)+`", "bind": "127.0.0.1:0", "admin_socket": "", `+tc.config+`}`)
			code, _, stderr := runMain(t, "-config", file)
			assert.NotEqual(t, ExitOK, code)
			assert.Contains(t, stderr, tc.msg)
		})
	}
}
