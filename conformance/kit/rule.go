package kit

import "sort"

// Level is how strongly a standard asks for what a rule checks: the
// RFC 2119 keywords of the SPIFFE standards.
type Level string

// The levels of the standards' rules.
const (
	Must   Level = "MUST"
	Should Level = "SHOULD"
	May    Level = "MAY"
)

// Mode is what the kit looks at: a file given to it, or a live endpoint.
type Mode string

// The modes of the kit.
const (
	// ModeX509 checks an X509-SVID (PEM certificates, and optionally its
	// key and the bundle of its trust domain).
	ModeX509 Mode = "x509"
	// ModeBundle checks a SPIFFE bundle document (a JWK Set), and the
	// sequence between two versions of one.
	ModeBundle Mode = "bundle"
	// ModeJWT checks a JWT-SVID, and its signature when given the keys.
	ModeJWT Mode = "jwt"
	// ModeWIT checks a WIT-SVID, its signature when given the WIT keys,
	// and its private key when given one.
	ModeWIT Mode = "wit"
	// ModeWorkload checks a live Workload API endpoint: the endpoint's
	// own rules, and the X509 and JWT rules on everything it serves.
	ModeWorkload Mode = "workload"
	// ModeBundleEndpoint checks a live bundle endpoint (https_web or
	// https_spiffe): its TLS and HTTP rules, and the bundle rules on what
	// it serves.
	ModeBundleEndpoint Mode = "bundle-endpoint"
	// ModeSDS checks the Secret Discovery Service an endpoint serves
	// beside the Workload API, with the resource names SPIRE documents.
	ModeSDS Mode = "sds"
	// ModeOIDC checks a live OpenID Connect discovery endpoint: the
	// discovery document, the JWK Set it points to, and the keys kept
	// across a rotation.
	ModeOIDC Mode = "oidc"
)

// Rule is one requirement of a SPIFFE standard, as the kit checks it.
type Rule struct {
	// ID names the rule as the project's digest of the standards numbers
	// it: "X509 rule 4", "WE rule 6". A trailing letter ("X509 rule 9b")
	// splits a rule whose parts carry different levels, or are checked apart.
	ID string
	// Section is the standard and section the rule comes from.
	Section string
	// Level is the rule's RFC 2119 keyword.
	Level Level
	// Text says what the kit checks, in one sentence.
	Text string
	// Modes are the modes that check the rule.
	Modes []Mode
}

// Standards' documents, for Rule.Section.
const (
	stdX509   = "X509-SVID"
	stdJWT    = "JWT-SVID"
	stdBundle = "SPIFFE Trust Domain and Bundle"
	stdWE     = "SPIFFE Workload Endpoint"
	stdWAPI   = "SPIFFE Workload API"
	stdFed    = "SPIFFE Federation"
	stdSDS    = "SPIRE agent's SDS (documented by SPIRE; not a SPIFFE standard)"
	stdOIDC   = "OpenID Connect Discovery 1.0 (not a SPIFFE standard)"
	stdJWK    = "RFC 7517 JSON Web Key (not a SPIFFE standard)"
	stdWIT    = "WIT-SVID (incubating; draft-ietf-wimse-workload-creds)"
	stdWITAPI = stdWAPI + " §7 WIT-SVID profile (incubating)"
)

var (
	offX509   = []Mode{ModeX509, ModeWorkload, ModeBundleEndpoint, ModeSDS}
	sdsOnly   = []Mode{ModeSDS}
	offBundle = []Mode{ModeBundle, ModeBundleEndpoint}
	fed       = []Mode{ModeBundleEndpoint}
	offJWT    = []Mode{ModeJWT, ModeWorkload}
	live      = []Mode{ModeWorkload}
	x509Both  = []Mode{ModeX509, ModeBundle, ModeWorkload, ModeBundleEndpoint, ModeSDS}
	jwtKeys   = []Mode{ModeBundle, ModeJWT, ModeWorkload, ModeBundleEndpoint}
	jwksKeys  = []Mode{ModeBundle, ModeJWT, ModeWorkload, ModeBundleEndpoint, ModeOIDC}
	oidcOnly  = []Mode{ModeOIDC}
	offWIT    = []Mode{ModeWIT, ModeWorkload}
)

