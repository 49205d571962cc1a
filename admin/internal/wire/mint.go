package wire

// MintX509Request asks for an X509-SVID (POST /v1/svids/x509).
type MintX509Request struct {
	CSR []byte `json:"csr"` // DER PKCS#10
	TTL string `json:"ttl,omitempty"`
}

// MintX509Response is the answer to a MintX509Request.
type MintX509Response struct {
	X509SVID [][]byte `json:"x509_svid"` // DER, leaf first
	RootCAs  [][]byte `json:"root_cas"`
}

// MintJWTRequest asks for a JWT-SVID (POST /v1/svids/jwt).
type MintJWTRequest struct {
	SPIFFEID string   `json:"spiffe_id"`
	Audience []string `json:"audience"`
	TTL      string   `json:"ttl,omitempty"`
}

// MintJWTResponse is the answer to a MintJWTRequest. Its token is a
// credential.
type MintJWTResponse struct {
	Token string `json:"token"`
}
