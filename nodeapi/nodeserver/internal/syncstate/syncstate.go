// Package syncstate is what one entry stream of the node protocol has sent
// its agent, and the next message of the stream: what the agent lacks to
// hold what it may hold now (entries, the trust domain's bundle, the
// federated bundles, the tainted CAs and keys, the active CA), or nothing when it
// holds it all.
//
//	st := syncstate.New(known) // what the agent says it holds
//	resp, err := st.Next(now)  // nil when nothing changed
package syncstate

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/nodeapi/internal/wire"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// State is what one stream has sent. It is used by the stream's goroutine
// only.
type State struct {
	sent      map[string]int64 // entry ID -> revision
	bundleSeq string           // the bundle document sent last
	fedSent   string           // a digest of the federated bundles sent last
	tainted   string           // the tainted CAs and keys sent last
	active    string
}

// New returns the state of a stream whose agent holds the entries of known
// (entry ID -> revision) and nothing else. The state takes known over.
func New(known map[string]int64) *State {
	if known == nil {
		known = map[string]int64{}
	}
	return &State{sent: known}
}

// Now is what the agent may hold now.
type Now struct {
	// TrustDomain is the server's, whose bundle never comes through
	// federation.
	TrustDomain spiffeid.TrustDomain
	// Entries are the entries the agent may obtain, by ID.
	Entries map[string]registry.Entry
	// Bundle is the trust domain's bundle.
	Bundle *spiffebundle.Bundle
	// Federation says whether the server hands out federated bundles;
	// Federated are they (nil ones are skipped).
	Federation bool
	Federated  []*spiffebundle.Bundle
	// Tainted are the tainted CAs; Active is the CA that signs, or nil.
	Tainted []*x509.Certificate
	Active  *x509.Certificate
	// TaintedJWTKeys and TaintedWITKeys are the kids of the tainted JWT
	// and WIT keys.
	TaintedJWTKeys, TaintedWITKeys []string
}

// Next returns the message that brings the agent from what the stream sent
// to now, and records it as sent; nil when nothing changed. Entries come
// sorted by ID, as do deleted IDs; the federated bundles come as the
// complete set when it changed (an empty set told apart from no change),
// never one of now.TrustDomain. Tainted CAs and keys come with every
// message.
func (st *State) Next(now Now) (*nodepb.SyncResponse, error) {
	resp := &nodepb.SyncResponse{}
	for id, e := range now.Entries {
		if rev, ok := st.sent[id]; !ok || rev != e.Revision {
			resp.Upserts = append(resp.Upserts, wire.EntryToPB(e))
			st.sent[id] = e.Revision
		}
	}
	for id := range st.sent {
		if _, ok := now.Entries[id]; !ok {
			resp.DeletedIds = append(resp.DeletedIds, id)
			delete(st.sent, id)
		}
	}
	slices.SortFunc(resp.Upserts, func(x, y *nodepb.Entry) int { return strings.Compare(x.Id, y.Id) })
	slices.Sort(resp.DeletedIds)
	changed := len(resp.Upserts) > 0 || len(resp.DeletedIds) > 0

	if now.Bundle == nil {
		return nil, errors.New("no bundle to send")
	}
	doc, err := now.Bundle.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encoding the bundle: %w", err)
	}
	if string(doc) != st.bundleSeq {
		resp.Bundle = doc
		st.bundleSeq = string(doc)
		changed = true
	}
	if now.Federation {
		fed := make(map[string][]byte)
		var digest strings.Builder
		bundles := slices.DeleteFunc(slices.Clone(now.Federated), func(b *spiffebundle.Bundle) bool { return b == nil })
		slices.SortFunc(bundles, func(x, y *spiffebundle.Bundle) int {
			return strings.Compare(x.TrustDomain().Name(), y.TrustDomain().Name())
		})
		for _, b := range bundles {
			if b.TrustDomain() == now.TrustDomain {
				continue // the own bundle never comes through federation
			}
			d, err := b.Marshal()
			if err != nil {
				continue
			}
			fed[b.TrustDomain().Name()] = d
			digest.WriteString(b.TrustDomain().Name())
			digest.Write(d)
		}
		if digest.String() != st.fedSent {
			resp.FederatedBundles = fed
			resp.FederatedBundlesSet = true
			st.fedSent = digest.String()
			changed = true
		}
	}
	var tainted strings.Builder
	for _, c := range now.Tainted {
		resp.TaintedX509Cas = append(resp.TaintedX509Cas, c.Raw)
		tainted.Write(c.Raw)
	}
	// Kids are text without control characters, and DER starts with
	// 0x30: "\x00" separates them all.
	for _, kid := range now.TaintedJWTKeys {
		resp.TaintedJwtKeyIds = append(resp.TaintedJwtKeyIds, kid)
		tainted.WriteString("\x00j" + kid)
	}
	for _, kid := range now.TaintedWITKeys {
		resp.TaintedWitKeyIds = append(resp.TaintedWitKeyIds, kid)
		tainted.WriteString("\x00w" + kid)
	}
	if tainted.String() != st.tainted {
		st.tainted = tainted.String()
		changed = true
	}
	if now.Active != nil {
		resp.ActiveX509Ca = now.Active.Raw
		if string(resp.ActiveX509Ca) != st.active {
			st.active = string(resp.ActiveX509Ca)
			changed = true
		}
	}
	if !changed {
		return nil, nil
	}
	return resp, nil
}