// rules is the registry: every rule the kit checks. It is never changed
// after initialization.
var rules = []Rule{
	// X509-SVID contents.
	{"X509 rule 1", stdX509 + " §2 SPIFFE ID", Must, "A leaf carries exactly one URI SAN, and it is a SPIFFE ID.", offX509},
	{"X509 rule 2", stdX509 + " §3 SVID Hierarchy", Must, "A leaf's SPIFFE ID has a non-root path.", offX509},
	{"X509 rule 3", stdX509 + " §2 SPIFFE ID (RFC 5280 §4.1.2.6)", Must, "A certificate with an empty subject marks its SAN extension critical.", offX509},
	{"X509 rule 4", stdX509 + " §4.1 Basic Constraints", Must, "A leaf has cA false; a signing certificate has cA true.", x509Both},
	{"X509 rule 6", stdX509 + " §4.3 Key Usage", Must, "Every certificate has a critical keyUsage extension.", x509Both},
	{"X509 rule 7", stdX509 + " §4.3 Key Usage", Must, "A signing certificate sets keyCertSign.", x509Both},
	{"X509 rule 8", stdX509 + " §4.3 Key Usage", Must, "A leaf sets digitalSignature and neither keyCertSign nor cRLSign.", offX509},
	{"X509 rule 9a", stdX509 + " §4.4 Extended Key Usage", Should, "A leaf carries the extKeyUsage extension.", offX509},
	{"X509 rule 9b", stdX509 + " §4.4 Extended Key Usage", Must, "A leaf's extKeyUsage, when present, holds both serverAuth and clientAuth.", offX509},
	{"X509 rule 11a", stdX509 + " §3 SVID Hierarchy", Should, "A signing certificate carries a SPIFFE ID (a URI SAN).", x509Both},
	{"X509 rule 11b", stdX509 + " §3 SVID Hierarchy", Must, "A signing certificate's SPIFFE ID, if any, has no path.", x509Both},
	{"X509 rule 14", stdX509 + " §6.1 Publishing a SPIFFE Bundle", Should, "A root placed in a bundle is self-signed.", []Mode{ModeBundle, ModeWorkload, ModeBundleEndpoint, ModeSDS}},
	{"X509 rule 15", stdX509 + " §5 Validation; " + stdWAPI + " X509SVID", Must, "The chain is ordered leaf first, each certificate signed by the next; the key is unencrypted PKCS#8 and matches the leaf.", offX509},
	{"X509 rule 21", stdX509 + " §5.1 Path Validation", Must, "The chain validates (RFC 5280) to the X.509 bundle of the leaf's trust domain, at the current time.", offX509},

	// The SPIFFE bundle document.
	{"Bundle rule 7", stdBundle + " §4.1 keys", Must, "The document has a keys array.", offBundle},
	{"Bundle rule 8a", stdBundle + " §4.2 spiffe_sequence", Should, "The document has spiffe_sequence, a non-negative integer.", offBundle},
	{"Bundle rule 8b", stdBundle + " §4.2 spiffe_sequence", Must, "spiffe_sequence changes, upwards, whenever the content changes (between two documents, or two fetches of an endpoint).", offBundle},
	{"Bundle rule 9", stdBundle + " §4.3 spiffe_refresh_hint", Should, "The document has spiffe_refresh_hint, a positive integer number of seconds.", offBundle},
	{"Bundle rule 12", stdBundle + " §4.4 JWK (RFC 7517 §4.1)", Must, "Every JWK sets kty.", jwksKeys},
	{"Bundle rule 13", stdBundle + " §4.4.1 use", Must, "Every JWK of a bundle document sets use to x509-svid, jwt-svid or wit-svid.", offBundle},
	{"Bundle rule 14", stdBundle + " §4.4 JWK", Should, "A JWK carries no parameter beyond its key type's, use, kid and x5c (and never a private key member).", jwtKeys},
	{"Bundle rule 15", stdX509 + " §6.1 Publishing a SPIFFE Bundle", Must, "An x509-svid JWK has no kid and exactly one x5c certificate, whose public key it describes.", offBundle},
	{"Bundle rule 16", stdJWT + " §6.1 Publishing a SPIFFE Bundle", Must, "A jwt-svid key sets kid, and no two keys share one.", jwksKeys},
	{"Bundle rule 17", "WIT-SVID §6 (incubating)", Must, "A wit-svid key sets a kid unique across the whole bundle.", offBundle},

	// JWT-SVID.
	{"JWT rule 1", stdJWT + " §3 JWT-SVID Format", Must, "The token is a JWS in compact serialization: three base64url parts.", offJWT},
	{"JWT rule 2", stdJWT + " §2 JOSE Header", Must, "The header holds no parameter but alg, kid and typ.", offJWT},
	{"JWT rule 3", stdJWT + " §2.1 Algorithm", Must, "alg is one of RS256/384/512, ES256/384/512, PS256/384/512.", offJWT},
	{"JWT rule 4", stdJWT + " §2.2 Key ID", May, "The header sets kid (optional in the standard; go-spiffe and SPIRE's validators require it).", offJWT},
	{"JWT rule 5", stdJWT + " §2.3 Type", Must, "typ, when present, is JWT or JOSE.", offJWT},
	{"JWT rule 6", stdJWT + " §3.1 Subject", Must, "sub is present and is a SPIFFE ID.", offJWT},
	{"JWT rule 7a", stdJWT + " §3.2 Audience", Must, "aud is present with at least one value (and holds the expected audience, when one is given).", offJWT},
	{"JWT rule 7b", stdJWT + " §3.2 Audience", Should, "aud holds a single value.", offJWT},
	{"JWT rule 8", stdJWT + " §3.3 Expiration Time", Must, "exp is present, a number, and not in the past.", offJWT},
	{"JWT step S7", stdJWT + " §4 Token Validation", Must, "The signature verifies with a key of the sub's trust domain that fits alg (by kid when set).", offJWT},

	// WIT-SVID, when the Workload API offers the WIT profile.
	{"WIT rule 1", stdWIT + ", JOSE header kid", Must, "The header sets kid, a non-empty string.", offWIT},
	{"WIT rule 2", stdWIT + ", JOSE header typ", Must, "The header's typ is wit+jwt.", offWIT},
	{"WIT rule 3", stdWIT + ", JOSE header alg", Must, "alg is one of RS256/384/512, ES256/384/512, PS256/384/512.", offWIT},
	{"WIT rule 4", stdWIT + ", JOSE header", Should, "The header holds no parameter but alg, kid and typ.", offWIT},
	{"WIT rule 5", stdWIT + ", claim sub", Must, "sub is present and is a SPIFFE ID.", offWIT},
	{"WIT rule 6", stdWIT + ", claim cnf (RFC 7800 §3.2)", Must, "cnf.jwk is present and a public key (no private member), its alg one of those of WIT rule 3 and fitting the key.", offWIT},
	{"WIT rule 7", stdWIT + ", claim exp", Must, "exp is present, a number, and not in the past.", offWIT},
	{"WIT rule 8", stdWIT + ", claim nbf", Must, "nbf, when present, is a number not in the future (with go-spiffe's minute of leeway).", offWIT},
	{"WIT rule 11", stdWIT + ", claim iss", Should, "iss, when present, is not an https URL (a value usable for OpenID Connect discovery).", offWIT},
	{"WIT rule 12", stdWIT + ", claim aud", Must, "aud is absent: a WIT-SVID is not a bearer token.", offWIT},
	{"WIT rule 13", stdWIT + ", issuance", Must, "The token is a JWS in compact serialization: three base64url parts, a JSON header and a JSON claims set.", offWIT},
	{"WIT rule 16a", stdWIT + " §6 (bundle)", Must, "Every key of a WIT bundle sets a kid, unique within it.", live},
	{"WIT rule 16b", stdWIT + ", validation", Must, "The signature verifies with the key the header's kid names in the WIT bundle of sub's trust domain.", offWIT},
	{"WIT rule 17a", stdWITAPI + ", FetchWITSVID", Must, "FetchWITSVID sends at least one WITSVID with spiffe_id, wit_svid and wit_svid_key set, spiffe_id equal to the token's sub.", live},
	{"WIT rule 17b", stdWITAPI + ", FetchWITBundles", Must, "FetchWITBundles is served with FetchWITSVID and sends JWK Sets of WIT-SVID keys keyed spiffe://<td>, holding the endpoint's own trust domain.", live},
	{"WIT rule 17c", stdWITAPI + ", FetchWITSVID; " + stdWIT + ", proof of possession", Must, "wit_svid_key is a private JWK of the public key cnf.jwk binds (the key the workload proves possession of).", offWIT},

	// The Workload Endpoint.
	{"WE rule 2", stdWE + " §3 Transport", Must, "A TCP endpoint listens on a loopback or link-local address (elsewhere the network must authenticate callers, which the kit cannot see).", live},
	{"WE rule 4", stdWE + " §3 Transport", Must, "The endpoint serves plaintext gRPC: no TLS, no client credentials.", live},
	{"WE rule 6", stdWE + " §5 Authentication", Must, "A request without the workload.spiffe.io: true header, or with another value, is refused with InvalidArgument.", live},

	// The Workload API.
	{"WAPI rule 1", stdWAPI + " §3 Profiles", Must, "The X.509 and JWT profiles are served; the WIT profile, when absent, answers Unimplemented.", live},
	{"WAPI rule 4a", stdWAPI + " §4 Stream Responses", Must, "A stream's first message comes at once, and each later message is a complete state.", live},
	{"WAPI rule 6", stdWAPI + " §4 Mandatory Fields", Should, "A request whose mandatory field is empty is refused with InvalidArgument.", live},
	{"WAPI rule 8", stdWAPI + " §4 Hints", Must, "Non-empty hints are unique within a response (and at most 1024 bytes, SHOULD).", live},
	{"WAPI rule 10a", stdWAPI + " §5.2 FetchX509SVID", Must, "FetchX509SVID sends at least one X509SVID with spiffe_id, x509_svid, x509_svid_key and bundle set, spiffe_id equal to the leaf's URI SAN.", live},
	{"WAPI rule 10b", stdWAPI + " §5.2 FetchX509SVID", Should, "A caller entitled to no identity is refused with PermissionDenied.", live},
	{"WAPI rule 11", stdWAPI + " §5.2 FetchX509Bundles", Must, "FetchX509Bundles sends bundles keyed spiffe://<td>, holding the endpoint's own trust domain, each DER CA certificates.", live},
	{"WAPI rule 12", stdWAPI + " §6.2 FetchJWTSVID", Must, "FetchJWTSVID returns at least one token, for the requested audience, whose sub is the spiffe_id it is listed under.", live},
	{"WAPI rule 13", stdWAPI + " §6.2 FetchJWTBundles", Must, "FetchJWTBundles sends JWK Sets keyed spiffe://<td>, holding the endpoint's own trust domain, with only JWT-SVID keys.", live},
	{"WAPI rule 14", stdWAPI + " §6.2 ValidateJWTSVID", Must, "ValidateJWTSVID accepts a token it issued, returning its SPIFFE ID and claims, and refuses one whose signature was altered.", live},
	// Bundle endpoints.
	{"Fed rule 7", stdFed + ", Bundle Endpoint (Mozilla intermediate)", Must, "The endpoint negotiates TLS 1.2 or 1.3, with an AEAD cipher suite on 1.2, and refuses a TLS 1.1 handshake.", fed},
	{"Fed rule 8", stdFed + ", Bundle Endpoint URL", Must, "The endpoint URL is https, without userinfo.", fed},
	{"Fed rule 9", stdFed + ", Bundle Endpoint", Must, "The endpoint serves the bundle without client authentication.", fed},
	{"Fed rule 10a", stdFed + ", Serving the Bundle", Must, "A GET is answered 200 with the trust domain's bundle, a UTF-8 JSON document.", fed},
	{"Fed rule 10b", stdFed + ", Serving the Bundle", Should, "The answer's Content-Type is application/json.", fed},
	{"Fed rule 11a", stdFed + ", Redirects", Must, "A redirect's target is an https URL without userinfo, which passes the same authentication.", fed},
	{"Fed rule 11b", stdFed + ", Redirects", Should, "Redirects are temporary (302, 303, 307).", fed},
	{"Fed rule 12", stdFed + ", https_web", Must, "https_web: the server certificate chains to the trusted roots and names the URL's host.", fed},
	{"Fed rule 16", stdFed + ", https_spiffe", Must, "https_spiffe: the server presents an X509-SVID (the X509 rules) of the configured endpoint SPIFFE ID, valid against that ID's trust domain bundle.", fed},
	// SDS, as SPIRE's agent serves it.
	{"SDS rule 1", stdSDS + ": default", Must, `"default" is the caller's default X509-SVID as a tls_certificate: a PEM chain and its PEM PKCS#8 key.`, sdsOnly},
	{"SDS rule 2", stdSDS + ": SPIFFE ID", Must, "A SPIFFE ID the caller holds names that X509-SVID as a tls_certificate.", sdsOnly},
	{"SDS rule 3", stdSDS + ": ROOTCA", Must, `"ROOTCA" is the bundle of the caller's trust domain as a validation_context: trusted_ca (PEM), or the SPIFFE validator holding that trust domain.`, sdsOnly},
	{"SDS rule 4", stdSDS + ": trust domain", Must, "A trust domain's SPIFFE ID names that trust domain's bundle as a validation_context, in either form.", sdsOnly},
	{"SDS rule 5", stdSDS + ": ALL", Must, `To an Envoy of 1.18 or later, "ALL" is a validation_context whose envoy.tls.cert_validator.spiffe validator lists every trust domain the caller trusts, its own among them.`, sdsOnly},
	// OpenID Connect discovery, as a JWT-SVID issuer publishes its keys.
	{"OIDC rule 1", stdOIDC + " §4.1, §4.2", Must, "The issuer URL followed by /.well-known/openid-configuration answers a GET with 200 and a JSON object.", oidcOnly},
	{"OIDC rule 2", stdOIDC + " §4.2", Must, "The discovery document's Content-Type is application/json.", oidcOnly},
	{"OIDC rule 3", stdOIDC + " §4.3", Must, "The document's issuer is identical to the issuer URL it was fetched for.", oidcOnly},
	{"OIDC rule 4", stdOIDC + " §3 issuer, jwks_uri", Must, "issuer and jwks_uri are https URLs, the issuer without query or fragment (http on a loopback host: not applicable).", oidcOnly},
	{"OIDC rule 5a", stdOIDC + " §3 id_token_signing_alg_values_supported; " + stdJWT + " §2.1", Must, "id_token_signing_alg_values_supported is a non-empty array without none (a JWT-SVID is always signed).", oidcOnly},
	{"OIDC rule 5b", stdOIDC + " §3 id_token_signing_alg_values_supported", Must, "id_token_signing_alg_values_supported includes RS256.", oidcOnly},
	{"OIDC rule 6", stdOIDC + " §3 response_types_supported", Must, "response_types_supported is a non-empty array of strings.", oidcOnly},
	{"OIDC rule 7", stdOIDC + " §3 subject_types_supported", Must, "subject_types_supported is a non-empty array of public or pairwise.", oidcOnly},
	{"OIDC rule 8", stdOIDC + " §3 jwks_uri; " + stdJWK + " §5", Must, "jwks_uri answers a GET with 200 and a JWK Set: a JSON object with a keys array.", oidcOnly},
	{"OIDC rule 9", stdJWK + " §4.2 use", Must, "A key's use, when present, is sig.", oidcOnly},
	{"OIDC rule 10", stdJWK + " §4.4 alg (RFC 7518 §3.1)", Must, "A key's alg, when present, is a JWS algorithm of the key's type and curve.", oidcOnly},
	{"OIDC rule 11", stdJWK + " §9.2", Must, "No key carries a private or symmetric key member (d, p, q, dp, dq, qi, oth, k).", oidcOnly},
	{"OIDC rule 12", "OpenID Connect Core 1.0 §10.1.1 (not a SPIFFE standard); " + stdJWK + " §4.5 kid", Must, "A kid kept across a rotation of the JWK Set (seen with a rotation wait) names the same key.", oidcOnly},
	{"OIDC rule 13", stdOIDC + " §4.2", Must, "The discovery document is answered 200 OK at its own URL, not through a redirect.", oidcOnly},
	{"OIDC rule 14", stdOIDC + " §3 issuer, §7.1 TLS Requirements", Must, "A redirect, followed up to 5 times, leads to an https URL (from http on a loopback host to http: not applicable).", oidcOnly},
	{"OIDC rule 15", stdOIDC + " §7.1 TLS Requirements; BCP 195 (RFC 8996, RFC 9325)", Must, "An https server of the discovery document or the JWK Set negotiates TLS 1.2 or 1.3, and refuses a TLS 1.1 handshake.", oidcOnly},
	{"OIDC rule 16", stdJWK + " §8.5.1; RFC 8259 §11", Should, "The JWK Set's Content-Type is application/json or application/jwk-set+json.", oidcOnly},
	{"WAPI rule 4b", stdWAPI + " §4 Stream Responses", Should, "A stream sends a new message when the SVID rotates (observed only with a rotation wait).", live},
}

