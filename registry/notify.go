package registry

import (
	"strconv"
	"strings"
)

// Topic names a kind of record a [Notifier] tells of. Topics are bits: a
// subscriber listens to several by or-ing them.
type Topic uint8

// The topics of a [Notifier].
const (
	// TopicEntries: registration entries, whose writes the change feed
	// lists ([Writer], [BatchCreator]).
	TopicEntries Topic = 1 << iota
	// TopicAgents: agent records ([AgentStore]): attestation, renewal,
	// eviction, ban.
	TopicAgents
	// TopicBundles: the bundles of foreign trust domains ([BundleStore]).
	TopicBundles
	// TopicAuthorities: the servers' shares of the trust domain's own
	// bundle ([ServerBundleStore]), taints included.
	TopicAuthorities
	// TopicFederation: the federation relationships kept in the datastore
	// ([FederationStore]).
	TopicFederation
)

var topicNames = [...]string{"entries", "agents", "bundles", "authorities", "federation"}

// String returns the topic's name ("entries", "agents", "bundles",
// "authorities", "federation"), or the names of several topics joined by "|".
func (t Topic) String() string {
	if t == 0 {
		return "none"
	}
	var names []string
	for i, name := range topicNames {
		if t&(1<<i) != 0 {
			names = append(names, name)
			t &^= 1 << i
		}
	}
	if t != 0 {
		names = append(names, "Topic(0x"+strconv.FormatUint(uint64(t), 16)+")")
	}
	return strings.Join(names, "|")
}

// A Notifier is a store that tells consumers of writes, so that they read
// the store again at once instead of polling it.
//
// A signal means "look again": the consumer reads the change feed (for
// [TopicEntries]) or the records of the topic. It never says what changed,
// several writes may coalesce into one signal, and a store may signal
// without a write, for example after it lost track of writes (a dropped
// database connection), so that consumers catch up. A write signals the
// subscribers of its own topic only, after the write is visible to every
// reader: a consumer that reads on a signal finds the write, or a later
// state.
//
// Which writes a store tells of is the backend's to document:
// registry/memstore and SQLite tell of writes made through the same store
// value; PostgreSQL of writes made by every process sharing the database.
// Consumers therefore keep a slow poll as a safety net.
type Notifier interface {
	// Subscribe returns a channel that receives a value after a write of
	// any of topics, and a function that ends the subscription. The
	// channel has capacity one, so that signals coalesce and a write never
	// waits for a slow subscriber; it is never closed. After cancel
	// returns, no further value is sent; cancel is idempotent. A
	// subscription to no topic is never signalled.
	Subscribe(topics Topic) (changes <-chan struct{}, cancel func())
}
