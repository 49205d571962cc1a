package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// figures is what one round measured of one system.
type figures struct {
	serverIdle, agentIdle          int64 // RSS, KiB
	serverLoaded, agentLoaded      int64 // RSS with the large batch, KiB
	x509One, x509Many              latency
	jwtOne, jwtMany                latency
	propagation                    latency // entry created -> the workload holds its SVID
	batchCLI                       time.Duration
	callerServed                   time.Duration // batch start -> the caller holds its entries' SVIDs
	signRate, signPerCore, rawRate float64       // X509-SVIDs per second
}

func (f figures) summary() string {
	return fmt.Sprintf("agent RSS %d/%d MiB, X.509 p50 %v, JWT p50 %v, sign %.0f/s (raw %.0f/s)",
		f.agentIdle>>10, f.agentLoaded>>10, f.x509One.p50, f.jwtOne.p50, f.signRate, f.rawRate)
}

// runScenario runs one round of the scenario against sys, with its state in
// dir.
func runScenario(ctx context.Context, cfg config, sys system, dir string) (f figures, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, err
	}
	defer func() {
		if stopErr := sys.stop(); stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	if err := sys.startServer(ctx, dir); err != nil {
		return f, err
	}
	tok, err := sys.token(ctx, "node1")
	if err != nil {
		return f, fmt.Errorf("join token: %w", err)
	}
	if err := sys.startAgent(ctx, tok); err != nil {
		return f, err
	}
	node := "spiffe://" + trustDomain + "/node1"
	me := "unix:uid:" + strconv.Itoa(os.Getuid())
	if _, err := sys.createEntries(ctx, []entrySpec{{spiffeID: "spiffe://" + trustDomain + "/workload/fetch", parentID: node, selectors: []string{me}}}); err != nil {
		return f, fmt.Errorf("creating the workload's entry: %w", err)
	}
	addr := workloadapi.WithAddr(sys.workloadAddr())
	if err := waitUntil(ctx, 5*time.Minute, "the workload's first X509-SVID", nil, func() bool {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := workloadapi.FetchX509SVID(c, addr)
		return err == nil
	}); err != nil {
		return f, err
	}

	// Idle: one entry, served once.
	sleep(ctx, 3*time.Second)
	if f.serverIdle, err = rssKiB(sys.serverPID()); err != nil {
		return f, err
	}
	if f.agentIdle, err = rssKiB(sys.agentPID()); err != nil {
		return f, err
	}

	x509Fetch := func(ctx context.Context, c *workloadapi.Client) error {
		_, err := c.FetchX509SVID(ctx)
		return err
	}
	jwtFetch := func(ctx context.Context, c *workloadapi.Client) error {
		_, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "sidebyside"})
		return err
	}
	if f.x509One, err = fetchLatency(ctx, addr, 1, cfg.fetches, x509Fetch); err != nil {
		return f, fmt.Errorf("FetchX509SVID, one client: %w", err)
	}
	if f.x509Many, err = fetchLatency(ctx, addr, cfg.clients, cfg.perClient, x509Fetch); err != nil {
		return f, fmt.Errorf("FetchX509SVID, %d clients: %w", cfg.clients, err)
	}
	if f.jwtOne, err = fetchLatency(ctx, addr, 1, cfg.fetches, jwtFetch); err != nil {
		return f, fmt.Errorf("FetchJWTSVID, one client: %w", err)
	}
	if f.jwtMany, err = fetchLatency(ctx, addr, cfg.clients, cfg.perClient, jwtFetch); err != nil {
		return f, fmt.Errorf("FetchJWTSVID, %d clients: %w", cfg.clients, err)
	}

	// One watcher, as a workload that stays connected.
	w, err := startWatch(ctx, sys.workloadAddr())
	if err != nil {
		return f, err
	}
	defer w.stop()

	// Entries created one at a time.
	var prop []time.Duration
	for i := range cfg.propagations {
		id := fmt.Sprintf("spiffe://%s/workload/prop-%d", trustDomain, i)
		start := time.Now()
		if _, err := sys.createEntries(ctx, []entrySpec{{spiffeID: id, parentID: node, selectors: []string{me}}}); err != nil {
			return f, fmt.Errorf("creating an entry: %w", err)
		}
		at, err := w.waitFor(ctx, 5*time.Minute, id)
		if err != nil {
			return f, err
		}
		prop = append(prop, at.Sub(start))
	}
	f.propagation = percentiles(prop)

	// The large batch: most entries for other workloads of the agent, some
	// for this process, spread through it.
	batch := make([]entrySpec, cfg.entries)
	var mine []string
	every := cfg.entries / max(cfg.callerEntries, 1)
	for i := range batch {
		if cfg.callerEntries > 0 && i%every == every/2 && len(mine) < cfg.callerEntries {
			id := fmt.Sprintf("spiffe://%s/workload/batch-caller-%d", trustDomain, i)
			batch[i] = entrySpec{spiffeID: id, parentID: node, selectors: []string{me}}
			mine = append(mine, id)
			continue
		}
		batch[i] = entrySpec{
			spiffeID:  fmt.Sprintf("spiffe://%s/workload/batch-%d", trustDomain, i),
			parentID:  node,
			selectors: []string{"unix:uid:" + strconv.Itoa(100000+i)},
		}
	}
	start := time.Now()
	if err := sys.createEntriesCLI(ctx, batch); err != nil {
		return f, fmt.Errorf("the large batch: %w", err)
	}
	f.batchCLI = time.Since(start)
	for _, id := range mine {
		if _, err := w.waitFor(ctx, 10*time.Minute, id); err != nil {
			return f, err
		}
	}
	f.callerServed = time.Since(start)
	if f.agentLoaded, err = steadyRSS(ctx, sys.agentPID(), start.Add(30*time.Second)); err != nil {
		return f, err
	}
	if f.serverLoaded, err = rssKiB(sys.serverPID()); err != nil {
		return f, err
	}
	w.stop()

	if f.signRate, f.signPerCore, f.rawRate, err = signing(ctx, cfg, sys); err != nil {
		return f, fmt.Errorf("signing: %w", err)
	}
	return f, nil
}

