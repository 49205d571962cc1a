// Package crossverify checks that SVIDs and bundles produced by spiffekit are
// accepted by go-spiffe v2.9.0 and the other way round, and that both
// libraries give the same verdict on the must-reject tables of the
// specification, except where spiffekit is deliberately stricter.
package crossverify
