// Package azuremeta is the client of Azure's instance metadata service
// (IMDS) that the Azure node attestors share: plain HTTP GETs with the
// "Metadata: true" header the service requires, an api-version, no proxy,
// no redirect, and every response bounded in time and size. A failure
// carries the service's own error message (its JSON "error" and
// "error_description"), shortened.
package azuremeta

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultEndpoint is the instance metadata service's address on every
// Azure VM.
const DefaultEndpoint = "http://169.254.169.254"

// MaxResponse bounds each response body.
const MaxResponse = 32 << 10

// Client gets documents from the instance metadata service. It is safe for
// concurrent use.
type Client struct {
	base *url.URL
	http *http.Client
}

// New returns a client of the service at endpoint ("" for
// [DefaultEndpoint]) whose responses must start within timeout.
func New(endpoint string, timeout time.Duration) (*Client, error) {
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("metadata endpoint %q: want an http:// or https:// URL without query", endpoint)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	// Never through a proxy: the service is on the VM's link, and a proxy
	// could answer for it (the service refuses X-Forwarded-For anyway).
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		ResponseHeaderTimeout: timeout,
		DisableKeepAlives:     true,
	}
	return &Client{base: u, http: &http.Client{
		Transport: tr,
		// The service does not redirect; a redirect is not followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// Get returns the body of path ("/metadata/...") with query, which must
// hold the api-version.
func (c *Client) Get(ctx context.Context, path string, query url.Values) ([]byte, error) {
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Metadata", "true")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("reading the response: %w", err)
	}
	if len(body) > MaxResponse {
		return nil, fmt.Errorf("the response is larger than %d bytes", MaxResponse)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, errorOf(body))
	}
	return body, nil
}

// errorOf returns the message of an error response: the JSON error and
// error_description the service sends, or the start of the body.
func errorOf(body []byte) string {
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
		if e.Description != "" {
			msg += ": " + e.Description
		}
	}
	if msg == "" {
		return "no message"
	}
	return Truncate(msg)
}

// Truncate shortens s for an error message, and quotes what is not
// printable.
func Truncate(s string) string {
	const n = 128
	if len(s) > n {
		s = s[:n] + "..."
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Sprintf("%q", s)
	}
	return s
}
