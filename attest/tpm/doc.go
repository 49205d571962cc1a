// Package tpm holds the TPM 2.0 node attestors, both sides of each.
//
// The tpm attestor: a node proves that it holds a TPM whose endorsement
// key (EK) the server trusts, either because the EK certificate chains to
// a TPM manufacturer's CA, or because the EK public key is on an
// allow-list, by activating a credential that only that TPM can activate.
// Its config key in the programs is "tpm".
//
// The tpm_devid attestor ([DevIDServer], [DevIDClient]), SPIRE's
// tpm_devid: a node proves that it holds a DevID (IEEE 802.1AR device
// identity) key whose certificate the operator's DevID CA issued, and
// that this key lives in a TPM whose EK certificate a manufacturer's CA
// issued. Both attestors share the EK, the attestation key and credential
// activation; see "tpm_devid" below.
//
// # Protocol
//
//  1. The agent reads the EK certificate from NV (RSA-2048 at 0x01c00002,
//     else ECC P-256 at 0x01c0000a, else ECC P-384 at 0x01c00016), finds
//     the EK it certifies (a persistent EK in 0x81010000-0x810100ff, or one
//     created from the TCG's default template), and creates the attestation
//     key (AK): a restricted ECDSA P-256 signing key, primary in the
//     endorsement hierarchy, so that the same TPM always gives the same AK
//     and nothing is stored. It sends {"version": 1, "ek_cert": DER,
//     "ek_public": TPMT_PUBLIC, "ak_public": TPMT_PUBLIC} (JSON, binary
//     fields in base64).
//  2. The server checks the payload (see below), and makes a credential in
//     software (TPM2_MakeCredential's computation, go-tpm's
//     CreateCredential): a fresh 32-byte secret, encrypted to the EK and
//     bound to the AK's name. It sends {"version": 1, "audience": its
//     SPIFFE ID, spiffe://<trust domain>/spiffekit/server,
//     "credential_blob", "encrypted_secret"}, and, if PCRs are configured,
//     "pcrs" and a 32-byte "nonce".
//  3. The agent refuses a challenge whose audience is not a server of its
//     own trust domain. It runs TPM2_ActivateCredential with the EK and the
//     AK, and answers with {"proof": HMAC-SHA256(secret, "spiffekit tpm v1"
//     || 0x00 || len || trust domain name || len || audience || len ||
//     credential blob)}, each len a big-endian uint16 giving the length of
//     the field after it; with PCRs asked, also the PCR values and a quote
//     of them by the AK over the nonce ("quote", "signature",
//     "pcr_values").
//  4. The server compares the proof with its own in constant time and, if
//     PCRs were asked for, verifies the quote.
//
// # What each check answers
//
//   - EK certificate chains to a configured manufacturer CA at the current
//     time (or the EK hash is allow-listed): a TPM the operator did not
//     vouch for, or a software key posing as a TPM, is refused before any
//     challenge is sent.
//   - EK public area matches the certificate's key: a genuine certificate
//     presented with another key (an attacker's own TPM or a software key)
//     is refused, so the credential is always encrypted to the certified
//     key.
//   - EK is a restricted decryption key fixed to its TPM; AK is a
//     restricted signing key generated in and fixed to its TPM, named with
//     SHA-256 or a stronger hash: the TPM
//     activates a credential only for a loaded object of the AK's name,
//     which covers these attributes, so a successful activation proves
//     that the AK lives in the same TPM as the EK and signs only what the
//     TPM itself produces.
//   - Credential activation with a fresh secret: only the TPM holding the
//     EK's private key can recover the secret, so a copied payload (EK
//     certificates are public) is worthless, and so is an answer from
//     another TPM or from an earlier exchange (replay).
//   - Audience and trust domain in the proof: a server of another trust
//     domain that relays our challenge to a node it attests gets an answer
//     for itself, which ours refuses; and the agent refuses to answer a
//     challenge naming another trust domain's server.
//   - Quote over the server's nonce, by the activated AK, of exactly the
//     PCRs asked for, matching the values sent: PCR selectors cannot come
//     from another machine, or from an earlier boot's quote.
//   - Size limits, strict JSON (no unknown field), canonical TPM
//     structures: malformed or huge input is refused with an error, never
//     a panic (the payload parser is fuzzed).
//
// The agent ID is spiffe://<trust domain>/spiffekit/agent/tpm/<EK hash>
// (see [EKHash]): the EK identifies the machine, so the agent can attest
// again, after a reinstall as well, under the same ID. See [Server.Attest]
// for the selectors.
//
// The agent needs read-write access to the TPM (/dev/tpmrm0, usually
// group tss) and the endorsement hierarchy's authorization to be empty, as
// it is unless an owner set it.
//
// # tpm_devid
//
//  1. The agent sends {"version": 1, "devid_certs": [DER, ...] (the DevID
//     certificate, then intermediates), "devid_public": TPMT_PUBLIC,
//     "ek_cert", "ek_public", "ak_public"}; the EK and AK are the tpm
//     attestor's. The DevID key was made under the storage root key (the
//     TCG's SRK template of its type with an empty unique field, as SPIRE
//     loads it) and is read from its TPM2B_PUBLIC and TPM2B_PRIVATE files.
//  2. The server checks the DevID certificate against the DevID CAs and
//     the EK certificate against the endorsement CAs, the public areas
//     against their certificates, and sends {"version", "audience",
//     "credential_blob", "encrypted_secret", "nonce"}: a credential for
//     the AK encrypted to the EK, and 32 random bytes.
//  3. The agent activates the credential (the proof is the tpm
//     attestor's, with the label "spiffekit tpm_devid v1"), has the AK
//     certify the DevID key over the nonce (TPM2_Certify), and signs
//     "spiffekit tpm_devid signature v1" || 0x00 || len || trust domain
//     name || len || audience || len || nonce with the DevID key (TPM2_Hash
//     then TPM2_Sign): {"proof", "certify_info", "certify_signature",
//     "devid_signature"}.
//
// What each check answers:
//
//   - DevID certificate chains to a configured DevID CA at the current time:
//     a device the operator's CA did not name, or whose certificate has
//     expired, is refused before any challenge.
//   - DevID public area is of the certificate's key, and is a signing key
//     with fixedTPM, fixedParent and sensitiveDataOrigin: a certificate of a
//     software key, or a key imported into the TPM (a copy may exist
//     outside), is refused.
//   - EK certificate chains to an endorsement CA, EK public area matches
//     it: the TPM is genuine (as for the tpm attestor).
//   - Credential activation: the AK is in the TPM holding the EK, and the
//     answer is for this exchange (a fresh secret), so a replayed answer
//     or another TPM's is refused.
//   - AK's certification of the DevID key's name over the nonce: the DevID
//     key is loaded, now, in the AK's TPM, hence the EK's. SPIRE certifies
//     without a nonce; this one cannot be replayed from an earlier boot or
//     another machine that once held the key's blob.
//   - DevID key's signature over the nonce, audience and trust domain: the
//     node holds the certified key, for this exchange and this server.
//
// The agent ID is spiffe://<trust domain>/spiffekit/agent/tpm_devid/<SHA-1
// of the DevID certificate>, SPIRE's shape; see [DevIDServer.Attest] for the
// selectors.
//
// # Usage
//
// On the server:
//
//	srv, err := tpm.LoadServer(tpm.FileConfig{ManufacturerCABundles: []string{"/etc/spiffekit/tpm-cas.pem"}})
//	res, err := srv.Attest(ctx, td, payload, challenge)
//
// On the node:
//
//	client, err := tpm.NewClient(tpm.ClientConfig{TrustDomain: td}) // /dev/tpmrm0
//	payload, err := client.Payload(ctx)
//	response, err := client.Respond(ctx, challengeFromServer)
package tpm
