// Package spiffekit is a kit of small Go packages that give workloads a
// cryptographic identity the SPIFFE way: SPIFFE IDs, X509-SVIDs and JWT-SVIDs,
// trust bundles, and an in-process certificate authority that mints them.
//
// This root package holds no code; import the packages you need:
//
//   - [github.com/spiffekit/spiffekit/spiffeid]: SPIFFE IDs and trust domains.
//   - [github.com/spiffekit/spiffekit/bundle/x509bundle],
//     [github.com/spiffekit/spiffekit/bundle/jwtbundle],
//     [github.com/spiffekit/spiffekit/bundle/spiffebundle]: trust bundles and
//     the SPIFFE bundle document.
//   - [github.com/spiffekit/spiffekit/svid/x509svid],
//     [github.com/spiffekit/spiffekit/svid/jwtsvid]: parsing and verifying
//     SVIDs.
//   - [github.com/spiffekit/spiffekit/ca]: minting SVIDs and CA certificates
//     from any crypto.Signer.
//
// The packages that go-spiffe v2 also has keep its API: a program written
// against go-spiffe compiles against spiffekit after changing only the import
// prefix. Where go-spiffe is looser than a MUST of the SPIFFE standards,
// spiffekit is strict, and the doc comment says so.
package spiffekit
