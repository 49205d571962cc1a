package registrytest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// A NotifyStore keeps entries and every node-side record, and tells of
// their writes.
type NotifyStore interface {
	registry.Store
	NodeStore
	registry.Notifier
}

// SignalWait bounds every wait of the notification suites for a signal
// that must come. It is generous so that a loaded machine does not fail
// them; the suites assert no latency.
const SignalWait = 10 * time.Second

// allTopics are the topics the suites know; a store may define no others.
var allTopics = []registry.Topic{registry.TopicEntries, registry.TopicAgents, registry.TopicBundles, registry.TopicAuthorities, registry.TopicFederation}

// RunNotify runs the contract suite of [registry.Notifier] against stores
// made by newStore, which must return a new, empty store each time it is
// called and release it with t.Cleanup. Writes are made through the store
// and watched through the same store. The store must not signal without a
// write while the suite runs (a store that signals every topic after a
// reconnection must be connected when newStore returns).
//
// The suite checks that:
//   - each kind of write (entries created, updated, deleted, created in a
//     batch if the store is a [registry.BatchCreator]; agents put, banned,
//     deleted; federated bundles put and deleted; server bundles put;
//     authority marks put; federation relationships created, updated and
//     deleted if the store is a [registry.FederationStore])
//     signals every subscriber of its topic, and of several topics
//     including it;
//   - a subscriber reading the store on the signal finds the write;
//   - a write signals no subscriber of other topics, nor of no topic, and
//     join token writes signal nobody: cross-topic silence is part of the
//     contract, so that a consumer of one topic is not woken by the
//     traffic of another. (A store may still signal without a write, say
//     after losing its connection; the suite does not provoke that.);
//   - the channel has capacity one and a subscriber that never reads does
//     not block writers, however many;
//   - many subscribers of one topic are each signalled;
//   - after cancel, a subscription receives nothing, and its channel is
//     not closed; cancel is idempotent;
//   - concurrent subscribing, cancelling and writing is safe (run it with
//     -race).
func RunNotify(t *testing.T, newStore func(t *testing.T) NotifyStore) {
	runNotify(t, func(t *testing.T) (NotifyStore, NotifyStore) {
		s := newStore(t)
		return s, s
	})
}

// RunNotifyShared runs the suite of [RunNotify] with writes made through
// one store and subscriptions on another, as servers sharing a database
// are: newPair returns two stores on one new, empty database, and the
// watcher must tell of the writer's writes, with the same restriction on
// signals without a write.
func RunNotifyShared(t *testing.T, newPair func(t *testing.T) (writer, watcher NotifyStore)) {
	runNotify(t, newPair)
}

func runNotify(t *testing.T, newPair func(t *testing.T) (writer, watcher NotifyStore)) {
	t.Run("EachWrite", func(t *testing.T) { testNotifyEachWrite(t, newPair) })
	t.Run("ReadableOnSignal", func(t *testing.T) { testNotifyReadable(t, newPair) })
	t.Run("ManySubscribers", func(t *testing.T) { testNotifyMany(t, newPair) })
	t.Run("Cancel", func(t *testing.T) { testNotifyCancel(t, newPair) })
	t.Run("Coalesce", func(t *testing.T) { testNotifyCoalesce(t, newPair) })
}

// WaitSignal waits up to [SignalWait] for a value on ch, and fails the test
// if none comes.
func WaitSignal(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	timer := time.NewTimer(SignalWait)
	defer timer.Stop()
	select {
	case _, ok := <-ch:
		require.True(t, ok, "%s: the channel was closed", what)
	case <-timer.C:
		require.FailNow(t, "no signal", "%s: no signal within %s", what, SignalWait)
	}
}

// quiet fails the test if ch holds a value or is closed.
func quiet(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case _, ok := <-ch:
		if !ok {
			assert.Fail(t, "closed channel", "%s: the channel was closed", what)
		} else {
			assert.Fail(t, "unexpected signal", "%s was signalled", what)
		}
	default:
	}
}

func drain(chs ...<-chan struct{}) {
	for _, ch := range chs {
		select {
		case <-ch:
		default:
		}
	}
}

