package issuer

import (
	"testing"
	"time"
)

type tok time.Time

func (t tok) expires() time.Time { return time.Time(t) }

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
