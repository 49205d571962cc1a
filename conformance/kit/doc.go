// Package kit is a SPIFFE conformance kit: it checks files and live
// endpoints of any implementation against the numbered rules of the SPIFFE
// standards and reports a verdict per rule.
//
// # Rules and reports
//
// Every rule the kit checks is in one registry ([Rules]): an ID from the
// project's digest of the standards ("X509 rule 4", "WE rule 6"; a letter
// splits a rule whose parts carry different levels or are checked apart),
// the standard and section, the RFC 2119 level and what is checked. A check adds [Result]s to
// a [Report]: the rule, the subject (a leaf, a JWK, an RPC), the verdict and
// the evidence. A rule the subject breaks is a failure when the rule is a
// MUST, and an allowed deviation when it is a SHOULD or MAY; a rule that does
// not apply, or that the kit could not look at (no bundle given, no rotation
// observed), is not applicable. [Report.Failed] is true when a MUST failed:
// a program's exit status is 0 only when it is false. Reports are written as
// text ([Report.WriteText]), JSON ([Report.WriteJSON]) or JUnit XML
// ([Report.WriteJUnit]); [WriteRulesTable] writes the table of
// docs/CONFORMANCE.md, which a test keeps in step with the registry.
//
// # Modes
//
// Offline, the kit checks what it is given: an X509-SVID ([Report.CheckX509SVID]
// on a PEM file, [ParseX509SVIDPEM]), a SPIFFE bundle document
// ([Report.CheckBundle], and [Report.CheckBundleUpdate] between two versions),
// a JWT-SVID ([Report.CheckJWTSVID]), a WIT-SVID ([Report.CheckWITSVID]).
// Live, [CheckWorkloadAPI] checks a Workload API endpoint (the WIT-SVIDs
// and WIT bundles too, when it offers the WIT profile), [CheckSDS] the
// Secret Discovery Service beside one,
// [CheckBundleEndpoint] a bundle endpoint, and [CheckOIDC] an OpenID Connect
// discovery endpoint publishing JWT-SVID keys (see their documentation for
// what they call and what they never do).
//
// # Independence
//
// The kit judges implementations, spiffekit among them, so it links none of
// the code it judges: it speaks the Workload API with go-spiffe's generated
// stubs, reads certificates with crypto/x509, JWKs and JWS with go-jose, and
// SPIFFE IDs with go-spiffe's spiffeid. That is why it lives in the nested
// conformance module, beside go-spiffe, and not in the library module, which
// never depends on go-spiffe; its program is conformance/cmd/spiffe-conformance
// for the same reason (a program under examples/ belongs to the library
// module and cannot import this one). Its tests run it against spiffekit's
// agent and embedded issuer, and against endpoints broken on purpose, one per
// rule family, which must fail exactly the rule broken.
package kit
