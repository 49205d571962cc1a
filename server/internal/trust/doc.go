// Package trust is an issuing server's view of its trust domain's
// authorities as every server sharing its database sees them: its own
// rotating CA merged with the shares of the bundle the other servers (and
// nested servers below it) publish, less what an operator revoked; the
// taints of every server's authorities; the federated bundles kept in the
// database; and the operators' actions on the authorities, through the
// admin API.
//
// A taint or revocation of another server's authority is recorded in the
// database as a registry.AuthorityMark, which the owning server applies to
// its CA at its next refresh and every server honours meanwhile.
package trust
