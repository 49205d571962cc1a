package admin

// BundleDeleteMode says what deleting a federated bundle does to the
// entries that federate with its trust domain, as SPIRE's bundle delete
// -mode does.
type BundleDeleteMode string

// The modes of [Client.DeleteFederatedBundle].
const (
	// DeleteRestrict refuses to delete the bundle while any entry
	// federates with it (an error wrapping [ErrFailedPrecondition]). It is
	// the default.
	DeleteRestrict BundleDeleteMode = "restrict"
	// DeleteEntries deletes those entries with the bundle.
	DeleteEntries BundleDeleteMode = "delete"
	// DeleteDissociate removes the trust domain from those entries'
	// FederatesWith, and keeps them.
	DeleteDissociate BundleDeleteMode = "dissociate"
)

// BundleFormat names an encoding of the trust domain's own bundle.
type BundleFormat string

// The formats of [Client.Bundle].
const (
	// FormatPEM is the X.509 authorities as PEM CERTIFICATE blocks.
	FormatPEM BundleFormat = "pem"
	// FormatSPIFFE is the SPIFFE bundle document (a JWK Set) with every
	// kind of authority.
	FormatSPIFFE BundleFormat = "spiffe"
)
