package kit

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// spiffeValidator is the name of Envoy's SPIFFE certificate validator.
const spiffeValidator = "envoy.tls.cert_validator.spiffe"

// SDSConfig says which SDS endpoint to check.
type SDSConfig struct {
	// Addr is the endpoint: unix:///PATH or tcp://IP:PORT (or npipe:NAME
	// on Windows), usually the Workload API's.
	Addr string
	// Timeout bounds every call; zero means DefaultTimeout.
	Timeout time.Duration
}

// CheckSDS checks the Secret Discovery Service (xDS v3) served at
// cfg.Addr with the resource names SPIRE documents (SDS rules 1 to 5),
// and the X509 rules on the SVIDs and bundles it sends. It only calls
// FetchSecrets, each call bounded by cfg.Timeout. It refuses to run when
// the address cannot be read, or when "default" cannot be fetched at all
// (no SDS there, or this caller has no identity).
func CheckSDS(ctx context.Context, cfg SDSConfig) (*Report, error) {
	addr, err := parseEndpointAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	conn, err := addr.newClient(cfg.Addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	s := &sdsCheck{cfg: cfg, client: secretv3.NewSecretDiscoveryServiceClient(conn), r: NewReport(ModeSDS, cfg.Addr)}
	secrets, err := s.fetch(ctx, nil, "default")
	if err != nil {
		return nil, fmt.Errorf("kit: %s: cannot fetch the SDS resource \"default\" there: %s; refusing to check it", cfg.Addr, describe(err))
	}
	id := s.checkCertificate("SDS rule 1", "default", secrets)
	if id.IsZero() {
		s.r.na("SDS rule 2", "SPIFFE ID", "no default X509-SVID")
		s.r.na("SDS rule 4", "trust domain", "no default X509-SVID")
	} else {
		secrets, err = s.fetch(ctx, nil, id.String())
		if err != nil {
			s.r.add("SDS rule 2", id.String(), false, "%s", describe(err))
		} else if got := s.checkCertificate("SDS rule 2", id.String(), secrets); got != id {
			s.r.add("SDS rule 2", id.String(), false, "the certificate is of %q", got)
		}
	}
	secrets, err = s.fetch(ctx, nil, "ROOTCA")
	s.checkValidation("SDS rule 3", "ROOTCA", secrets, err)
	if !id.IsZero() {
		td := id.TrustDomain().IDString()
		secrets, err = s.fetch(ctx, nil, td)
		s.checkValidation("SDS rule 4", td, secrets, err)
	}
	node := &corev3.Node{Id: "spiffe-conformance", UserAgentName: "envoy", UserAgentVersionType: &corev3.Node_UserAgentBuildVersion{
		UserAgentBuildVersion: &corev3.BuildVersion{Version: &typev3.SemanticVersion{MajorNumber: 1, MinorNumber: 18}},
	}}
	secrets, err = s.fetch(ctx, node, "ALL")
	s.checkAll(id, secrets, err)
	s.r.Finish()
	return s.r, nil
}

// sdsCheck is one run of CheckSDS.
type sdsCheck struct {
	cfg    SDSConfig
	client secretv3.SecretDiscoveryServiceClient
	r      *Report
}

// fetch calls FetchSecrets for one name and returns the secrets.
func (s *sdsCheck) fetch(ctx context.Context, node *corev3.Node, name string) ([]*tlsv3.Secret, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	resp, err := s.client.FetchSecrets(ctx, &discoveryv3.DiscoveryRequest{Node: node, ResourceNames: []string{name}})
	if err != nil {
		return nil, err
	}
	var out []*tlsv3.Secret
	for _, any := range resp.GetResources() {
		secret := &tlsv3.Secret{}
		if err := any.UnmarshalTo(secret); err != nil {
			return nil, fmt.Errorf("a resource of type %s is not a Secret: %w", any.GetTypeUrl(), err)
		}
		out = append(out, secret)
	}
	return out, nil
}

// checkCertificate checks a tls_certificate secret named name and the
// X509 rules on it, and returns its leaf's SPIFFE ID.
func (s *sdsCheck) checkCertificate(rule, name string, secrets []*tlsv3.Secret) spiffeid.ID {
	if len(secrets) != 1 || secrets[0].GetName() != name || secrets[0].GetTlsCertificate() == nil {
		s.r.add(rule, name, false, "%d secrets, want one tls_certificate named %q", len(secrets), name)
		return spiffeid.ID{}
	}
	tc := secrets[0].GetTlsCertificate()
	chain, err := pemCertificates(tc.GetCertificateChain().GetInlineBytes())
	if err != nil {
		s.r.add(rule, name, false, "certificate_chain: %v", err)
		return spiffeid.ID{}
	}
	block, _ := pem.Decode(tc.GetPrivateKey().GetInlineBytes())
	if block == nil || block.Type != "PRIVATE KEY" {
		s.r.add(rule, name, false, "private_key is not a PEM PRIVATE KEY (PKCS#8) block")
		return spiffeid.ID{}
	}
	s.r.add(rule, name, true, "a tls_certificate of %d PEM certificates and a PKCS#8 key", len(chain))
	return s.r.CheckX509SVID(X509SVID{Chain: chain, Key: block.Bytes, Name: "SDS " + name}, time.Now())
}

// checkValidation checks a validation_context secret with trusted_ca, and
// the X509 rules of its authorities.
func (s *sdsCheck) checkValidation(rule, name string, secrets []*tlsv3.Secret, err error) {
	if err != nil {
		s.r.add(rule, name, false, "%s", describe(err))
		return
	}
	if len(secrets) != 1 || secrets[0].GetName() != name || secrets[0].GetValidationContext() == nil {
		s.r.add(rule, name, false, "%d secrets, want one validation_context named %q", len(secrets), name)
		return
	}
	vc := secrets[0].GetValidationContext()
	if cv := vc.GetCustomValidatorConfig(); cv != nil && len(vc.GetTrustedCa().GetInlineBytes()) == 0 {
		// The form SPIRE sends when it does not know the Envoy version:
		// the SPIFFE validator, holding the one trust domain.
		config := &tlsv3.SPIFFECertValidatorConfig{}
		if cv.GetName() != spiffeValidator || cv.GetTypedConfig().UnmarshalTo(config) != nil || len(config.GetTrustDomains()) != 1 {
			s.r.add(rule, name, false, "custom validator %q whose config is not a SPIFFECertValidatorConfig of one trust domain", cv.GetName())
			return
		}
		td := config.GetTrustDomains()[0]
		roots, err := pemCertificates(td.GetTrustBundle().GetInlineBytes())
		if err != nil {
			s.r.add(rule, name, false, "the SPIFFE validator's trust_bundle of %q: %v", td.GetName(), err)
			return
		}
		s.r.add(rule, name, true, "a validation_context with the SPIFFE validator: trust domain %q, %d CA certificates", td.GetName(), len(roots))
		s.r.CheckX509Authorities("SDS "+name, roots)
		return
	}
	roots, err := pemCertificates(vc.GetTrustedCa().GetInlineBytes())
	if err != nil {
		s.r.add(rule, name, false, "trusted_ca: %v", err)
		return
	}
	s.r.add(rule, name, true, "a validation_context with trusted_ca: %d CA certificates", len(roots))
	s.r.CheckX509Authorities("SDS "+name, roots)
}

// checkAll checks SDS rule 5.
func (s *sdsCheck) checkAll(id spiffeid.ID, secrets []*tlsv3.Secret, err error) {
	if err != nil {
		s.r.add("SDS rule 5", "ALL", false, "%s", describe(err))
		return
	}
	if len(secrets) != 1 || secrets[0].GetName() != "ALL" {
		s.r.add("SDS rule 5", "ALL", false, "%d secrets, want one named ALL", len(secrets))
		return
	}
	cv := secrets[0].GetValidationContext().GetCustomValidatorConfig()
	if cv.GetName() != spiffeValidator {
		s.r.add("SDS rule 5", "ALL", false, "custom validator %q, want %s", cv.GetName(), spiffeValidator)
		return
	}
	config := &tlsv3.SPIFFECertValidatorConfig{}
	if err := cv.GetTypedConfig().UnmarshalTo(config); err != nil {
		s.r.add("SDS rule 5", "ALL", false, "the validator's config: %v", err)
		return
	}
	var names []string
	hasOwn := false
	for _, td := range config.GetTrustDomains() {
		names = append(names, td.GetName())
		hasOwn = hasOwn || (!id.IsZero() && td.GetName() == id.TrustDomain().Name())
		roots, err := pemCertificates(td.GetTrustBundle().GetInlineBytes())
		if err != nil {
			s.r.add("SDS rule 5", "ALL "+td.GetName(), false, "trust_bundle: %v", err)
			continue
		}
		s.r.CheckX509Authorities("SDS ALL "+td.GetName(), roots)
	}
	s.r.add("SDS rule 5", "ALL", len(names) > 0 && (id.IsZero() || hasOwn), "SPIFFE validator of trust domains %q", names)
}

// pemCertificates reads PEM CERTIFICATE blocks, at least one.
func pemCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("a PEM %q block", block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, cert)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no PEM certificate")
	}
	return out, nil
}
