// Package x509store holds the X509-SVIDs an issuer serves, one per
// registration entry, in the form the Workload API sends them
// (endpoint.RawX509SVID): the leaf's DER, the key as PKCS#8, and one copy
// of each CA certificate, shared by every SVID it signed and kept while
// one holds it. The parsed certificates and key are not kept: a node agent
// holds one SVID per entry, ten thousand and more, and parsed they took
// five times the memory.
package x509store
