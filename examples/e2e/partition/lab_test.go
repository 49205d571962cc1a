package partition_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spiffekit/spiffekit/internal/testing/component"
)

// A lab is a small network of its own: every node is a network namespace
// joined by a veth pair to one router namespace, which sends every packet
// between two nodes through a TUN device that the lab reads. For each pair
// of nodes the lab forwards packets at once, drops them all (a partition),
// or delays them and drops a share (a slow, lossy link), as netem would;
// both ends' kernels see the loss and the delay, and their TCP stacks deal
// with it as on a real network. Nothing outside the lab's namespaces is
// touched, and they are deleted when the test ends.
//
// netem itself (tc qdisc ... netem) needs a kernel built with
// CONFIG_NET_SCH_NETEM, which the machines these tests run on lack; TUN
// devices (CONFIG_TUN) they have.
type lab struct {
	t      testing.TB
	prefix string // of the lab's namespace names
	router string
	tun    *os.File
	queue  chan delayed
	stop   chan struct{}
	wg     sync.WaitGroup

	mu    sync.Mutex
	nodes []*node
	links map[pair]*link
}

// A node is one network namespace of a lab, with one address.
type node struct {
	lab  *lab
	name string // the node's name in the lab, for messages
	ns   string // the network namespace
	addr netip.Addr
}

// pair names the link between two nodes, lower address first.
type pair struct{ a, b netip.Addr }

func pairOf(a, b netip.Addr) pair {
	if b.Less(a) {
		a, b = b, a
	}
	return pair{a, b}
}

// link is what the lab does to the packets between two nodes, and what it
// did.
type link struct {
	cut       bool
	delay     time.Duration
	loss      float64 // share of packets dropped, 0 to 1
	forwarded atomic.Int64
	dropped   atomic.Int64
}

// delayed is a packet waiting for its time.
type delayed struct {
	due time.Time
	pkt []byte
}

// nsPrefix begins the name of every namespace the tests make; the creating
// process's pid follows, so that namespaces left behind by a test binary
// that was killed can be told apart and removed.
const nsPrefix = "skpart-"

var labSeq atomic.Int64

// newLab makes the router namespace and its TUN device, or skips the test
// when this machine cannot (not root, no ip command, no network namespaces
// or TUN devices), saying why; with "netns" in $SPIFFEKIT_TEST_REQUIRE (CI
// sets it) the test fails instead.
func newLab(t testing.TB) *lab {
	t.Helper()
	if os.Geteuid() != 0 {
		component.Unavailable(t, "netns", "partition tests need root: they create network namespaces, veth pairs and a TUN device")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		component.Unavailable(t, "netns", "partition tests need the ip command (iproute2)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		component.Unavailable(t, "netns", fmt.Sprintf("partition tests need a TUN device: %v", err))
	}
	removeStale(t)
	l := &lab{
		t:      t,
		prefix: fmt.Sprintf("%s%d-%d-", nsPrefix, os.Getpid(), labSeq.Add(1)),
		queue:  make(chan delayed, 4096),
		stop:   make(chan struct{}),
		links:  make(map[pair]*link),
	}
	l.router = l.prefix + "router"
	if out, err := exec.Command("ip", "netns", "add", l.router).CombinedOutput(); err != nil {
		component.Unavailable(t, "netns", fmt.Sprintf("partition tests need network namespaces: ip netns add: %v: %s", err, bytes.TrimSpace(out)))
	}
	t.Cleanup(l.close)
	l.ip("netns", "exec", l.router, "sh", "-c",
		"echo 1 > /proc/sys/net/ipv4/ip_forward && echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter && echo 0 > /proc/sys/net/ipv4/conf/default/rp_filter")
	err := inNetNS(l.router, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq("tun0")
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF: %w", err)
		}
		l.tun = os.NewFile(uintptr(fd), "tun0")
		return nil
	})
	if err != nil {
		t.Fatalf("lab: making the router's TUN device: %v", err)
	}
	l.ip("-n", l.router, "link", "set", "lo", "up")
	l.ip("-n", l.router, "link", "set", "tun0", "up")
	// Every packet that arrives from a node (see addNode) is routed to
	// tun0; what the lab writes back to tun0 is routed by the main table,
	// to the node it is for.
	l.ip("-n", l.router, "route", "add", "default", "dev", "tun0", "table", "100")
	l.wg.Add(2)
	go l.read()
	go l.write()
	return l
}

