package vault

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/vaulttest"
)

func mint(t *testing.T, c *Client) error {
	t.Helper()
	csr, _ := newCSR(t)
	_, err := c.MintX509CA(t.Context(), ca.X509CARequest{CSR: csr, TrustDomain: td, TTL: time.Hour})
	return err
}

// TestTokenRenewedBeforeExpiry: a renewable token with less than a tenth
// of its lease left is renewed before the signature, not replaced.
func TestTokenRenewedBeforeExpiry(t *testing.T) {
	clk := newClock()
	v := vaulttest.New(t, vaulttest.Config{Now: clk.Now})
	token := v.NewToken(vaulttest.TokenParams{TTL: time.Hour, Renewable: true})
	c := newClient(t, v, Config{Auth: &TokenAuth{Token: token}, Now: clk.Now})
	require.NoError(t, mint(t, c))
	assert.Equal(t, 1, v.Requests("auth/token/lookup-self"))

	clk.Add(50 * time.Minute) // 10 minutes left: enough
	require.NoError(t, mint(t, c))
	assert.Zero(t, v.Requests("auth/token/renew-self"))

	clk.Add(5 * time.Minute) // 5 minutes left: renewed
	require.NoError(t, mint(t, c))
	assert.Equal(t, 1, v.Requests("auth/token/renew-self"))

	clk.Add(55 * time.Minute) // renewed for an hour: 5 minutes left again
	require.NoError(t, mint(t, c))
	assert.Equal(t, 2, v.Requests("auth/token/renew-self"))
	assert.Equal(t, 1, v.Requests("auth/token/lookup-self"), "the same token throughout")
}

// TestStaticTokenExpired: a token that cannot be renewed is looked up
// again near its end; once expired, minting fails with Vault's refusal.
func TestStaticTokenExpired(t *testing.T) {
	clk := newClock()
	v := vaulttest.New(t, vaulttest.Config{Now: clk.Now})
	token := v.NewToken(vaulttest.TokenParams{TTL: time.Hour})
	c := newClient(t, v, Config{Auth: &TokenAuth{Token: token}, Now: clk.Now})
	require.NoError(t, mint(t, c))
	clk.Add(58 * time.Minute)
	require.NoError(t, mint(t, c))
	assert.Equal(t, 2, v.Requests("auth/token/lookup-self"), "looked up again near its end")
	assert.Zero(t, v.Requests("auth/token/renew-self"))
	clk.Add(time.Hour)
	require.ErrorContains(t, mint(t, c), "vault: token login: token lookup: Vault answered 403: permission denied")
}

