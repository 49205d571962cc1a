package partition_test

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
)

// TestLab checks the lab itself: a TCP connection between two nodes
// carries data, stalls while the link is cut (its packets are dropped, not
// refused), carries the same connection on after the heal, and over a slow
// lossy link loses packets that TCP sends again.
func TestLab(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	l := newLab(t)
	a, b := l.addNode("a"), l.addNode("b")
	lis := b.listen(7000)
	accepted := make(chan net.Conn, 1)
	t.Cleanup(func() {
		lis.Close()
		// Its FIN may be lost on the lossy link that the lab stops
		// forwarding: closed here.
		select {
		case c := <-accepted:
			c.Close()
		default:
		}
	})
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			accepted <- c
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	var c net.Conn
	require.NoError(t, inNetNS(a.ns, func() (err error) {
		c, err = net.DialTimeout("tcp", b.hostPort(7000), 10*time.Second)
		return err
	}))
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	echo := func(msg string, within time.Duration) (string, error) {
		c.SetDeadline(time.Now().Add(within))
		if _, err := c.Write([]byte(msg + "\n")); err != nil {
			return "", err
		}
		return r.ReadString('\n')
	}
	got, err := echo("one", 10*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "one\n", got)

	l.cut(a, b)
	_, droppedBefore := l.counts(a, b)
	_, err = echo("two", 2*time.Second)
	var ne net.Error
	require.ErrorAs(t, err, &ne, "nothing crosses a cut link")
	require.True(t, ne.Timeout(), "a cut link drops packets: the connection stalls, it is not refused: %v", err)
	_, droppedAfter := l.counts(a, b)
	assert.Greater(t, droppedAfter, droppedBefore)

	l.heal(a, b)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	got, err = r.ReadString('\n')
	require.NoError(t, err, "the connection carries on after the heal")
	assert.Equal(t, "two\n", got)

	l.slow(a, b, 20*time.Millisecond, 0.3)
	fwd0, drop0 := l.counts(a, b)
	for i := range 10 {
		got, err := echo("three", 60*time.Second)
		require.NoError(t, err, "echo %d over the lossy link", i)
		assert.Equal(t, "three\n", got)
	}
	fwd1, drop1 := l.counts(a, b)
	assert.Greater(t, fwd1, fwd0)
	assert.Greater(t, drop1, drop0, "30%% loss over 20 segments or more drops some")
}
