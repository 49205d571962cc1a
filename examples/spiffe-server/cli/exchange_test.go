package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/exchange"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/oidctest"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
)

// TestRunTokenExchange: the program, configured with token_exchange,
// serves the endpoint over HTTPS with its own X509-SVID; a token of the
// configured issuer is exchanged for a JWT-SVID of an entry made with
// entry create; a token for another audience, an expired one, one of an
// issuer not configured and one whose signature is not the issuer's are
// refused.
func TestRunTokenExchange(t *testing.T) {
	dir, err := os.MkdirTemp("", "exch")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	iss := oidctest.New(t)
	caFile := filepath.Join(dir, "issuer-ca.pem")
	require.NoError(t, os.WriteFile(caFile, iss.CertificatePEM(), 0o600))
	sock := filepath.Join(dir, "admin.sock")
	exchAddr := freeAddr(t)
	cfg, err := json.Marshal(map[string]any{
		"trust_domain": "example.org", "data_dir": filepath.Join(dir, "data"), "bind": "127.0.0.1:0", "admin_socket": sock,
		"token_exchange": map[string]any{
			"bind_address": exchAddr,
			"issuers":      []map[string]string{{"url": iss.URL, "audience": "spiffe://example.org", "ca_file": caFile}},
			"clock_skew":   "10s",
		},
	})
	require.NoError(t, err)
	cfgPath := filepath.Join(dir, "server.json")
	require.NoError(t, os.WriteFile(cfgPath, cfg, 0o600))

	ctx := t.Context()
	var stderr logtest.Buffer
	done := make(chan int, 1)
	go func() { done <- Main(ctx, []string{"run", "-config", cfgPath}, io.Discard, &stderr) }()
	waitReady(t, &stderr, done)
	assert.Contains(t, stderr.String(), "serving the token exchange endpoint")
	cmd := func(args ...string) string {
		var out, errOut bytes.Buffer
		code := Main(ctx, append(args, "-admin-socket", sock), &out, &errOut)
		require.Equal(t, ExitOK, code, errOut.String())
		return out.String()
	}
	cmd("entry", "create", "-spiffeID", "spiffe://example.org/ci/app", "-parentID", "spiffe://example.org/spiffekit/exchange",
		"-selector", "oidc:"+iss.URL+":sub:repo:acme/app")
	bundle, err := spiffebundle.Parse(spiffeid.RequireTrustDomainFromString("example.org"), []byte(cmd("bundle", "show", "-format", "spiffe")))
	require.NoError(t, err)

	tr := &http.Transport{TLSClientConfig: tlsconfig.TLSClientConfig(bundle.X509Bundle(),
		tlsconfig.AuthorizeID(spiffeid.RequireFromString("spiffe://example.org/spiffekit/server")))}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	postToken := func(token string) (int, exchange.Response) {
		form := url.Values{
			"grant_type": {exchange.GrantType}, "subject_token_type": {exchange.TokenTypeJWT}, "audience": {"https://api.example.com"},
			"subject_token": {token},
		}
		resp, err := client.PostForm("https://"+exchAddr+"/token", form)
		require.NoError(t, err)
		defer resp.Body.Close()
		var r exchange.Response
		if resp.StatusCode == http.StatusOK {
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
		}
		return resp.StatusCode, r
	}
	post := func(aud string) (int, exchange.Response) {
		return postToken(iss.Mint(t, iss.Claims("repo:acme/app", aud)))
	}
	// The entry reaches the server's index through the store's
	// notification; until then the token maps to nothing.
	deadline := time.Now().Add(20 * time.Second)
	code, resp := post("spiffe://example.org")
	for code != http.StatusOK && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		code, resp = post("spiffe://example.org")
	}
	require.Equal(t, http.StatusOK, code, stderr.String())
	svid, err := jwtsvid.ParseAndValidate(resp.AccessToken, bundle.JWTBundle(), []string{"https://api.example.com"})
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/ci/app", svid.ID.String())
	code, _ = post("spiffe://example.org/other")
	assert.Equal(t, http.StatusBadRequest, code, "another audience")
	expired := iss.Claims("repo:acme/app", "spiffe://example.org")
	expired["iat"], expired["nbf"], expired["exp"] = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-time.Hour).Unix(), time.Now().Add(-time.Minute).Unix()
	code, _ = postToken(iss.Mint(t, expired))
	assert.Equal(t, http.StatusBadRequest, code, "expired")
	other := oidctest.New(t) // an issuer the server was not given, with the same subject
	code, _ = postToken(other.Mint(t, other.Claims("repo:acme/app", "spiffe://example.org")))
	assert.Equal(t, http.StatusBadRequest, code, "an issuer not configured")
	code, _ = postToken(iss.MintForeign(t, iss.Claims("repo:acme/app", "spiffe://example.org")))
	assert.Equal(t, http.StatusBadRequest, code, "a signature that is not the issuer's")
	assert.Zero(t, other.Fetches(), "the server asked nothing of an issuer it was not given")
	for _, reason := range []string{`does not hold \"spiffe://example.org\"`, "expired at", `is not trusted`, "error in cryptographic primitive"} {
		assert.Contains(t, stderr.String(), reason, "each refusal logged with its reason")
	}
	assert.Contains(t, stderr.String(), `msg="token exchanged"`)
}