// TestLoginAgain: a login method gets a new token when the old one cannot
// be renewed, when renewal fails, when it nears its max TTL, and when
// Vault refuses it before its time.
func TestLoginAgain(t *testing.T) {
	clk := newClock()
	v := vaulttest.New(t, vaulttest.Config{Now: clk.Now})
	logins := func() int { return v.Requests("auth/approle/login") }

	t.Run("not renewable", func(t *testing.T) {
		v.AddAppRole("approle", "r", "s", vaulttest.TokenParams{TTL: time.Hour})
		c := newClient(t, v, Config{Auth: &AppRoleAuth{RoleID: "r", SecretID: "s"}, Now: clk.Now})
		before := logins()
		require.NoError(t, mint(t, c))
		clk.Add(57 * time.Minute)
		require.NoError(t, mint(t, c))
		assert.Equal(t, before+2, logins())
		assert.Zero(t, v.Requests("auth/token/renew-self"))
	})
	t.Run("max TTL", func(t *testing.T) {
		v.AddAppRole("approle", "r", "s", vaulttest.TokenParams{TTL: time.Hour, Renewable: true, MaxTTL: 90 * time.Minute})
		c := newClient(t, v, Config{Auth: &AppRoleAuth{RoleID: "r", SecretID: "s"}, Now: clk.Now})
		before, renewals := logins(), v.Requests("auth/token/renew-self")
		require.NoError(t, mint(t, c))
		clk.Add(55 * time.Minute)
		require.NoError(t, mint(t, c)) // renewed, up to the max TTL: 35 minutes
		assert.Equal(t, renewals+1, v.Requests("auth/token/renew-self"))
		assert.Equal(t, before+1, logins())
		clk.Add(32 * time.Minute)
		require.NoError(t, mint(t, c)) // renewed, capped at 3 minutes: less than half the lease
		assert.Equal(t, renewals+2, v.Requests("auth/token/renew-self"))
		assert.Equal(t, before+1, logins())
		clk.Add(2*time.Minute + 50*time.Second)
		require.NoError(t, mint(t, c)) // no use renewing: a new login
		assert.Equal(t, before+2, logins())
		assert.Equal(t, renewals+2, v.Requests("auth/token/renew-self"))
	})
	t.Run("revoked early", func(t *testing.T) {
		v.AddAppRole("approle", "r", "s", vaulttest.TokenParams{TTL: time.Hour, Renewable: true})
		var logs logtest.Buffer
		c := newClient(t, v, Config{Auth: &AppRoleAuth{RoleID: "r", SecretID: "s"}, Now: clk.Now, Logger: logs.Logger()})
		before := logins()
		require.NoError(t, mint(t, c))
		revokeAll(v)
		require.NoError(t, mint(t, c), "refused once, logged in again")
		assert.Equal(t, before+2, logins())
		assert.True(t, logs.Contains("Vault refused the token, logging in again"))
	})
	t.Run("renewal fails", func(t *testing.T) {
		v.AddAppRole("approle", "r", "s", vaulttest.TokenParams{TTL: time.Hour, Renewable: true})
		var logs logtest.Buffer
		c := newClient(t, v, Config{Auth: &AppRoleAuth{RoleID: "r", SecretID: "s"}, Now: clk.Now, Logger: logs.Logger()})
		before := logins()
		require.NoError(t, mint(t, c))
		clk.Add(55 * time.Minute)
		revokeAll(v)
		require.NoError(t, mint(t, c))
		assert.Equal(t, before+2, logins())
		assert.True(t, logs.Contains("Vault token renewal failed, logging in again"))
	})
	t.Run("a token that never expires", func(t *testing.T) {
		v.AddAppRole("approle", "r", "s", vaulttest.TokenParams{})
		c := newClient(t, v, Config{Auth: &AppRoleAuth{RoleID: "r", SecretID: "s"}, Now: clk.Now})
		before := logins()
		require.NoError(t, mint(t, c))
		clk.Add(1000 * time.Hour)
		require.NoError(t, mint(t, c))
		assert.Equal(t, before+1, logins())
		_, ok := c.nextRefresh()
		assert.False(t, ok, "Run has nothing to do")
	})
}

// revokeAll revokes every token v has made so far: a token made now
// will show which.
func revokeAll(v *vaulttest.Server) { v.RevokeAll() }

// TestRun keeps tokens alive in real time: a renewable token is renewed,
// a login's token replaced, and Run ends with its context. Leases are a
// few seconds, Vault's unit being the second, with seconds to spare at
// two thirds of them for a loaded machine.
func TestRun(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // first registered, last run: after the servers and clients close
	v := vaulttest.New(t, vaulttest.Config{})
	v.AddAppRole("approle", "r", "s", vaulttest.TokenParams{TTL: 9 * time.Second})
	for _, tt := range []struct {
		name  string
		auth  Auth
		count string
		want  int
	}{
		{"renewable token", &TokenAuth{Token: v.NewToken(vaulttest.TokenParams{TTL: 9 * time.Second, Renewable: true})}, "auth/token/renew-self", 1},
		{"AppRole", &AppRoleAuth{RoleID: "r", SecretID: "s"}, "auth/approle/login", 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs logtest.Buffer
			c := newClient(t, v, Config{Auth: tt.auth, Logger: logs.Logger()})
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			require.Eventually(t, func() bool { return v.Requests(tt.count) >= tt.want }, 30*time.Second, 50*time.Millisecond,
				"renewed, or logged in again: %s", logs.String())
			require.NoError(t, mint(t, c), "the token kept alive serves")
			cancel()
			require.ErrorIs(t, <-done, context.Canceled)
			assert.NotContains(t, logs.String(), "failed")
		})
	}
}

