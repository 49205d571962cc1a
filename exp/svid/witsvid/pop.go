package witsvid

import (
	"errors"
	"fmt"

	"github.com/spiffekit/spiffekit/internal/jwtutil"
)

// ErrInvalidProof is returned, wrapped, by [SVID.VerifyProofOfPossession]
// when the signature does not verify with the WIT-SVID's cnf key.
var ErrInvalidProof = errors.New("invalid proof of possession")

// VerifyProofOfPossession verifies a simple proof of possession of the cnf
// key (WIT rule 15): signature must be a JWS signature (RFC 7518 §3: R || S
// for ECDSA, PKCS #1 v1.5 or PSS for RSA) over message, made with the private
// key of s.PublicKey and the algorithm of [SVID.KeyAlgorithm].
//
// The proof is only as good as message. It should be a fresh challenge chosen
// by the validator, or otherwise bind the proof to this one request (method,
// target, time, body hash) and to the WIT-SVID itself; rejecting replays is
// the caller's job. Protocols such as the WIMSE Workload Proof Token define
// such messages (WIT rule 14).
//
// The SVID must come from [ParseAndValidate]; a signature that does not
// verify gives an error wrapping [ErrInvalidProof].
func (s *SVID) VerifyProofOfPossession(message, signature []byte) error {
	if s.PublicKey == nil || s.keyAlg == "" {
		return errors.New("witsvid: WIT-SVID has no confirmation key")
	}
	err := jwtutil.VerifySignature(s.keyAlg, s.PublicKey, message, signature)
	switch {
	case errors.Is(err, jwtutil.ErrInvalidSignature):
		return fmt.Errorf("witsvid: %w", ErrInvalidProof)
	case err != nil:
		return fmt.Errorf("witsvid: %w", err)
	}
	return nil
}
