// Package gcpiit is the GCP instance identity token node attestor,
// gcp_iit, both sides: an agent on a Compute Engine instance presents a
// token Google signed for its instance, and the server admits the
// instance if Google's signature holds and the instance's project is
// allowed.
//
// # Protocol
//
//  1. The agent ([Client]) asks the metadata server, with
//     cloud.google.com/go/compute/metadata ("Metadata-Flavor: Google"),
//     for instance/service-accounts/<account>/identity?audience=<the
//     server's>&format=full. It sends the token as it comes, SPIRE's
//     gcp_iit payload, so that agents and servers of either project
//     interoperate (both default to SPIRE's audience, [DefaultAudience]).
//  2. The server ([Server]) verifies the token (see [Server.Attest])
//     against Google's keys, reads the project, zone and instance from its
//     google.compute_engine claim, checks the project allow-list, and
//     returns the agent ID spiffe://<trust domain>/spiffekit/agent/
//     gcp_iit/<project ID>/<instance ID> with selectors of type "gcp_iit".
//
// There is no challenge: the token carries no nonce of the server's. What
// keeps a copied token from admitting a second node is its one-hour life
// and trust on first use: the server admits an agent ID once while its
// record exists (attest.NodeResult.CanReattest is false unless
// [ServerConfig].AllowReattestation), so a copy is refused once the real
// agent has attested, and the real agent is refused (loudly) if a copy got
// there first. Evicting the agent frees the ID.
//
// # Threats and the checks that answer them
//
//   - A token made up or changed (another project or instance): the RS256
//     signature must verify with the Google key its kid names, from
//     Google's published keys ([GoogleKeysURL], fetched, cached as long as
//     Google's response allows, and fetched again at most every 30 s for
//     an unknown key ID) or a document of them given to the server.
//   - Algorithm confusion: only RS256 parses; "none", HMAC (a token
//     "signed" with Google's public key as the secret) and every other
//     algorithm are refused before any key is looked at, and keys under
//     2,048 bits are not loaded.
//   - A token of Google's for something else: the issuer must be Google's
//     and the audience exactly the server's (configure one of the
//     server's own to bind tokens to it); a token without the instance's
//     claims (the standard format, or a user's token) is refused.
//   - An old token: exp and iat are required, with a minute of skew.
//   - A token of an instance in someone else's project (anyone can run an
//     instance, and Google signs its token too): the project allow-list
//     is required.
//   - A token replayed by someone who got it (any process on the instance
//     can ask for one): trust on first use, above, and its hour.
//   - A hostile payload: at most [MaxTokenSize] bytes; the project, zone,
//     instance ID and name checked against their forms before they become
//     a SPIFFE ID's path or selectors; the parsers fuzzed.
//   - On the agent, a metadata server that stalls or floods: one fetch is
//     bounded by [ClientConfig].Timeout, each response by [MaxTokenSize]
//     bytes, and no proxy is used. On the server, a key document is bounded
//     by [MaxKeysSize] and its fetch by ten seconds.
//   - With the Compute API lookup on ([ServerConfig].InstanceMetadata,
//     SPIRE's use_instance_metadata), a token of an instance deleted since,
//     or whose name a new instance took: the instance is read by project,
//     zone and name, and must still exist with the token's instance ID.
//     Labels and metadata become selectors only for the keys allowed, and
//     an allowed metadata value over the configured size refuses the
//     instance. The API's answer is bounded (1 MiB) and its credentials
//     are a service account key file or Application Default Credentials
//     (golang.org/x/oauth2/google), found at the first lookup.
//
// # Usage
//
// On the server:
//
//	srv, err := gcpiit.NewServer(gcpiit.ServerConfig{ProjectIDs: []string{"my-project"}})
//	res, err := srv.Attest(ctx, td, payload, nil)
//	if errors.Is(err, attest.ErrNodeRejected) {
//		// forged, expired, for another audience, or of a project not allowed
//	}
//
// On the instance:
//
//	client, err := gcpiit.NewClient(gcpiit.ClientConfig{})
//	payload, err := client.Payload(ctx)
package gcpiit
