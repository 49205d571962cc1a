package cli

import (
	"testing"

	"github.com/spiffekit/spiffekit/registry"
)

// FuzzRelationshipFile feeds -data files to the parser of federation
// create and update: whatever the bytes, it returns relationships or an
// error, never panics; every relationship it returns without an error is
// one a store would keep, with a bundle that is a SPIFFE bundle document.
func FuzzRelationshipFile(f *testing.F) {
	f.Add([]byte(`{"federationRelationships": [{"trustDomain": "b.test", "bundleEndpointURL": "https://b.test/", "bundleEndpointProfile": "https_web"}]}`))
	f.Add([]byte(`{"federationRelationships": [{"trustDomain": "b.test", "bundleEndpointURL": "https://b.test:8443", "bundleEndpointProfile": "https_spiffe",
		"endpointSPIFFEID": "spiffe://b.test/s", "trustDomainBundle": {"keys": []}, "trustDomainBundleFormat": "spiffe"}]}`))
	f.Add([]byte(`{"federationRelationships": [{"trustDomain": "b.test", "bundleEndpointURL": "https://b.test", "bundleEndpointProfile": "https_spiffe",
		"endpointSPIFFEID": "spiffe://b.test/s", "trustDomainBundle": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}]}`))
	f.Add([]byte(`{"federationRelationships": [{"trustDomain": "B", "trustDomainBundle": null}, {}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		items, err := parseRelationshipFile(data, "-")
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a reason")
			}
			return
		}
		for _, it := range items {
			if it.err != nil {
				if it.err.Error() == "" {
					t.Fatal("an error without a reason")
				}
				continue
			}
			if it.r.TrustDomain.IsZero() || (it.r.BundleEndpointProfile != registry.ProfileHTTPSWeb && it.r.BundleEndpointProfile != registry.ProfileHTTPSSPIFFE) {
				t.Fatalf("accepted without a trust domain or a profile: %+v", it.r)
			}
		}
	})
}