// removeStale deletes the namespaces that partition tests of a process no
// longer running left behind (a test binary killed before its cleanup).
func removeStale(t testing.TB) {
	entries, _ := os.ReadDir("/var/run/netns")
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), nsPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue // not ours, or its process still runs
		}
		if out, err := exec.Command("ip", "netns", "del", e.Name()).CombinedOutput(); err != nil {
			t.Logf("lab: removing the stale namespace %s: %v: %s", e.Name(), err, out)
		}
	}
}

// ip runs the ip command, failing the test if it fails.
func (l *lab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
}

// close stops the forwarding and deletes the lab's namespaces (which
// deletes their veth pairs and the TUN device). The processes in them
// are gone by then: their cleanups were registered after the lab's.
func (l *lab) close() {
	close(l.stop)
	if l.tun != nil {
		l.tun.Close()
	}
	l.wg.Wait()
	l.mu.Lock()
	names := []string{l.router}
	for _, n := range l.nodes {
		names = append(names, n.ns)
	}
	l.mu.Unlock()
	for _, name := range names {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			l.t.Errorf("lab: deleting the namespace %s: %v: %s", name, err, out)
		}
	}
}

// addNode makes a namespace with one address, 10.77.<i>.2, joined to the
// router (10.77.<i>.1) by a veth pair, its default route.
func (l *lab) addNode(name string) *node {
	l.t.Helper()
	l.mu.Lock()
	i := len(l.nodes) + 1
	n := &node{lab: l, name: name, ns: fmt.Sprintf("%s%d-%s", l.prefix, i, name),
		addr: netip.AddrFrom4([4]byte{10, 77, byte(i), 2})}
	l.mu.Unlock()
	l.ip("netns", "add", n.ns)
	l.mu.Lock()
	l.nodes = append(l.nodes, n)
	l.mu.Unlock()
	peer := "n" + strconv.Itoa(i)
	gw := netip.AddrFrom4([4]byte{10, 77, byte(i), 1})
	l.ip("link", "add", "eth0", "netns", n.ns, "type", "veth", "peer", "name", peer, "netns", l.router)
	l.ip("-n", n.ns, "addr", "add", n.addr.String()+"/24", "dev", "eth0")
	l.ip("-n", n.ns, "link", "set", "lo", "up")
	l.ip("-n", n.ns, "link", "set", "eth0", "up")
	l.ip("-n", n.ns, "route", "add", "default", "via", gw.String())
	l.ip("-n", l.router, "addr", "add", gw.String()+"/24", "dev", peer)
	l.ip("-n", l.router, "link", "set", peer, "up")
	l.ip("-n", l.router, "rule", "add", "iif", peer, "lookup", "100")
	return n
}

// hostPort returns "addr:port" of the node.
func (n *node) hostPort(port int) string {
	return netip.AddrPortFrom(n.addr, uint16(port)).String()
}

// command returns argv run inside the node's namespace.
func (n *node) command(argv ...string) []string {
	return append([]string{"ip", "netns", "exec", n.ns}, argv...)
}

// link returns the link between a and b, made on first use.
func (l *lab) link(a, b *node) *link { return l.linkOf(pairOf(a.addr, b.addr)) }

func (l *lab) linkOf(p pair) *link {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.links[p]
	if k == nil {
		k = &link{}
		l.links[p] = k
	}
	return k
}

// set changes what the lab does to the packets between a and b.
func (l *lab) set(a, b *node, f func(*link)) {
	k := l.link(a, b)
	l.mu.Lock()
	f(k)
	l.mu.Unlock()
}

// cut drops every packet between a and b, both ways, until heal.
func (l *lab) cut(a, b *node) {
	l.t.Logf("lab: cutting %s from %s", a.name, b.name)
	l.set(a, b, func(k *link) { k.cut = true })
}

// heal undoes cut and slow: packets between a and b pass at once again.
func (l *lab) heal(a, b *node) {
	l.t.Logf("lab: healing the link between %s and %s", a.name, b.name)
	l.set(a, b, func(k *link) { k.cut, k.delay, k.loss = false, 0, 0 })
}