func subscribe(t testing.TB, s registry.Notifier, topics registry.Topic) <-chan struct{} {
	ch, cancel := s.Subscribe(topics)
	t.Cleanup(cancel)
	return ch
}

func bundleDoc(n int) []byte { return fmt.Appendf(nil, `{"keys":[],"spiffe_sequence":%d}`, n) }

// notifyStep is one write and what a reader sees after it.
type notifyStep struct {
	name  string
	topic registry.Topic // 0: the write has no topic
	write func(t *testing.T)
	check func(t *testing.T) // reads through the watcher
}

func testNotifyEachWrite(t *testing.T, newPair func(t *testing.T) (writer, watcher NotifyStore)) {
	w, r := newPair(t)
	ctx := t.Context()
	subs := map[registry.Topic]<-chan struct{}{}
	var all registry.Topic
	for _, topic := range allTopics {
		subs[topic] = subscribe(t, r, topic)
		all |= topic
	}
	every := subscribe(t, r, all)
	none := subscribe(t, r, 0)
	// pairs listens to entries and agents, but not bundles or authorities.
	pairs := subscribe(t, r, registry.TopicEntries|registry.TopicAgents)

	var e registry.Entry
	agentID := id("/agent/notify")
	bundleTD := spiffeid.RequireTrustDomainFromString("other.org")
	steps := []notifyStep{
		{"Create", registry.TopicEntries, func(t *testing.T) {
			e = mustCreate(t, w, entry("/notify", "/agent", sel("unix", "uid:1")))
		}, func(t *testing.T) {
			got, err := r.Get(ctx, e.ID)
			require.NoError(t, err)
			assert.Equal(t, e, got)
		}},
		{"Update", registry.TopicEntries, func(t *testing.T) {
			e.Hint = "updated"
			var err error
			e, err = w.Update(ctx, e)
			require.NoError(t, err)
		}, func(t *testing.T) {
			got, err := r.Get(ctx, e.ID)
			require.NoError(t, err)
			assert.Equal(t, "updated", got.Hint)
		}},
		{"Delete", registry.TopicEntries, func(t *testing.T) {
			_, err := w.Delete(ctx, e.ID, 0)
			require.NoError(t, err)
		}, func(t *testing.T) {
			_, err := r.Get(ctx, e.ID)
			require.ErrorIs(t, err, registry.ErrNotFound)
		}},
		{"PutAgent", registry.TopicAgents, func(t *testing.T) {
			_, err := w.PutAgent(ctx, agent("/agent/notify"))
			require.NoError(t, err)
		}, func(t *testing.T) {
			_, err := r.GetAgent(ctx, agentID)
			require.NoError(t, err)
		}},
		{"UpdateAgent", registry.TopicAgents, func(t *testing.T) {
			a := agent("/agent/notify")
			a.SerialNumber = "2c"
			_, err := w.UpdateAgent(ctx, a)
			require.NoError(t, err)
		}, func(t *testing.T) {
			a, err := r.GetAgent(ctx, agentID)
			require.NoError(t, err)
			assert.Equal(t, "2c", a.SerialNumber)
		}},
		{"BanAgent", registry.TopicAgents, func(t *testing.T) {
			a := agent("/agent/notify")
			a.Banned = true
			_, err := w.PutAgent(ctx, a)
			require.NoError(t, err)
		}, func(t *testing.T) {
			a, err := r.GetAgent(ctx, agentID)
			require.NoError(t, err)
			assert.True(t, a.Banned)
		}},
		{"DeleteAgent", registry.TopicAgents, func(t *testing.T) {
			require.NoError(t, w.DeleteAgent(ctx, agentID))
		}, func(t *testing.T) {
			_, err := r.GetAgent(ctx, agentID)
			require.ErrorIs(t, err, registry.ErrNotFound)
		}},
		{"PutBundle", registry.TopicBundles, func(t *testing.T) {
			_, err := w.PutBundle(ctx, registry.FederatedBundle{TrustDomain: bundleTD, Document: bundleDoc(1)})
			require.NoError(t, err)
		}, func(t *testing.T) {
			b, err := r.GetBundle(ctx, bundleTD)
			require.NoError(t, err)
			assert.Equal(t, bundleDoc(1), b.Document)
		}},
		{"ReplaceBundle", registry.TopicBundles, func(t *testing.T) {
			_, err := w.PutBundle(ctx, registry.FederatedBundle{TrustDomain: bundleTD, Document: bundleDoc(2)})
			require.NoError(t, err)
		}, func(t *testing.T) {
			b, err := r.GetBundle(ctx, bundleTD)
			require.NoError(t, err)
			assert.Equal(t, bundleDoc(2), b.Document)
		}},
		{"DeleteBundle", registry.TopicBundles, func(t *testing.T) {
			require.NoError(t, w.DeleteBundle(ctx, bundleTD))
		}, func(t *testing.T) {
			_, err := r.GetBundle(ctx, bundleTD)
			require.ErrorIs(t, err, registry.ErrNotFound)
		}},
		{"PutServerBundle", registry.TopicAuthorities, func(t *testing.T) {
			require.NoError(t, w.PutServerBundle(ctx, registry.ServerBundle{ServerID: "s1", Document: bundleDoc(1), ExpiresAt: time.Now().Add(time.Hour)}))
		}, func(t *testing.T) {
			list, err := r.ListServerBundles(ctx, time.Now())
			require.NoError(t, err)
			require.Len(t, list, 1)
			assert.Equal(t, bundleDoc(1), list[0].Document)
		}},
		{"ReplaceServerBundle", registry.TopicAuthorities, func(t *testing.T) {
			require.NoError(t, w.PutServerBundle(ctx, registry.ServerBundle{ServerID: "s1", Document: bundleDoc(2), ExpiresAt: time.Now().Add(time.Hour)}))
		}, func(t *testing.T) {
			list, err := r.ListServerBundles(ctx, time.Now())
			require.NoError(t, err)
			require.Len(t, list, 1)
			assert.Equal(t, bundleDoc(2), list[0].Document)
		}},
		{"PutAuthorityMark", registry.TopicAuthorities, func(t *testing.T) {
			_, err := w.PutAuthorityMark(ctx, registry.AuthorityMark{ServerID: "s1", Kind: registry.AuthorityX509, AuthorityID: "ab", ExpiresAt: time.Now().Add(time.Hour)})
			require.NoError(t, err)
		}, func(t *testing.T) {
			marks, err := r.ListAuthorityMarks(ctx, time.Now())
			require.NoError(t, err)
			require.Len(t, marks, 1)
			assert.False(t, marks[0].Revoked)
		}},
		{"RevokeAuthorityMark", registry.TopicAuthorities, func(t *testing.T) {
			_, err := w.PutAuthorityMark(ctx, registry.AuthorityMark{ServerID: "s1", Kind: registry.AuthorityX509, AuthorityID: "ab", Revoked: true, ExpiresAt: time.Now().Add(time.Hour)})
			require.NoError(t, err)
		}, func(t *testing.T) {
			marks, err := r.ListAuthorityMarks(ctx, time.Now())
			require.NoError(t, err)
			require.Len(t, marks, 1)
			assert.True(t, marks[0].Revoked)
		}},
		{"JoinTokens", 0, func(t *testing.T) {
			tok := token("notify", time.Now().Add(time.Hour))
			require.NoError(t, w.CreateToken(ctx, tok))
			_, err := w.DeleteToken(ctx, tok.ID)
			require.NoError(t, err)
			_, err = w.PruneTokens(ctx, time.Now())
			require.NoError(t, err)
		}, func(*testing.T) {}},
	}
	if fw, ok := w.(registry.FederationStore); ok {
		fr := r.(registry.FederationStore)
		rel := relationship("notify.example", "https://notify.example/")
		steps = append(steps, notifyStep{"CreateFederationRelationship", registry.TopicFederation, func(t *testing.T) {
			_, err := fw.CreateFederationRelationship(ctx, rel)
			require.NoError(t, err)
		}, func(t *testing.T) {
			_, err := fr.GetFederationRelationship(ctx, rel.TrustDomain)
			require.NoError(t, err)
		}}, notifyStep{"UpdateFederationRelationship", registry.TopicFederation, func(t *testing.T) {
			_, err := fw.UpdateFederationRelationship(ctx, relationship("notify.example", "https://notify2.example/"))
			require.NoError(t, err)
		}, func(t *testing.T) {
			got, err := fr.GetFederationRelationship(ctx, rel.TrustDomain)
			require.NoError(t, err)
			assert.Equal(t, "https://notify2.example/", got.BundleEndpointURL)
		}}, notifyStep{"DeleteFederationRelationship", registry.TopicFederation, func(t *testing.T) {
			require.NoError(t, fw.DeleteFederationRelationship(ctx, rel.TrustDomain))
		}, func(t *testing.T) {
			_, err := fr.GetFederationRelationship(ctx, rel.TrustDomain)
			require.ErrorIs(t, err, registry.ErrNotFound)
		}})
	}
	if b, ok := w.(registry.BatchCreator); ok {
		var created []registry.Entry
		steps = append(steps, notifyStep{"CreateBatch", registry.TopicEntries, func(t *testing.T) {
			res, err := b.CreateBatch(ctx, []registry.Entry{
				entry("/batch/1", "/agent", sel("unix", "uid:11")),
				entry("/batch/2", "/agent", sel("unix", "uid:12")),
			})
			require.NoError(t, err)
			for _, r := range res {
				require.NoError(t, r.Err)
				created = append(created, r.Entry)
			}
		}, func(t *testing.T) {
			for _, c := range created {
				_, err := r.Get(ctx, c.ID)
				require.NoError(t, err)
			}
		}})
	}

	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			drain(every, none, pairs)
			for _, ch := range subs {
				drain(ch)
			}
			st.write(t)
			fence := st.topic
			if fence == 0 {
				// Nothing to wait for: an entry write follows, whose signal
				// comes after any the token writes might have caused.
				fence = registry.TopicEntries
				mustCreate(t, w, entry("/fence", "/agent", sel("unix", "uid:99")))
			}
			// The subscriber of the topic reads as soon as it is signalled.
			WaitSignal(t, subs[fence], fence.String()+" subscriber")
			st.check(t)
			WaitSignal(t, every, "subscriber of every topic")
			if fence&(registry.TopicEntries|registry.TopicAgents) != 0 {
				WaitSignal(t, pairs, "subscriber of entries and agents")
			} else {
				quiet(t, pairs, "subscriber of entries and agents")
			}
			for topic, ch := range subs {
				if topic != fence {
					quiet(t, ch, topic.String()+" subscriber")
				}
			}
			quiet(t, none, "subscriber of no topic")
		})
	}
}

