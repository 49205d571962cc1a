// Package upstream provides [ca.UpstreamAuthority] implementations, which
// sign the X.509 CA certificates of a rotating CA so that a trust domain
// chains to an existing PKI. [Disk] signs with a CA certificate and key read
// from files.
//
// # Usage
//
//	up, err := upstream.LoadDisk(upstream.DiskConfig{
//		CertFile: "/etc/ca/upstream.crt", // the upstream CA, then the certificates above it
//		KeyFile:  "/etc/ca/upstream.key", // PKCS#8 PEM, mode 0600
//	})
//	m, err := rotation.New(ctx, rotation.Config{TrustDomain: td, Upstream: up})
//	// m's CAs are intermediates below the upstream CA; its bundle holds the
//	// last certificate of CertFile.
package upstream