// Rules returns every rule the kit checks, sorted by ID (numbers in
// numeric order).
func Rules() []Rule {
	out := make([]Rule, len(rules))
	copy(out, rules)
	sort.SliceStable(out, func(i, j int) bool { return ruleLess(out[i].ID, out[j].ID) })
	for i := range out {
		out[i].Modes = append([]Mode(nil), out[i].Modes...)
	}
	return out
}

// LookupRule returns the rule of the given ID.
func LookupRule(id string) (Rule, bool) {
	for _, r := range rules {
		if r.ID == id {
			r.Modes = append([]Mode(nil), r.Modes...)
			return r, true
		}
	}
	return Rule{}, false
}

// ruleLess orders IDs by family in the registry's order, then by number,
// then by letter.
func ruleLess(a, b string) bool {
	fa, na, sa := splitID(a)
	fb, nb, sb := splitID(b)
	if fa != fb {
		return familyRank(fa) < familyRank(fb)
	}
	if na != nb {
		return na < nb
	}
	return sa < sb
}

var families = []string{"X509 rule", "Bundle rule", "JWT rule", "JWT step", "WIT rule", "WE rule", "WAPI rule", "Fed rule", "SDS rule", "OIDC rule"}

func familyRank(f string) int {
	for i, g := range families {
		if g == f {
			return i
		}
	}
	return len(families)
}

// splitID splits "X509 rule 9b" into "X509 rule", 9 and "b", and
// "JWT step S7" into "JWT step", 7 and "".
func splitID(id string) (family string, n int, suffix string) {
	i := len(id)
	for i > 0 && id[i-1] != ' ' {
		i--
	}
	family, tail := id[:max(i-1, 0)], id[i:]
	j := 0
	for j < len(tail) && (tail[j] < '0' || tail[j] > '9') {
		j++
	}
	for ; j < len(tail) && tail[j] >= '0' && tail[j] <= '9'; j++ {
		n = n*10 + int(tail[j]-'0')
	}
	return family, n, tail[j:]
}
