package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// Backoff of Run after a failed renewal or login.
const (
	minBackoff = 5 * time.Second
	maxBackoff = 5 * time.Minute
)

// tokenState is what the client knows of its token, which itself lives in
// the api.Client only.
type tokenState struct {
	renewable bool
	ttl       time.Duration // lease from obtained; 0: never expires
	granted   time.Duration // lease of the login, which renewals ask for again
	obtained  time.Time
	// capped is set when a renewal granted less than half of what was
	// asked: the token nears its max TTL, renewing it is pointless.
	capped bool
}

func (t *tokenState) expiry() time.Time { return t.obtained.Add(t.ttl) }

// relogs reports whether the auth method can get a new token.
func (c *Client) relogs() bool {
	_, static := c.auth.(*TokenAuth)
	return !static
}

// loginLocked logs in and keeps the token. c.mu is held.
func (c *Client) loginLocked(ctx context.Context) error {
	c.tok = nil
	c.api.ClearToken()
	l, err := c.auth.login(ctx, c.api)
	if err != nil {
		c.api.ClearToken()
		return fmt.Errorf("vault: %s login: %w", c.auth.method(), describe(err))
	}
	c.api.SetToken(l.token)
	c.tok = &tokenState{renewable: l.renewable, ttl: l.ttl, granted: l.ttl, obtained: c.now()}
	if l.ttl == 0 {
		c.log.Info("logged in to Vault", "method", c.auth.method(), "expires", "never")
	} else {
		c.log.Info("logged in to Vault", "method", c.auth.method(), "lease", l.ttl, "renewable", l.renewable)
	}
	return nil
}

// renewLocked renews the token for the lease it was granted. c.mu is held.
func (c *Client) renewLocked(ctx context.Context) error {
	s, err := c.api.Auth().Token().RenewSelfWithContext(ctx, int(c.tok.granted/time.Second))
	if err != nil {
		return fmt.Errorf("vault: token renewal: %w", describe(err))
	}
	if s == nil || s.Auth == nil || s.Auth.LeaseDuration < 0 {
		return errors.New("vault: token renewal answered no lease")
	}
	ttl := time.Duration(s.Auth.LeaseDuration) * time.Second
	c.tok.ttl, c.tok.obtained = ttl, c.now()
	c.tok.capped = ttl < c.tok.granted/2
	if c.tok.capped {
		c.log.Info("Vault token renewed up to its max TTL", "lease", ttl)
	} else {
		c.log.Debug("Vault token renewed", "lease", ttl)
	}
	return nil
}

// ensureLocked makes sure the client holds a token with more than a tenth
// of its lease left: it logs in, or renews the token, or logs in anew.
// c.mu is held.
func (c *Client) ensureLocked(ctx context.Context) error {
	t := c.tok
	if t == nil {
		return c.loginLocked(ctx)
	}
	now := c.now()
	if t.ttl == 0 || now.Before(t.expiry().Add(-t.ttl/10)) {
		return nil
	}
	return c.refreshLocked(ctx, now)
}

// refreshLocked renews the token if it can, or else logs in anew. A
// static token that cannot be renewed is looked up again, which fails
// once it has expired. c.mu is held.
func (c *Client) refreshLocked(ctx context.Context, now time.Time) error {
	t := c.tok
	if t == nil {
		return c.loginLocked(ctx)
	}
	if t.renewable && !t.capped && now.Before(t.expiry()) {
		err := c.renewLocked(ctx)
		if err == nil || !c.relogs() {
			return err
		}
		c.log.Warn("Vault token renewal failed, logging in again", "err", err)
	}
	return c.loginLocked(ctx)
}

// nextRefresh returns when Run should refresh the token, or false when
// nothing will be gained by doing so (a token that never expires, or a
// static one that cannot be renewed any more).
func (c *Client) nextRefresh() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nextRefreshLocked()
}

func (c *Client) nextRefreshLocked() (time.Time, bool) {
	t := c.tok
	switch {
	case t == nil:
		return c.now(), true
	case t.ttl == 0:
		return time.Time{}, false
	case (t.renewable && !t.capped) || c.relogs():
		return t.obtained.Add(t.ttl * 2 / 3), true
	}
	return time.Time{}, false
}

// Run keeps the client's token alive until ctx is done, and returns
// ctx.Err(). It logs in if the client has no token yet, renews a renewable
// token at two thirds of its lease, and logs in anew at that point when
// the token cannot be renewed (any more) and the method allows it.
// Failures are logged and retried with a backoff from 5 seconds to 5
// minutes. Run is optional: [Client.MintX509CA] logs in or renews itself
// when needed, but only Run keeps a static token alive between two CA
// rotations. Run one at a time.
func (c *Client) Run(ctx context.Context) error {
	var backoff time.Duration
	for {
		at, ok := c.nextRefresh()
		if !ok && backoff == 0 {
			<-ctx.Done()
			return ctx.Err()
		}
		wait := at.Sub(c.now())
		if backoff > 0 {
			wait = backoff
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
		c.mu.Lock()
		var err error
		// MintX509CA may have logged in or renewed meanwhile.
		if at, ok := c.nextRefreshLocked(); backoff > 0 || (ok && !c.now().Before(at)) {
			err = c.refreshLocked(ctx, c.now())
		}
		c.mu.Unlock()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			c.log.Warn("Vault token refresh failed", "err", err, "retry_in", backoff)
		default:
			backoff = 0
		}
	}
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// maxErrorText bounds the text of Vault's errors in ours.
const maxErrorText = 512

// responseError is Vault's answer to a failed request: its status and
// errors on one line, not the multi-line text of api.ResponseError.
type responseError struct{ re *api.ResponseError }

func (e *responseError) Error() string {
	msg := strings.Join(e.re.Errors, "; ")
	if msg == "" {
		msg = http.StatusText(e.re.StatusCode)
	}
	if len(msg) > maxErrorText {
		msg = msg[:maxErrorText] + "..."
	}
	return fmt.Sprintf("Vault answered %d: %s", e.re.StatusCode, msg)
}

func (e *responseError) Unwrap() error { return e.re }

// describe shortens Vault's error response err; other errors are
// returned as they are.
func describe(err error) error {
	if re, ok := err.(*api.ResponseError); ok {
		return &responseError{re}
	}
	return err
}

// isDenied reports whether err is Vault refusing the token.
func isDenied(err error) bool {
	re, ok := errors.AsType[*api.ResponseError](err)
	return ok && re.StatusCode == http.StatusForbidden
}
