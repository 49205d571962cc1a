// Package awsiid is the AWS instance identity document node attestor,
// aws_iid, both sides: an agent on an EC2 instance presents the document
// AWS signed for its instance, and the server admits the instance if AWS's
// signature holds and the instance's account and region are allowed.
//
// # Protocol
//
//  1. The agent ([Client]) asks the instance metadata service for a session
//     token (IMDSv2: PUT /latest/api/token with a TTL header), then, with
//     the token, for the document (/latest/dynamic/instance-identity/
//     document), its RSA-SHA256 signature (…/signature) and its PKCS #7
//     RSA-2048 signature (…/rsa2048). It sends them as SPIRE's aws_iid
//     payload, {"document", "signature", "rsa2048"} ([Payload]), so that
//     agents and servers of either project interoperate.
//  2. The server ([Server]) verifies a signature (see [Server.Attest]),
//     reads the account, region and instance from the signed bytes, checks
//     the allow-lists, and returns the agent ID
//     spiffe://<trust domain>/spiffekit/agent/aws_iid/<account>/<region>/
//     <instance ID> with selectors of type "aws_iid".
//
// There is no challenge: the document carries no nonce. It is not a
// secret either, and it does not change for the life of the instance.
// What keeps a copied document from admitting a second node is trust on
// first use: the server admits an agent ID once while its record exists
// (attest.NodeResult.CanReattest is false unless
// [ServerConfig].AllowReattestation), so a copy is refused once the real
// agent has attested, and the real agent is refused (loudly) if a copy got
// there first. Evicting the agent frees the ID.
//
// # Threats and the checks that answer them
//
//   - A document made up, or changed (another account, instance or
//     region): the signature must verify with a certificate the server
//     holds for the document's region, AWS's ([AWSCertificates], shipped
//     for the 31 regions AWS publishes RSA-2048 certificates for, or
//     configured). The certificates inside a PKCS #7 message are dropped
//     before it is verified, so that a message signed by a key of the
//     sender's, with a certificate naming AWS's issuer and serial, names no
//     signer.
//   - The substitution SPIRE fixed in 1.13.6: a genuine PKCS #7 message of
//     one instance sent with a "document" field describing another, where
//     the server verified the message and read the field. Here the
//     identity comes only from the content the signature covers, and a
//     document field that differs from it is refused.
//   - A document of an instance in someone else's account (anyone can run
//     an instance, and AWS signs its document too): the account allow-list
//     is required. The region allow-list and the partition narrow further.
//   - A document replayed by someone who read it (any process on the
//     instance can): trust on first use, above.
//   - A weak or odd signature: the PKCS #7 form needs exactly one signer
//     and SHA-256; both forms are RSA (PKCS #1 v1.5) and keys under 1,024
//     bits are refused by Go.
//   - A hostile payload: at most [attest.MaxNodePayload] bytes, a document
//     of at most [MaxDocumentSize] and signatures of at most
//     [MaxSignatureSize] bytes, the account ID, region and instance ID
//     checked against their forms before they become a SPIFFE ID's path;
//     the PKCS #7 parser (github.com/smallstep/pkcs7) runs under a
//     recover and is fuzzed.
//   - On the agent, a metadata service that stalls or floods: one fetch is
//     bounded by [ClientConfig].Timeout, each response by 16 KiB, no proxy
//     is used, and there is no fallback to tokenless IMDSv1.
//
// # EC2 and IAM lookups
//
// With [ServerConfig].Lookup (SPIRE's AWS credentials, assume_role,
// skip_block_device and disable_instance_profile_selectors), the server
// also looks the instance up, after its document verified, through
// aws-sdk-go-v2: EC2's DescribeInstances in the document's region, and
// IAM's GetInstanceProfile for its instance profile. This adds SPIRE's
// tag:, sg:id:, sg:name: and iamrole: selectors, and answers more threats:
//
//   - A document of an instance that is gone (terminated, or stopped): it
//     must be pending or running.
//   - An API answer about something else (a misrouted endpoint, a
//     credential of another account): the one instance described must be
//     the document's, in a reservation of the document's account; the
//     instance profile must be in that account, and IAM must describe it
//     under the same ARN and ID as EC2 does (a profile deleted and made
//     again under the name has another ID).
//   - A swapped root volume, which can carry another machine's agent key or
//     a document read elsewhere: unless SkipBlockDevice, the root volume
//     must have been attached within a minute of the primary network
//     interface, which is attached at launch and cannot be detached
//     (SPIRE's check; instance-store roots have nothing to swap).
//   - An API that fails, stalls or floods: every call of one attestation
//     is bounded by [LookupConfig].Timeout and each response by
//     [MaxAPIResponse]; a failure refuses the attestation, never admits it
//     with fewer selectors.
//
// The package's tests run the lookups against a local stand-in of the EC2,
// IAM and STS APIs (internal/testing/awstest) that speaks their Query
// protocol (form POSTs answered with the XML AWS documents) and checks the
// Signature Version 4 of each request, reached through the SDK's base
// endpoint: the AWS APIs themselves cannot be reached from the tests.
//
// Not checked here, unlike SPIRE's plugin: membership of an AWS
// Organization (verify_organization) and of an EKS cluster.
//
// # Certificates
//
// AWS publishes, per region, the certificate of the key that signs the
// PKCS #7 form and another for the RSA-SHA256 form. The first set is
// shipped ([AWSCertificates]); regions AWS adds later, and the second set,
// are given as PEM files by region ([LoadCertificates]). A payload is
// verified in the PKCS #7 form when it has one and the server has a
// certificate for its region, else in the RSA-SHA256 form.
//
// # Usage
//
// On the server:
//
//	srv, err := awsiid.NewServer(awsiid.ServerConfig{AccountIDs: []string{"123456789012"}})
//	res, err := srv.Attest(ctx, td, payload, nil)
//	if errors.Is(err, attest.ErrNodeRejected) {
//		// forged, altered, or from an account or region not allowed
//	}
//
// On the instance:
//
//	client, err := awsiid.NewClient(awsiid.ClientConfig{})
//	payload, err := client.Payload(ctx)
package awsiid
