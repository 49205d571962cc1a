// Package jwkutil decodes and encodes the JWK Sets (RFC 7517) that carry
// SPIFFE trust bundles: the SPIFFE bundle document and the plain JWT and WIT
// bundles of the Workload API. It is shared by bundle/jwtbundle,
// bundle/spiffebundle and exp/bundle/witbundle so that the three read keys the
// same way.
//
//	set, err := jwkutil.Decode(data)
//	if err != nil {
//		return err
//	}
//	for _, e := range set.Keys {
//		pub, err := e.PublicKey()
//		// ...
//	}
//
// # Rules
//
// Decoding is stricter and more tolerant than a plain jose.JSONWebKeySet
// unmarshal, following the bundle rules:
//
//   - member names are matched exactly (encoding/json would fold case);
//   - a key with a missing or unknown "kty", or a key type go-jose cannot
//     represent, is skipped instead of failing the document (Bundle rule 12);
//   - a key carrying private members (d, p, q, dp, dq, qi, oth, k) or of type
//     "oct" fails the document (Bundle rule 14);
//   - only the members needed to build the public key reach go-jose;
//   - documents above [MaxDocumentSize] bytes or with more than [MaxKeys] keys
//     are rejected.
package jwkutil