func TestTokenExchangeSectionRefused(t *testing.T) {
	dir := t.TempDir()
	pem := filepath.Join(dir, "bad.pem")
	require.NoError(t, os.WriteFile(pem, []byte("not PEM"), 0o600))
	issuer := `[{"url": "https://issuer.example", "audience": "a"}]`
	for name, tc := range map[string]struct{ section, msg string }{
		"no bind":          {`{"issuers": ` + issuer + `}`, "token_exchange.bind_address is required"},
		"no issuer":        {`{"bind_address": "127.0.0.1:0"}`, "token_exchange.issuers needs at least one issuer"},
		"cert without key": {`{"bind_address": "127.0.0.1:0", "cert_file": "c.pem", "issuers": ` + issuer + `}`, "both cert_file and key_file"},
		"missing cert":     {`{"bind_address": "127.0.0.1:0", "cert_file": "` + filepath.Join(dir, "none") + `", "key_file": "k.pem", "issuers": ` + issuer + `}`, "token exchange endpoint certificate"},
		"bad skew":         {`{"bind_address": "127.0.0.1:0", "clock_skew": "soon", "issuers": ` + issuer + `}`, "token_exchange.clock_skew"},
		"bad roots":        {`{"bind_address": "127.0.0.1:0", "issuers": [{"url": "https://issuer.example", "audience": "a", "ca_file": "` + pem + `"}]}`, "token_exchange.issuers[0].ca_file"},
		"http issuer":      {`{"bind_address": "127.0.0.1:0", "issuers": [{"url": "http://issuer.example", "audience": "a"}]}`, "not an https URL"},
		"skew too large":   {`{"bind_address": "127.0.0.1:0", "clock_skew": "1h", "issuers": ` + issuer + `}`, "clock skew"},
		"issuer twice":     {`{"bind_address": "127.0.0.1:0", "issuers": [{"url": "https://i.example", "audience": "a"}, {"url": "https://i.example", "audience": "b"}]}`, "configured twice"},
		"unknown key":      {`{"bind_address": "127.0.0.1:0", "isuers": []}`, `unknown field "isuers"`},
	} {
		t.Run(name, func(t *testing.T) {
			file := writeJSON(t, dir, `{"trust_domain": "example.org", "data_dir": "`+filepath.Join(dir, name)+`", "bind": "127.0.0.1:0", "admin_socket": "", "token_exchange": `+tc.section+`}`)
			code, _, stderr := runMain(t, "-config", file)
			assert.NotEqual(t, ExitOK, code)
			assert.Contains(t, stderr, tc.msg)
			assert.Equal(t, 2, len(strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")), stderr)
		})
	}
}
