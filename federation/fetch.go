package federation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/spiffeid"
)

const (
	// maxDocumentSize bounds the bundle document read from an endpoint
	// (Fed rule 25); it is the largest document spiffebundle.Parse accepts.
	maxDocumentSize = spiffebundle.MaxBundleSize

	// fetchTimeout bounds one fetch, from the dial to the last byte of the
	// body, redirects included (Fed rule 25).
	fetchTimeout = 30 * time.Second

	// dialTimeout and tlsHandshakeTimeout bound the connection set-up inside
	// fetchTimeout, so that an unreachable host fails early.
	dialTimeout         = 10 * time.Second
	tlsHandshakeTimeout = 10 * time.Second

	// maxResponseHeaderBytes bounds the response headers.
	maxResponseHeaderBytes = 64 << 10

	// maxRedirects is how many redirects one fetch follows (Fed rule 11).
	maxRedirects = 3
)

// FetchBundle retrieves the bundle of trustDomain from the bundle endpoint at
// url with one HTTPS GET, and parses the response body as a SPIFFE bundle
// document with spiffebundle.Parse (the document names no trust domain, so
// trustDomain is the one configured by the caller, never one derived from the
// URL: Fed rules 2 and 19).
//
// Without options the endpoint is authenticated with the https_web profile
// against the system roots; see WithWebPKIRoots and WithSPIFFEAuth for the
// other choices. TLS 1.2 is the minimum version, and no client certificate is
// ever presented.
//
// FetchBundle is stricter than go-spiffe, as the SPIFFE Federation standard
// asks:
//   - url must be an absolute https URL without userinfo (Fed rule 8);
//   - redirects are followed at most 3 times, only to https URLs without
//     userinfo, and every target is authenticated exactly as the original URL
//     (same roots or same bundle source and endpoint SPIFFE ID, Fed rules 11
//     and 15); the target is not remembered, so the next fetch starts again
//     from url;
//   - any status other than 200 OK is an error naming the status (Fed rule 25);
//   - a body larger than spiffebundle.MaxBundleSize (1 MiB) is refused
//     (Fed rule 25), as is a document spiffebundle.Parse rejects;
//   - one fetch, redirects included, takes at most 30 seconds; ctx may cut it
//     shorter and is honoured during the dial, the handshake and the read;
//   - proxies come from the environment (HTTPS_PROXY, NO_PROXY), as in
//     go-spiffe; requests use HTTP/1.1 and connections are never reused
//     between fetches, so every fetch is a full TLS handshake checked against
//     the current roots or bundle source.
//
// The response's Content-Type is not checked: servers only SHOULD set it
// (Fed rule 10).
//
// Every error message starts with "federation: ".
func FetchBundle(ctx context.Context, trustDomain spiffeid.TrustDomain, url string, option ...FetchOption) (*spiffebundle.Bundle, error) {
	f, err := newFetcher(trustDomain, url, option)
	if err != nil {
		return nil, err
	}
	return f.fetch(ctx)
}

// fetcher is one configured bundle endpoint relationship (Fed rule 1).
type fetcher struct {
	trustDomain spiffeid.TrustDomain
	url         string
	client      *http.Client
}

func newFetcher(trustDomain spiffeid.TrustDomain, rawURL string, options []FetchOption) (*fetcher, error) {
	if trustDomain.IsZero() {
		return nil, wrapFederationErr(errors.New("trust domain is required"))
	}
	if err := checkEndpointURL(rawURL); err != nil {
		return nil, wrapFederationErr(err)
	}
	opts := fetchOptions{}
	for _, o := range options {
		if o == nil {
			return nil, wrapFederationErr(errors.New("fetch option is nil"))
		}
		if err := o.apply(&opts); err != nil {
			return nil, wrapFederationErr(err)
		}
	}
	if opts.tlsConfig == nil {
		// https_web with the system roots (Fed rule 13).
		opts.tlsConfig = webPKIConfig(nil)
	}
	transport := &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            (&net.Dialer{Timeout: dialTimeout}).DialContext,
		TLSClientConfig:        opts.tlsConfig,
		TLSHandshakeTimeout:    tlsHandshakeTimeout,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
	}
	return &fetcher{
		trustDomain: trustDomain,
		url:         rawURL,
		client: &http.Client{
			Transport:     transport,
			CheckRedirect: checkRedirect,
			Timeout:       fetchTimeout,
		},
	}, nil
}

// checkEndpointURL enforces Fed rule 8: scheme https, a host, no userinfo.
func checkEndpointURL(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("invalid bundle endpoint URL: %w", err)
	}
	return checkURL(u)
}

func checkURL(u *url.URL) error {
	switch {
	case u.Scheme != "https":
		return fmt.Errorf("bundle endpoint URL scheme must be https, not %q", u.Scheme)
	case u.User != nil:
		return errors.New("bundle endpoint URL must not contain userinfo")
	case u.Host == "":
		return errors.New("bundle endpoint URL has no host")
	}
	return nil
}

// checkRedirect allows a redirect only to a valid endpoint URL (Fed rule 11).
// The target is reached through the same transport, hence with the same TLS
// authentication.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if err := checkURL(req.URL); err != nil {
		return fmt.Errorf("refusing redirect: %w", err)
	}
	return nil
}

func (f *fetcher) fetch(ctx context.Context) (*spiffebundle.Bundle, error) {
	request, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, http.NoBody)
	if err != nil {
		return nil, wrapFederationErr(fmt.Errorf("could not create request: %w", err))
	}
	request.Header.Set("Accept", "application/json")
	response, err := f.client.Do(request)
	if err != nil {
		return nil, wrapFederationErr(fmt.Errorf("could not GET bundle: %w", err))
	}
	defer response.Body.Close()
	return readBundle(f.trustDomain, response)
}

// readBundle checks the status of an endpoint's response and parses its body,
// read up to the size limit, as the bundle of trustDomain (Fed rules 19, 25).
func readBundle(trustDomain spiffeid.TrustDomain, response *http.Response) (*spiffebundle.Bundle, error) {
	if response.StatusCode != http.StatusOK {
		return nil, wrapFederationErr(fmt.Errorf("bundle endpoint answered %q", response.Status))
	}
	body, err := io.ReadAll(io.LimitReader(response.Body, maxDocumentSize+1))
	if err != nil {
		return nil, wrapFederationErr(fmt.Errorf("could not read bundle: %w", err))
	}
	if len(body) > maxDocumentSize {
		return nil, wrapFederationErr(fmt.Errorf("bundle document is larger than %d bytes", maxDocumentSize))
	}
	bundle, err := spiffebundle.Parse(trustDomain, body)
	if err != nil {
		return nil, wrapFederationErr(err)
	}
	return bundle, nil
}

func wrapFederationErr(err error) error {
	return fmt.Errorf("federation: %w", err)
}