// slow delays every packet between a and b by delay, and drops the share
// loss of them, both ways.
func (l *lab) slow(a, b *node, delay time.Duration, loss float64) {
	l.t.Logf("lab: link between %s and %s: delay %s, loss %.0f%%", a.name, b.name, delay, loss*100)
	l.set(a, b, func(k *link) { k.delay, k.loss = delay, loss })
}

// counts returns how many packets between a and b the lab forwarded and
// dropped so far.
func (l *lab) counts(a, b *node) (forwarded, dropped int64) {
	k := l.link(a, b)
	return k.forwarded.Load(), k.dropped.Load()
}

// read takes each packet the router sends to tun0 and drops it or queues
// it for write, as the link it crosses says.
func (l *lab) read() {
	defer l.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, err := l.tun.Read(buf)
		if err != nil {
			select {
			case <-l.stop:
			default:
				l.t.Errorf("lab: reading the TUN device: %v", err)
			}
			return
		}
		pkt := buf[:n]
		var delay time.Duration
		if len(pkt) >= 20 && pkt[0]>>4 == 4 {
			src := netip.AddrFrom4([4]byte(pkt[12:16]))
			dst := netip.AddrFrom4([4]byte(pkt[16:20]))
			k := l.linkOf(pairOf(src, dst))
			l.mu.Lock()
			drop := k.cut || (k.loss > 0 && rand.Float64() < k.loss)
			delay = k.delay
			l.mu.Unlock()
			if drop {
				k.dropped.Add(1)
				continue
			}
			k.forwarded.Add(1)
		}
		select {
		case l.queue <- delayed{due: time.Now().Add(delay), pkt: bytes.Clone(pkt)}:
		default: // a full queue drops, as a router's would
		}
	}
}

// write sends the queued packets back to the router when they are due, in
// the order they came.
func (l *lab) write() {
	defer l.wg.Done()
	for {
		select {
		case <-l.stop:
			return
		case d := <-l.queue:
			if wait := time.Until(d.due); wait > 0 {
				select {
				case <-l.stop:
					return
				case <-time.After(wait):
				}
			}
			if _, err := l.tun.Write(d.pkt); err != nil {
				select {
				case <-l.stop:
					return
				default:
				}
				// The kernel refuses a packet it cannot route (a node
				// being set up): lost, as on a real network.
			}
		}
	}
}

// inNetNS runs f on an OS thread that joined the network namespace ns.
// The thread is never given back to the Go scheduler: it ends with the
// goroutine, and the namespace it joined with it. Sockets and devices f
// opens stay in ns.
func inNetNS(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		fd, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// listen returns a TCP listener on the node's address.
func (n *node) listen(port int) net.Listener {
	n.lab.t.Helper()
	var lis net.Listener
	err := inNetNS(n.ns, func() (err error) {
		lis, err = net.Listen("tcp", n.hostPort(port))
		return err
	})
	if err != nil {
		n.lab.t.Fatalf("lab: listening in %s: %v", n.name, err)
	}
	return lis
}

// relay accepts connections on the node's address and port, and joins
// each to a new connection to target (network "unix" or "tcp", outside
// the lab), until the test ends. It stands for a service on that node
// whose real server runs outside the lab: traffic to it crosses the lab's
// links like any other.
func (n *node) relay(port int, network, target string) {
	l := n.lab
	lis := n.listen(port)
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	track := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if conns == nil {
			c.Close()
			return false
		}
		conns[c] = struct{}{}
		return true
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			if !track(c) {
				return
			}
			wg.Go(func() {
				defer c.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				up, err := (&net.Dialer{}).DialContext(ctx, network, target)
				cancel()
				if err != nil {
					return
				}
				if !track(up) {
					return
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { io.Copy(up, c); done <- struct{}{} }()
				go func() { io.Copy(c, up); done <- struct{}{} }()
				<-done
				c.Close()
				up.Close()
				<-done
			})
		}
	})
	l.t.Cleanup(func() {
		lis.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		conns = nil
		mu.Unlock()
		wg.Wait()
	})
}
