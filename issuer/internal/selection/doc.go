// Package selection picks the registration entries an issuer serves, from
// its index of the registry: those that apply to a caller, in a stable
// order and with unique hints (WAPI rule 8), and those it keeps SVIDs of
// ahead of need (issuer.Config.PreMint). An issuer with a parent ID serves
// only the entries of that parent.
package selection