// readOnSignal starts a reader that runs read as soon as ch is signalled,
// while the write that signals may still be returning, and reports read's
// error.
func readOnSignal(ch <-chan struct{}, read func() error) <-chan error {
	drain(ch)
	out := make(chan error, 1)
	go func() {
		timer := time.NewTimer(SignalWait)
		defer timer.Stop()
		select {
		case <-ch:
			out <- read()
		case <-timer.C:
			out <- fmt.Errorf("no signal within %s", SignalWait)
		}
	}()
	return out
}

// testNotifyReadable repeats writes, each read by a reader woken by its
// signal, to catch a store that signals before its write is visible.
func testNotifyReadable(t *testing.T, newPair func(t *testing.T) (writer, watcher NotifyStore)) {
	w, r := newPair(t)
	ctx := t.Context()
	entries := subscribe(t, r, registry.TopicEntries)
	agents := subscribe(t, r, registry.TopicAgents)
	for i := range 20 {
		after := head(t, r)
		read := readOnSignal(entries, func() error {
			evs, err := r.Changes(ctx, after, 1)
			if err == nil && len(evs) == 0 {
				err = errors.New("the change feed does not list the write yet")
			}
			return err
		})
		e := mustCreate(t, w, entry(fmt.Sprintf("/readable/%d", i), "/agent", sel("unix", fmt.Sprintf("uid:%d", i))))
		require.NoError(t, <-read, "create %d", i)

		read = readOnSignal(entries, func() error {
			if _, err := r.Get(ctx, e.ID); !errors.Is(err, registry.ErrNotFound) {
				return fmt.Errorf("the entry is still readable (%v)", err)
			}
			return nil
		})
		_, err := w.Delete(ctx, e.ID, 0)
		require.NoError(t, err)
		require.NoError(t, <-read, "delete %d", i)

		a := agent(fmt.Sprintf("/agent/readable/%d", i))
		read = readOnSignal(agents, func() error {
			_, err := r.GetAgent(ctx, a.ID)
			return err
		})
		_, err = w.PutAgent(ctx, a)
		require.NoError(t, err)
		require.NoError(t, <-read, "agent %d", i)
	}
}

