// Package keyset provides [Set], the public keys of one trust domain indexed
// by key ID: the JWT authorities of bundle/jwtbundle, the WIT authorities of
// exp/bundle/witbundle, and through them those of bundle/spiffebundle. It holds
// the locking, copying and validation rules the three share, so that they
// cannot drift apart; the exported bundle types wrap a Set and add their
// trust domain, method names and error prefix.
//
//	var keys keyset.Set // ready to use
//	if err := keys.Add("key-1", publicKey); err != nil {
//		return fmt.Errorf("jwtbundle: %w", err)
//	}
//	key, ok := keys.Find("key-1")
//	doc, err := keys.Marshal() // plain RFC 7517 JWK Set
//
// # Rules
//
//   - [Set.Add] refuses an empty key ID, a nil key and a private key (anything
//     with a Public method), so a bundle never publishes private material;
//     [Check] applies the same rules on their own.
//   - [Set.Replace] copies its input without validating it, as go-spiffe does;
//     [Set.Marshal] then refuses what is not a public key.
//   - Maps going in and out are copied; the keys themselves are shared.
//
// Errors carry no package prefix; the exported packages add theirs.
package keyset
