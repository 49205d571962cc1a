package tokencache

import (
	"slices"
	"testing"
	"time"
)

type tok time.Time

func (t tok) Expires() time.Time { return time.Time(t) }
func (t tok) KeyID() string      { return "" }

// TestTokenCacheBounded: a new key in a full cache drops the expired
// tokens first, and everything if none has expired; replacing a key
// drops nothing.
func TestCacheBounded(t *testing.T) {
	now := time.Now()
	past, future := tok(now.Add(-time.Second)), tok(now.Add(time.Hour))
	var c Cache[tok]
	if _, ok := c.Get("a"); ok {
		t.Fatal("the zero cache holds a token")
	}
	c.Put("old", past, now, 2)
	c.Put("live", future, now, 2)
	c.Put("live", future, now, 2) // a replacement: nothing dropped
	if _, ok := c.Get("old"); !ok {
		t.Fatal("a replacement dropped a token")
	}
	c.Put("new", future, now, 2)
	if _, ok := c.Get("old"); ok {
		t.Fatal("the expired token was kept")
	}
	for _, k := range []string{"live", "new"} {
		if _, ok := c.Get(k); !ok {
			t.Fatalf("%s was dropped", k)
		}
	}
	c.Put("third", future, now, 2) // full of live tokens: all dropped
	if _, ok := c.Get("live"); ok || len(c.items) != 1 {
		t.Fatalf("the full cache was not cleared: %v", c.items)
	}
}

// kidTok is a token that never expires, signed by the key it names.
type kidTok string

func (kidTok) Expires() time.Time { return time.Now().Add(time.Hour) }
func (t kidTok) KeyID() string    { return string(t) }

// DropKeys drops the tokens of every key keep refuses, counts them, and
// names each such key once, sorted.
func TestCacheDropKeys(t *testing.T) {
	var c Cache[kidTok]
	now := time.Now()
	for k, kid := range map[string]string{"a": "k3", "b": "k2", "c": "k1", "d": "k3"} {
		c.Put(k, kidTok(kid), now, 10)
	}
	n, gone := c.DropKeys(func(kid string) bool { return kid == "k2" })
	if n != 3 || !slices.Equal(gone, []string{"k1", "k3"}) {
		t.Fatalf("dropped %d, keys %q; want 3, [k1 k3]", n, gone)
	}
	if _, ok := c.Get("b"); !ok {
		t.Fatal("the kept key's token was dropped")
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, ok := c.Get(k); ok {
			t.Fatalf("token %q of a refused key was kept", k)
		}
	}
	if n, gone := c.DropKeys(func(string) bool { return true }); n != 0 || gone != nil {
		t.Fatalf("keeping every key dropped %d (%q)", n, gone)
	}
}

// Each sees every cached token with its key, and DeleteFunc drops those
// it is told to and counts them.
func TestCacheEachAndDeleteFunc(t *testing.T) {
	var c Cache[kidTok]
	now := time.Now()
	c.Put("a", "k1", now, 10)
	c.Put("b", "k2", now, 10)
	seen := map[string]kidTok{}
	c.Each(func(key string, t kidTok) { seen[key] = t })
	if len(seen) != 2 || seen["a"] != "k1" || seen["b"] != "k2" {
		t.Fatalf("Each saw %v", seen)
	}
	if n := c.DeleteFunc(func(key string, _ kidTok) bool { return key == "a" }); n != 1 {
		t.Fatalf("DeleteFunc dropped %d, want 1", n)
	}
	if _, ok := c.Get("a"); ok {
		t.Fatal("the dropped token is still cached")
	}
	if _, ok := c.Get("b"); !ok {
		t.Fatal("the other token was dropped")
	}
}
