// Package azureimds is the Azure attested document node attestor,
// azure_imds, both sides: an agent on an Azure VM answers the server's
// nonce with the attested document Azure's instance metadata service signs
// for it, and the server admits the VM if Azure's signature holds and the
// VM's subscription is allowed for the tenant the agent names. No managed
// identity is needed.
//
// # Protocol
//
//  1. The agent ([Client]) sends a first message that says nothing.
//  2. The server ([Server]) answers with a fresh nonce.
//  3. The agent asks the metadata service for the attested document of
//     that nonce (GET /metadata/attested/document?api-version=2025-04-07&
//     nonce=..., with "Metadata: true") and answers with SPIRE's
//     azure_imds payload, {"document": {"encoding", "signature"},
//     "metadata": {"agentDomain"}} ([Response]), so that agents and
//     servers of either project interoperate.
//  4. The server verifies the document (see [Server.Attest]) and returns
//     the agent ID spiffe://<trust domain>/spiffekit/agent/azure_imds/
//     <tenant>/<subscription ID>/<VM ID> with selectors of type
//     "azure_imds".
//
// The nonce keeps a document from being replayed: it is good for one
// attestation only. But anything on the VM can ask for a document, so a
// second agent on the same VM (or one that borrows it) could attest as
// the VM: the server admits an agent ID once while its record exists
// (trust on first use, as for aws_iid), unless
// [ServerConfig].AllowReattestation.
//
// # Threats and the checks that answer them
//
//   - A document made up or changed: the PKCS #7 message must have one
//     signer (SHA-256 or stronger), whose certificate chains to Azure's
//     roots ([AzureRoots], or configured) and names the metadata service
//     (metadata.azure.com by default), and the signature must verify with
//     that certificate alone.
//   - The signer-bag substitution SPIRE fixed in 1.15.2: a message whose
//     certificates list Azure's genuine certificate first while another
//     key, with its own certificate further on, signed the content; the
//     server checked the first certificate's chain and verified the
//     signature with the signer's. Here the signer's certificate is
//     resolved first, by the issuer and serial number its signer info
//     names, exactly as the signature check will find it, and that
//     certificate is the one whose chain and name are checked and the only
//     one the message keeps for the signature check.
//   - A document of someone else's VM (anyone can run one, and Azure signs
//     its documents too): the tenant allow-list, each tenant with a
//     required subscription allow-list. The document names its
//     subscription but not its tenant; a subscription belongs to one
//     tenant, so the tenant the agent names is held to that tenant's
//     subscriptions.
//   - A replayed document: the nonce, fresh at each attestation, and the
//     document's own expiry; trust on first use, above.
//   - The intermediate certificate, which Azure does not put in the
//     message: fetched from the signer's CA Issuers URL only if its host
//     is allowed (www.microsoft.com by default), bounded, kept; or
//     configured. Whatever is fetched must still chain to the roots.
//   - A hostile answer: at most [attest.MaxNodePayload] bytes, a signature
//     of at most [MaxSignatureSize]; VM and subscription IDs must be GUIDs
//     before they become a SPIFFE ID's path; the PKCS #7 parser runs under
//     a recover and is fuzzed.
//   - On the agent, a metadata service that stalls or floods: one fetch is
//     bounded by [ClientConfig].Timeout, each response by 32 KiB; no proxy
//     is used, no redirect followed; a server's nonce that is not letters
//     and digits is not passed on.
//
// Not done here, unlike SPIRE's plugin with Azure credentials: looking the
// VM up through Azure Resource Manager for its name, resource group,
// location, tags, scale set, security groups and subnets. The selectors
// are what the signed document says: subscription and VM ID.
package azureimds
