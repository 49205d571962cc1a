// Package rotation runs the certificate authority of a SPIFFE trust domain:
// an X.509 CA and a JWT signing key that rotate on their own, a trust bundle
// that announces new keys before they sign and keeps old ones until what they
// signed has expired, and a journal that lets a restarted process carry on
// with the same authorities. With Config.WITKeys, a WIT-SVID signing key
// (an incubating standard) rotates beside them by the same rules, published
// in the bundle with use "wit-svid".
//
// Signing itself is done by the [ca] package: the [Manager] hands out the
// active [ca.X509Authority] and [ca.JWTAuthority], which cap every SVID at
// their own expiry. Keys live in a [ca.KeyManager] ([keymanager.Memory],
// [keymanager.Disk], or one backed by an HSM or KMS); certificates and states
// live in a [Journal] ([FileJournal]). The X.509 CAs are self-signed roots,
// or intermediates of a [ca.UpstreamAuthority] such as the Disk authority of
// package [github.com/spiffekit/spiffekit/ca/upstream].
//
// # Usage
//
//	keys, err := keymanager.NewDisk("/var/lib/ca/keys")
//	m, err := rotation.New(ctx, rotation.Config{
//		TrustDomain: spiffeid.RequireTrustDomainFromString("example.org"),
//		KeyManager:  keys,
//		Journal:     rotation.NewFileJournal("/var/lib/ca/journal.json"),
//	})
//	go m.Run(ctx) // rotates until ctx is done
//
//	chain, err := m.SignX509SVID(ctx, ca.X509SVIDParams{ID: id, PublicKey: pub})
//	token, err := m.SignJWTSVID(ctx, ca.JWTSVIDParams{ID: id, Audience: []string{"db"}})
//
//	updates, unsubscribe := m.Subscribe()
//	defer unsubscribe()
//	for range updates {
//		publish(m.Bundle()) // new spiffe_sequence, new or dropped keys
//	}
//
// # Operator actions
//
// To replace a compromised or retired authority ahead of schedule: prepare a
// successor, wait until relying parties have the new bundle, activate it, taint
// the old one so that consumers re-issue what it signed, and revoke it once
// they have ([Manager.PrepareX509CA], [Manager.ActivateX509CA],
// [Manager.TaintX509CA], [Manager.RevokeX509CA], and the same for the JWT
// and WIT keys).
package rotation
