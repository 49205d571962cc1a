package k8s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxPodListSize bounds the kubelet's answer to GET /pods, in bytes. A
// pod is a few KiB to a few tens of KiB of JSON; a node runs at most a few
// hundred.
const MaxPodListSize = 64 << 20

// maxErrorBody bounds how much of an error answer is quoted.
const maxErrorBody = 256

// kubelet is a client of the kubelet's GET /pods.
type kubelet struct {
	url     string // "<scheme>://<host>:<port>/pods"
	client  *http.Client
	token   func(context.Context) (string, error)
	timeout time.Duration
}

func newKubelet(cfg *Config, timeout time.Duration) (*kubelet, error) {
	u, err := url.Parse(cfg.KubeletURL)
	if err != nil {
		return nil, fmt.Errorf("k8s: KubeletURL: %w", err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("k8s: KubeletURL %q: want an https:// or http:// URL", cfg.KubeletURL)
	case u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("k8s: KubeletURL %q: want the scheme, host and port only", cfg.KubeletURL)
	case u.Scheme == "http" && cfg.Token != nil:
		// The read-only port takes no credentials, and a token sent in
		// the clear could be read on the way.
		return nil, errors.New("k8s: a Token is sent to an https:// KubeletURL only")
	case u.Scheme == "https" && cfg.RootCAs == nil && !cfg.InsecureSkipVerify:
		return nil, errors.New("k8s: an https:// KubeletURL needs RootCAs, or InsecureSkipVerify")
	}
	transport := &http.Transport{
		// No proxy from the environment: the kubelet is on this node,
		// and the token must not go anywhere else.
		Proxy: nil,
		// A connection per request: the attestor holds nothing between
		// attestations and needs no closing, and requests are rare (at
		// most one per Config.MaxStaleness).
		DisableKeepAlives:   true,
		TLSHandshakeTimeout: timeout,
	}
	if u.Scheme == "https" {
		transport.TLSClientConfig = clientTLS(cfg.RootCAs, cfg.ServerName, cfg.InsecureSkipVerify)
	}
	return &kubelet{
		url:     u.Scheme + "://" + u.Host + "/pods",
		client:  &http.Client{Transport: transport},
		token:   cfg.Token,
		timeout: timeout,
	}, nil
}

// clientTLS returns the TLS configuration that verifies the kubelet's
// serving certificate: its chain up to roots, and its name only when
// serverName is set. The kubelet's certificate names the node, while the
// attestor often reaches it at 127.0.0.1. The check runs in
// VerifyConnection, which resumed sessions run too.
func clientTLS(roots *x509.CertPool, serverName string, insecure bool) *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The standard check is replaced by VerifyConnection below,
		// which can leave the name out.
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection unless insecure is set
	}
	if insecure {
		return cfg
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the kubelet presented no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
			Roots:         roots,
			Intermediates: inter,
			DNSName:       serverName,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		return err
	}
	return cfg
}

// pods fetches the kubelet's list of the node's pods.
func (k *kubelet) pods(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	if k.token != nil {
		token, err := k.token(ctx)
		if err != nil {
			return nil, fmt.Errorf("the token for the kubelet: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxPodListSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading the kubelet's answer: %w", err)
	}
	if len(data) > MaxPodListSize {
		return nil, fmt.Errorf("the kubelet's pod list is larger than %d bytes", MaxPodListSize)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return data, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return nil, fmt.Errorf("the kubelet answered %s (the token must be valid and allowed to get nodes/proxy): %s", resp.Status, quote(data))
	}
	return nil, fmt.Errorf("the kubelet answered %s: %s", resp.Status, quote(data))
}

// quote returns the start of an error answer, on one line.
func quote(body []byte) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(body), "?")), " ")
	if len(s) > maxErrorBody {
		s = s[:maxErrorBody]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "..."
	}
	if s == "" {
		return "no message"
	}
	return s
}