// TestRunIdle: with a token that never expires, or a static one that
// cannot be renewed, Run logs in once and waits for its context.
func TestRunIdle(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // first registered, last run: after the servers and clients close
	v := vaulttest.New(t, vaulttest.Config{})
	for _, p := range []vaulttest.TokenParams{{}, {TTL: time.Hour}} {
		c := newClient(t, v, Config{Auth: &TokenAuth{Token: v.NewToken(p)}})
		before := v.Requests("auth/token/lookup-self")
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		require.Eventually(t, func() bool { return v.Requests("auth/token/lookup-self") == before+1 }, 10*time.Second, 10*time.Millisecond)
		_, ok := c.nextRefresh()
		assert.False(t, ok)
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	}
}

// TestRunBacksOff: a failing login is retried after a backoff, and Run
// still ends with its context.
func TestRunBacksOff(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // first registered, last run: after the servers and clients close
	v := vaulttest.New(t, vaulttest.Config{})
	var logs logtest.Buffer
	c := newClient(t, v, Config{Auth: &AppRoleAuth{RoleID: "r", SecretID: "s"}, Logger: logs.Logger()})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	require.Eventually(t, func() bool { return logs.Contains("Vault token refresh failed") }, 10*time.Second, 10*time.Millisecond)
	assert.True(t, logs.Contains("retry_in=5s"), logs.String())
	assert.Equal(t, 1, v.Requests("auth/approle/login"), "waiting for the backoff")
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}

// TestSecretsNeverLogged: tokens, secret IDs and service account tokens
// appear in no log line and no error, whatever happens.
func TestSecretsNeverLogged(t *testing.T) {
	clk := newClock()
	v := vaulttest.New(t, vaulttest.Config{Now: clk.Now})
	const secretID, jwt = "secret-id-4c1f9e", "eyJhbGciOi.sa-token-77d2"
	v.AddAppRole("approle", "role", secretID, vaulttest.TokenParams{TTL: time.Hour, Renewable: true})
	v.AddKubernetesRole("kubernetes", "spire", jwt, vaulttest.TokenParams{TTL: time.Hour, Renewable: true})
	token := v.NewToken(vaulttest.TokenParams{TTL: time.Hour, Renewable: true})
	secrets := []string{secretID, jwt, token, "hvs."}

	var logs logtest.Buffer
	var errs []string
	for _, auth := range []Auth{
		&TokenAuth{Token: token},
		&AppRoleAuth{RoleID: "role", SecretID: secretID},
		&KubernetesAuth{Role: "spire", TokenFile: writeFile(t, "jwt", []byte(jwt), 0o600)},
		&AppRoleAuth{RoleID: "role", SecretID: secretID + "x"},
		&KubernetesAuth{Role: "spire", TokenFile: writeFile(t, "jwt", []byte(jwt+"x"), 0o600)},
		&TokenAuth{Token: token + "x"},
	} {
		c := newClient(t, v, Config{Auth: auth, Now: clk.Now, Logger: logs.Logger()})
		for range 3 {
			if err := mint(t, c); err != nil {
				errs = append(errs, err.Error())
			}
			clk.Add(55 * time.Minute) // renewals, logins
		}
		revokeAll(v)
		if err := mint(t, c); err != nil {
			errs = append(errs, err.Error())
		}
	}
	require.NotEmpty(t, errs, "the failures were exercised")
	require.True(t, logs.Contains("logged in to Vault"), "the logins were logged")
	require.True(t, logs.Contains("Vault token renewed"), "the renewals were logged")
	all := logs.String() + strings.Join(errs, "\n")
	for _, s := range secrets {
		assert.NotContains(t, all, s)
	}
}