func testNotifyMany(t *testing.T, newPair func(t *testing.T) (writer, watcher NotifyStore)) {
	w, r := newPair(t)
	const n = 50
	var entries, agents []<-chan struct{}
	for i := range n {
		entries = append(entries, subscribe(t, r, registry.TopicEntries))
		if i%2 == 0 {
			agents = append(agents, subscribe(t, r, registry.TopicAgents|registry.TopicBundles))
		}
	}
	mustCreate(t, w, entry("/many", "/agent", sel("unix", "uid:1")))
	for i, ch := range entries {
		WaitSignal(t, ch, fmt.Sprintf("entries subscriber %d", i))
	}
	_, err := w.PutAgent(t.Context(), agent("/agent/many"))
	require.NoError(t, err)
	for i, ch := range agents {
		WaitSignal(t, ch, fmt.Sprintf("agents subscriber %d", i))
	}
	for i, ch := range entries {
		quiet(t, ch, fmt.Sprintf("entries subscriber %d", i))
	}
}

func testNotifyCancel(t *testing.T, newPair func(t *testing.T) (writer, watcher NotifyStore)) {
	w, r := newPair(t)
	gone, cancel := r.Subscribe(registry.TopicEntries | registry.TopicAgents)
	live := subscribe(t, r, registry.TopicEntries|registry.TopicAgents)
	cancel()
	cancel() // idempotent
	mustCreate(t, w, entry("/cancel", "/agent", sel("unix", "uid:1")))
	WaitSignal(t, live, "live subscriber")
	_, err := w.PutAgent(t.Context(), agent("/agent/cancel"))
	require.NoError(t, err)
	WaitSignal(t, live, "live subscriber")
	quiet(t, gone, "cancelled subscriber")

	// A value already sent stays for the subscriber to take; then nothing.
	pending, cancel := r.Subscribe(registry.TopicEntries)
	mustCreate(t, w, entry("/cancel/2", "/agent", sel("unix", "uid:2")))
	WaitSignal(t, live, "live subscriber")
	cancel()
	drain(pending)
	mustCreate(t, w, entry("/cancel/3", "/agent", sel("unix", "uid:3")))
	WaitSignal(t, live, "live subscriber")
	quiet(t, pending, "cancelled subscriber")
}

