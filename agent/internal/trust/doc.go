// Package trust is what a node agent knows of its trust domain's
// authorities, as its server last sent them: the bundle, the federated
// bundles, the active X.509 CA and the tainted CAs and JWT and WIT keys.
// [State] is the issuer's Trust and federation source, the
// ca.KeyTaintReporter of the tainted keys, and the source that verifies
// the servers; it tells subscribers of every update, and, apart, of every
// change of the taints, which the agent saves promptly.
//
//	st := trust.New(bundle) // the bundle the agent starts with
//	st.SetTaintedKeys(u.TaintedJWTKeyIDs, u.TaintedWITKeyIDs)
//	st.Set(u.Bundle, u.FederatedSet, u.FederatedBundles, u.TaintedX509CAs, u.ActiveX509CA)
//	changed, stop := st.SubscribeTaints() // a value after each change of the taints
//	defer stop()
//
// Its errors carry the prefix of package agent, whose they are.
package trust
