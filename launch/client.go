package launch

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/internal/apiclient"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// ErrPermissionDenied is returned by the Client's calls when the server
// refuses the caller's uid.
var ErrPermissionDenied = errors.New("launch: permission denied")

// maxAnswer bounds an answer of the launcher API, in bytes.
const maxAnswer = 1 << 20

// Client calls the launcher API of a server over its unix socket, as a
// launcher does. It is safe for concurrent use.
type Client struct {
	hc   *http.Client
	path string
}

// Dial returns a client of the launcher API at the unix socket path. It
// connects when a call needs it.
func Dial(path string) *Client {
	return &Client{hc: apiclient.HTTPClient(path, 4), path: path}
}

// Close closes the client's idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// Launch makes a launch (POST /v1/launches). Errors wrap ErrInvalid,
// ErrRateLimited, ErrTooManyLive or ErrPermissionDenied when the server
// refuses it.
func (c *Client) Launch(ctx context.Context, p Params) (Launch, error) {
	req := request{SPIFFEID: p.SPIFFEID.String(), Hint: p.Hint}
	for _, d := range []struct {
		v   time.Duration
		dst *string
	}{{p.TTL, &req.TTL}, {p.X509SVIDTTL, &req.X509SVIDTTL}, {p.JWTSVIDTTL, &req.JWTSVIDTTL}} {
		if d.v != 0 {
			*d.dst = d.v.String()
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return Launch{}, fmt.Errorf("launch: %w", err)
	}
	var out launchJSON
	if err := c.do(ctx, http.MethodPost, "/v1/launches", body, &out); err != nil {
		return Launch{}, err
	}
	l := Launch{ID: out.ID, Handle: out.Handle, ExpiresAt: out.ExpiresAt}
	if l.SPIFFEID, err = spiffeid.FromString(out.SPIFFEID); err != nil {
		return Launch{}, fmt.Errorf("launch: the server's answer: %w", err)
	}
	if l.X509SVIDTTL, err = time.ParseDuration(out.X509SVIDTTL); err != nil {
		return Launch{}, fmt.Errorf("launch: the server's answer: %w", err)
	}
	if l.JWTSVIDTTL, err = time.ParseDuration(out.JWTSVIDTTL); err != nil {
		return Launch{}, fmt.Errorf("launch: the server's answer: %w", err)
	}
	for rest := []byte(out.X509Authorities); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return Launch{}, fmt.Errorf("launch: the server's answer: %w", err)
		}
		l.X509Authorities = append(l.X509Authorities, cert)
	}
	if len(out.JWTAuthorities) > 0 {
		b, err := jwtbundle.Parse(l.SPIFFEID.TrustDomain(), out.JWTAuthorities)
		if err != nil {
			return Launch{}, fmt.Errorf("launch: the server's answer: %w", err)
		}
		l.JWTAuthorities = b.JWTAuthorities()
	}
	if len(out.WITAuthorities) > 0 {
		b, err := witbundle.Parse(l.SPIFFEID.TrustDomain(), out.WITAuthorities)
		if err != nil {
			return Launch{}, fmt.Errorf("launch: the server's answer: %w", err)
		}
		l.WITAuthorities = b.WITAuthorities()
	}
	return l, nil
}

// Get returns launch id (GET /v1/launches/{id}). Errors wrap ErrNotFound
// when id names no launch.
func (c *Client) Get(ctx context.Context, id string) (Info, error) {
	if !registry.ValidEntryID(id) {
		return Info{}, ErrNotFound // as the server would answer
	}
	var out infoJSON
	if err := c.do(ctx, http.MethodGet, "/v1/launches/"+url.PathEscape(id), nil, &out); err != nil {
		return Info{}, err
	}
	sid, err := spiffeid.FromString(out.SPIFFEID)
	if err != nil {
		return Info{}, fmt.Errorf("launch: the server's answer: %w", err)
	}
	return Info{ID: out.ID, SPIFFEID: sid, Hint: out.Hint, ExpiresAt: out.ExpiresAt, Redeemed: out.Redeemed}, nil
}

// End ends launch id early (DELETE /v1/launches/{id}). Errors wrap
// ErrNotFound when id names no launch.
func (c *Client) End(ctx context.Context, id string) error {
	if !registry.ValidEntryID(id) {
		return ErrNotFound // as the server would answer
	}
	return c.do(ctx, http.MethodDelete, "/v1/launches/"+url.PathEscape(id), nil, nil)
}

// do sends one request and decodes a JSON answer into out (when not nil),
// mapping refusals to the package's sentinels.
func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://launcher"+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("launch: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return apiclient.DialError("launch", "the launcher API", c.path, ErrPermissionDenied, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("launch: reading the answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Error, Message string }
		if json.Unmarshal(data, &e) != nil || e.Error == "" || e.Message == "" {
			// Not an error of the launcher API, which always names its
			// code: another server's socket (the admin API's, say), whose
			// 404 must not read as "no such launch".
			return fmt.Errorf("launch: %s answered %s, not as the launcher API does: is it the socket_path of the server's launcher section?",
				c.path, resp.Status)
		}
		var sentinel error
		switch resp.StatusCode {
		case http.StatusBadRequest:
			sentinel = ErrInvalid
		case http.StatusNotFound:
			sentinel = ErrNotFound
		case http.StatusTooManyRequests:
			sentinel = ErrRateLimited
		case http.StatusForbidden:
			sentinel = ErrPermissionDenied
		case http.StatusServiceUnavailable:
			if e.Error != codeTooManyLive {
				return fmt.Errorf("launch: the server answered %s: %s", resp.Status, e.Message)
			}
			sentinel = ErrTooManyLive
		default:
			return fmt.Errorf("launch: the server answered %s: %s", resp.Status, e.Message)
		}
		// The server's own message, after "launch: the server said: "
		// unless it names the package already.
		return apiclient.Refused("launch", "the server said: ", e.Message, sentinel)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("launch: the server's answer: %w", err)
	}
	return nil
}