func testNotifyCoalesce(t *testing.T, newPair func(t *testing.T) (writer, watcher NotifyStore)) {
	w, r := newPair(t)
	ctx := t.Context()
	var topics registry.Topic
	for _, topic := range allTopics {
		topics |= topic
	}
	lazy := subscribe(t, r, topics)
	assert.Equal(t, 1, cap(lazy), "the channel's capacity")

	// Writers never wait for the subscriber that does not read, while
	// others subscribe and cancel.
	const writers, writes = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*writes)
	for g := range writers {
		wg.Go(func() {
			for i := range writes {
				var err error
				if i%2 == 0 {
					_, err = w.Create(ctx, entry(fmt.Sprintf("/coalesce/%d/%d", g, i), "/agent", sel("unix", fmt.Sprintf("uid:%d", g*writes+i))))
				} else {
					_, err = w.PutAgent(ctx, agent(fmt.Sprintf("/agent/coalesce/%d/%d", g, i)))
				}
				errs <- err
			}
		})
		wg.Go(func() {
			for range writes {
				_, cancel := r.Subscribe(topics)
				cancel()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	WaitSignal(t, lazy, "subscriber that never read")
	assert.Len(t, listAll(t, r, registry.Filter{}, 0), writers*writes/2, "every entry written")
}
