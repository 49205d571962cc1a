package issuer

import (
	"slices"
	"testing"
	"time"
)

type tok time.Time

func (t tok) expires() time.Time { return time.Time(t) }
func (t tok) keyID() string      { return "" }

// TestTokenCacheBounded: a new key in a full cache drops the expired
// tokens first, and everything if none has expired; replacing a key
// drops nothing.
func TestTokenCacheBounded(t *testing.T) {
	now := time.Now()
	past, future := tok(now.Add(-time.Second)), tok(now.Add(time.Hour))
	var c tokenCache[tok]
	if _, ok := c.get("a"); ok {
		t.Fatal("the zero cache holds a token")
	}
	c.put("old", past, now, 2)
	c.put("live", future, now, 2)
	c.put("live", future, now, 2) // a replacement: nothing dropped
	if _, ok := c.get("old"); !ok {
		t.Fatal("a replacement dropped a token")
	}
	c.put("new", future, now, 2)
	if _, ok := c.get("old"); ok {
		t.Fatal("the expired token was kept")
	}
	for _, k := range []string{"live", "new"} {
		if _, ok := c.get(k); !ok {
			t.Fatalf("%s was dropped", k)
		}
	}
	c.put("third", future, now, 2) // full of live tokens: all dropped
	if _, ok := c.get("live"); ok || len(c.items) != 1 {
		t.Fatalf("the full cache was not cleared: %v", c.items)
	}
}

// kidTok is a token that never expires, signed by the key it names.
type kidTok string

func (kidTok) expires() time.Time { return time.Now().Add(time.Hour) }
func (t kidTok) keyID() string    { return string(t) }

// dropKeys drops the tokens of every key keep refuses, counts them, and
// names each such key once, sorted.
func TestTokenCacheDropKeys(t *testing.T) {
	var c tokenCache[kidTok]
	now := time.Now()
	for k, kid := range map[string]string{"a": "k3", "b": "k2", "c": "k1", "d": "k3"} {
		c.put(k, kidTok(kid), now, 10)
	}
	n, gone := c.dropKeys(func(kid string) bool { return kid == "k2" })
	if n != 3 || !slices.Equal(gone, []string{"k1", "k3"}) {
		t.Fatalf("dropped %d, keys %q; want 3, [k1 k3]", n, gone)
	}
	if _, ok := c.get("b"); !ok {
		t.Fatal("the kept key's token was dropped")
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, ok := c.get(k); ok {
			t.Fatalf("token %q of a refused key was kept", k)
		}
	}
	if n, gone := c.dropKeys(func(string) bool { return true }); n != 0 || gone != nil {
		t.Fatalf("keeping every key dropped %d (%q)", n, gone)
	}
}