// fetchLatency runs clients Workload API clients at once, each making n
// calls of fetch on its own connection (connected and warmed before the
// clock starts), and returns the percentiles of every call's round trip.
func fetchLatency(ctx context.Context, addr workloadapi.ClientOption, clients, n int, fetch func(context.Context, *workloadapi.Client) error) (latency, error) {
	cs := make([]*workloadapi.Client, clients)
	defer func() {
		for _, c := range cs {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range cs {
		c, err := workloadapi.New(ctx, addr)
		if err != nil {
			return latency{}, err
		}
		cs[i] = c
		for range 3 { // warm: the connection, the server's caches
			if err := callWithTimeout(ctx, c, fetch); err != nil {
				return latency{}, err
			}
		}
	}
	var (
		mu   sync.Mutex
		all  []time.Duration
		errs []error
		wg   sync.WaitGroup
		go_  = make(chan struct{})
	)
	for _, c := range cs {
		wg.Go(func() {
			<-go_
			d := make([]time.Duration, 0, n)
			var failed error
			for range n {
				t := time.Now()
				if err := callWithTimeout(ctx, c, fetch); err != nil {
					failed = err
					break
				}
				d = append(d, time.Since(t))
			}
			mu.Lock()
			all = append(all, d...)
			if failed != nil {
				errs = append(errs, failed)
			}
			mu.Unlock()
		})
	}
	close(go_)
	wg.Wait()
	if len(errs) > 0 {
		return latency{}, fmt.Errorf("%d clients failed, the first with: %w", len(errs), errs[0])
	}
	return percentiles(all), nil
}

func callWithTimeout(ctx context.Context, c *workloadapi.Client, fetch func(context.Context, *workloadapi.Client) error) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return fetch(ctx, c)
}

// steadyRSS samples the RSS of pid every 2 s, not before notBefore, until
// three samples in a row lie within 2% of each other, and returns the last.
func steadyRSS(ctx context.Context, pid int, notBefore time.Time) (int64, error) {
	sleep(ctx, time.Until(notBefore))
	var last []int64
	deadline := time.Now().Add(5 * time.Minute)
	for {
		v, err := rssKiB(pid)
		if err != nil {
			return 0, err
		}
		last = append(last, v)
		if n := len(last); n >= 3 {
			lo, hi := min(last[n-1], last[n-2], last[n-3]), max(last[n-1], last[n-2], last[n-3])
			if float64(hi-lo) <= 0.02*float64(hi) || time.Now().After(deadline) {
				return v, nil
			}
		}
		if !sleep(ctx, 2*time.Second) {
			return 0, ctx.Err()
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// watch is a Workload API X.509 watch, recording when each SPIFFE ID first
// appeared.
type watch struct {
	mu     sync.Mutex
	seen   map[string]time.Time
	change chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

func startWatch(ctx context.Context, addr string) (*watch, error) {
	ctx, cancel := context.WithCancel(ctx)
	w := &watch{seen: make(map[string]time.Time), change: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	c, err := workloadapi.New(ctx, workloadapi.WithAddr(addr))
	if err != nil {
		cancel()
		return nil, err
	}
	go func() {
		defer close(w.done)
		defer c.Close()
		_ = c.WatchX509Context(ctx, w)
	}()
	return w, nil
}

func (w *watch) OnX509ContextUpdate(x *workloadapi.X509Context) {
	now := time.Now()
	w.mu.Lock()
	for _, s := range x.SVIDs {
		if _, ok := w.seen[s.ID.String()]; !ok {
			w.seen[s.ID.String()] = now
		}
	}
	w.mu.Unlock()
	select {
	case w.change <- struct{}{}:
	default:
	}
}

func (w *watch) OnX509ContextWatchError(err error) {
	if status.Code(err) != codes.Canceled {
		log.Printf("watch: %v", err)
	}
}

// waitFor returns when the watch first saw id.
func (w *watch) waitFor(ctx context.Context, timeout time.Duration, id string) (time.Time, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		w.mu.Lock()
		at, ok := w.seen[id]
		w.mu.Unlock()
		if ok {
			return at, nil
		}
		select {
		case <-w.change:
		case <-t.C:
			return time.Time{}, fmt.Errorf("the workload never received %s", id)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

func (w *watch) stop() {
	w.cancel()
	<-w.done
}
