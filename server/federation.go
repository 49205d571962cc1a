package server

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/spiffekit/spiffekit/federation"
	"github.com/spiffekit/spiffekit/logger"
	"github.com/spiffekit/spiffekit/server/internal/fedpoll"
	"github.com/spiffekit/spiffekit/server/internal/httpsendpoint"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Defaults of the federation settings of Config.
const (
	// DefaultFederationRefresh is the longest time between two polls of a
	// bundle endpoint (Fed rule 21).
	DefaultFederationRefresh = 5 * time.Minute
	// DefaultFederationTimeout bounds one fetch from a bundle endpoint
	// (Fed rule 25).
	DefaultFederationTimeout = 30 * time.Second
	// DefaultFederationConcurrency bounds the fetches from bundle
	// endpoints under way at once, in each of its two pools
	// (Config.FederationConcurrency).
	DefaultFederationConcurrency = 32
)

// A Profile is how a bundle endpoint authenticates itself to the servers
// that fetch from it (Fed rule 6). Its values are the profile names of the
// SPIFFE Federation standard, so that a name read from a file converts
// with Profile(name); New refuses any other. It is the type of the
// server's federation poller, under this name.
type Profile = fedpoll.Profile

// Bundle endpoint profiles (Fed rule 6).
const (
	// ProfileHTTPSSPIFFE authenticates a bundle endpoint with an X509-SVID
	// (Fed rules 14-18).
	ProfileHTTPSSPIFFE = fedpoll.ProfileHTTPSSPIFFE
	// ProfileHTTPSWeb authenticates a bundle endpoint with a Web PKI
	// certificate (Fed rules 12-13).
	ProfileHTTPSWeb = fedpoll.ProfileHTTPSWeb
)

// A Relationship is a federation relationship: the server polls the bundle
// endpoint at URL for the bundle of TrustDomain and keeps it in the
// datastore, from where it reaches the agents and the workloads whose
// entries federate with TrustDomain (Fed rule 5). A relationship is
// one-way (Fed rule 4). Every parameter is given explicitly; none is
// derived from another (Fed rule 2). Its fields, in short (`go doc
// github.com/spiffekit/spiffekit/server/internal/fedpoll.Relationship` has
// them in full):
//   - TrustDomain: the foreign trust domain. Required; never the server's
//     own.
//   - URL: the bundle endpoint, https, without user information (Fed rule
//     8). Required.
//   - Profile: ProfileHTTPSSPIFFE or ProfileHTTPSWeb. Required.
//   - EndpointSPIFFEID: the SPIFFE ID the endpoint's X509-SVID must carry.
//     Required for ProfileHTTPSSPIFFE, refused for ProfileHTTPSWeb.
//   - BootstrapBundle: a bundle of TrustDomain that authenticates the
//     first fetch from a self-serving https_spiffe endpoint (Fed rules 17
//     and 18), unless Stores.Bundles holds one already.
//   - WebPKIRoots: the roots an https_web endpoint's certificate must chain
//     to; nil means the system roots. Refused for ProfileHTTPSSPIFFE.
type Relationship = fedpoll.Relationship

// FederationStats counts the fetches from the bundle endpoint of one
// federation relationship since the server started: TrustDomain, the
// foreign trust domain; Fetches and Failures, the fetches that returned a
// valid bundle and those that did not; LastFetch, when the last good one
// ended (zero if none has). It is the type of the server's federation
// poller, under this name.
type FederationStats = fedpoll.Stats

// validateRelationships checks every relationship strictly
// (fedpoll.CheckAll); stored says whether Stores.Bundles holds a bundle of
// a trust domain. Its errors wrap ErrInvalidConfig, but for a failure of
// stored.
func validateRelationships(own spiffeid.TrustDomain, rels []Relationship, stored func(spiffeid.TrustDomain) (bool, error)) ([]fedpoll.Checked, error) {
	checked, err := fedpoll.CheckAll(own, rels, stored)
	if se, ok := errors.AsType[fedpoll.StoreError](err); ok {
		return nil, se.Err
	}
	if err != nil {
		return nil, invalidf("%w", err)
	}
	return checked, nil
}

// newBundleEndpoint binds the bundle endpoint of s's trust domain,
// authenticated as cfg.FederationProfile says.
func (s *Server) newBundleEndpoint() (*httpsendpoint.Endpoint, error) {
	// Fed rule 15: with https_spiffe, the server's own X509-SVID, minted
	// and renewed by the node API (re-minted when the active CA changes).
	getCert := s.node.TLSConfig().GetCertificate
	if s.cfg.FederationProfile == ProfileHTTPSWeb {
		// Fed rule 12: a Web PKI certificate, which the caller may renew
		// at any time.
		getCert = s.cfg.FederationCertificate
	}
	log := s.log.With("component", "bundle_endpoint")
	h, err := federation.NewHandler(s.cfg.TrustDomain, s.trust, federation.WithLogger(logger.Slog(log)))
	if err != nil {
		return nil, fmt.Errorf("server: bundle endpoint: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/{$}", h) // Fed rule 10: the operator's path is "/"
	return httpsendpoint.Listen(s.cfg.FederationBind, "bundle endpoint", mux, getCert, log)
}
