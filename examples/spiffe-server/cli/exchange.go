package cli

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"golang.org/x/time/rate"

	"github.com/spiffekit/spiffekit/exchange"
	"github.com/spiffekit/spiffekit/launch"
	issuing "github.com/spiffekit/spiffekit/server"
)

// tokenExchangeKey is where the configuration file holds the token
// exchange endpoint's settings.
const tokenExchangeKey = "token_exchange"

const tokenExchangeHelp = `the token exchange endpoint (OAuth 2.0 Token Exchange, RFC 8693: an identity token of a trusted OIDC issuer in, an SVID out):
{"bind_address": "<host:port>" (required), "cert_file": "<PEM>", "key_file": "<PEM>" (both or neither; neither presents the server's own X509-SVID),
"issuers": [{"url": "<issuer identifier, https>", "audience": "<the aud its tokens must hold>", "ca_file": "<PEM roots of its HTTPS; default: the system's>"}] (required),
"clock_skew": "30s", "rate": 200, "burst": 400, "subject_rate": 1, "subject_burst": 10}; absent: off (see README.md)`

// tokenExchangeConfig is the token_exchange part of the configuration
// file.
type tokenExchangeConfig struct {
	// BindAddress: the endpoint's listener (HTTPS, path /token).
	BindAddress string `json:"bind_address"`
	// CertFile, KeyFile: the endpoint's certificate and key, read again
	// when they change; none: the server's own X509-SVID.
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
	// Issuers: the trusted issuers.
	Issuers []tokenExchangeIssuer `json:"issuers"`
	// ClockSkew: the leeway given to exp, nbf and iat (a Go duration).
	ClockSkew string `json:"clock_skew"`
	// Rate, Burst: exchanges verified per second, all issuers together.
	Rate  float64 `json:"rate"`
	Burst int     `json:"burst"`
	// SubjectRate, SubjectBurst: SVIDs per second for one subject.
	SubjectRate  float64 `json:"subject_rate"`
	SubjectBurst int     `json:"subject_burst"`
}

// tokenExchangeIssuer is one trusted issuer.
type tokenExchangeIssuer struct {
	// URL: the issuer identifier, its tokens' iss.
	URL string `json:"url"`
	// Audience: what its tokens' aud must hold.
	Audience string `json:"audience"`
	// CAFile: PEM roots its HTTPS certificate must chain to.
	CAFile string `json:"ca_file"`
}

// newTokenExchange returns the server's token exchange settings of c,
// reading its files. Without the launcher API (launcher), c needs an
// issuer.
func newTokenExchange(c *tokenExchangeConfig, launcher bool, log *slog.Logger) (*issuing.TokenExchange, error) {
	if c.BindAddress == "" {
		return nil, usagef("%s.bind_address is required", tokenExchangeKey)
	}
	if len(c.Issuers) == 0 && !launcher {
		return nil, usagef("%s.issuers needs at least one issuer (or the %s section, for launch handles alone)", tokenExchangeKey, launcherKey)
	}
	te := &issuing.TokenExchange{Bind: c.BindAddress}
	if c.CertFile != "" || c.KeyFile != "" {
		if c.CertFile == "" || c.KeyFile == "" {
			return nil, usagef("%s needs both cert_file and key_file, or neither", tokenExchangeKey)
		}
		kp, err := newKeyPairReloader(c.CertFile, c.KeyFile, "token exchange endpoint", log.With("component", "token_exchange"))
		if err != nil {
			return nil, err
		}
		te.Certificate = kp.getCertificate
	}
	if c.ClockSkew != "" {
		d, err := time.ParseDuration(c.ClockSkew)
		if err != nil {
			return nil, usagef("%s.clock_skew: %v", tokenExchangeKey, err)
		}
		te.Endpoint.ClockSkew = d
	}
	te.Endpoint.Rate, te.Endpoint.Burst = rate.Limit(c.Rate), c.Burst
	te.Endpoint.SubjectRate, te.Endpoint.SubjectBurst = rate.Limit(c.SubjectRate), c.SubjectBurst
	for i, is := range c.Issuers {
		ei := exchange.Issuer{URL: is.URL, Audience: is.Audience}
		if is.CAFile != "" {
			roots, err := loadRoots(is.CAFile)
			if err != nil {
				return nil, fmt.Errorf("%s.issuers[%d].ca_file: %w", tokenExchangeKey, i, err)
			}
			ei.Client = &http.Client{
				Timeout:   10 * time.Second,
				Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}},
			}
		}
		te.Endpoint.Issuers = append(te.Endpoint.Issuers, ei)
	}
	check := te.Endpoint
	if launcher {
		// The server's launcher redeems the handles: any non-nil
		// redeemer stands for it here.
		check.Handles = (*launch.Server)(nil)
	}
	if err := check.CheckSettings(); err != nil {
		return nil, usagef("%s: %v", tokenExchangeKey, err)
	}
	return te, nil
}
