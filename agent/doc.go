// Package agent is a node agent: it proves what node it runs on to an
// issuing server (package nodeapi, with a node attestor such as a join
// token or x509pop), receives exactly the registration entries meant for
// it, has the server sign an X509-SVID for each of them with keys it
// generates, and serves them to local workloads over the Workload API
// (package workloadapi/endpoint, on the listener it is given).
//
//	api, err := endpoint.ListenUnix("/run/spiffe-agent/api.sock", 0o777)
//	a, err := agent.New(ctx, agent.Config{
//		TrustDomain:       td,
//		Servers:           []string{"server-a:8081", "server-b:8081"}, // failover
//		TrustBundle:       bundle,                                    // verifies the servers
//		NodeAttestor:      jointoken.NewClient(token),
//		WorkloadAttestors: []attest.WorkloadAttestor{unixAttestor, podAttestor}, // selectors combined
//		Listener:          api,
//		DataDir:           "/var/lib/spiffe-agent", // SVID reused across restarts
//	})
//	if err != nil {
//		return err
//	}
//	defer a.Close()
//	return a.Run(ctx) // attests, syncs and serves until ctx ends
//
// # Behaviour
//
//   - New starts nothing; Run does everything until its ctx ends, and
//     returns the error of any part that cannot go on.
//   - Its own SVID is saved in DataDir (key mode 0600) and renewed at half
//     its life, or at once when the server names the CA that signed it as
//     tainted (a taint made on any server of the trust domain). A restarted
//     agent reuses it, and then needs no node attestor; one whose SVID
//     expired while the servers were away attests again when its attestor
//     allows (x509pop; a join token is used once). An agent that must
//     attest without a node attestor fails with ErrNoNodeAttestor. A
//     renewed SVID is presented at once over a new connection, to which
//     new calls and the entry stream move; the signing calls in flight on
//     the old connection finish there (for at most 30 s), instead of
//     failing only to be made again.
//   - Its own key is new for each attestation and each renewal. By default
//     it is an ECDSA P-256 key in memory, saved as agent-key.pem; with
//     Config.KeyStore set to a TPM's (ca/keymanager/tpm.AgentKeys), the
//     TPM makes it and signs with it, and DataDir keeps only a blob of it
//     that no other TPM can load (agent-key.tpmkey).
//   - Entries arrive on a stream the server pushes; the agent keeps them in
//     the index (registry/index) of an issuer.Issuer with PreMint, fed by a
//     change feed that keeps no copy of its own, so that
//     every SVID is signed, in batches, before a workload asks. SVIDs are
//     re-minted at half life, when their entry changes, when the server
//     activates a new CA and at once when one is tainted. JWT-SVIDs and
//     WIT-SVIDs of a JWT or WIT key the server names as tainted, or that
//     left the bundle (revoked), are dropped: the next fetch gets a token
//     of the active key, and open FetchWITSVID streams get theirs at once.
//   - While no server answers, the agent keeps serving what it holds and
//     reconnects with jittered exponential backoff (Config.RetryMin,
//     Config.RetryMax), trying each server in turn.
//   - What it serves (its entries, their SVIDs and keys, the WIT-SVIDs it
//     holds with theirs, the federated bundles), with the X.509 CAs and
//     JWT and WIT keys the server last named as tainted, is saved in
//     DataDir too (workload-svids.bin, mode 0600, written atomically once
//     it has stayed the same for 2 s, at least every 12 s while it keeps
//     changing, 0.1 s after a change of the taints, which a crash must
//     not lose, and when Run returns). An agent started again with its
//     saved SVID serves it at once, with every server away, each SVID
//     until it expires, and follows the server from its first sync; an
//     entry deleted while it was down is served until then. An SVID or
//     WIT-SVID that a saved tainted CA or key signed is not served again:
//     the agent has a new one signed once a server answers (and renews its
//     own SVID at once if a tainted CA signed it). A file that others could read or change, that was
//     changed or cut short, or whose SVIDs do not check out is refused with
//     an error in the log, and the agent starts without it. The file of
//     version 1 (workload-svids.jsonl, JSON lines) of an upgraded agent is
//     read once, when there is no workload-svids.bin, and replaced by one;
//     files of versions 2 and 3 (without taints) are read as they are.
//   - A renewal of the agent SVID that fails is tried again over new
//     connections (one a partition stalled may stay silent long after the
//     heal), on the next server first, each attempt and each wait taking
//     at most a quarter of the time the SVID has left, so that the agent
//     renews it soon after a server is back, however long they were away.
//     An entry stream that fails is opened again on the next server too,
//     and an attestation that fails is tried again there: a server that
//     answers may yet be unable to serve (cut off from its database). The server moved off is left out of the agent's
//     connections until it moves on again: a connection tries the next
//     address as well when one is slow to answer, and would otherwise
//     land on it again, were it the quicker.
package agent
