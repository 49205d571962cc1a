package workloadapi

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// sourceBase is the lifecycle shared by every source: it owns the watch
// goroutines, the update notification channel and, unless WithClient was
// used, the Client.
type sourceBase struct {
	client     *Client
	ownsClient bool

	cancel context.CancelFunc // stops the watches; nil before start
	wg     sync.WaitGroup     // the watch goroutines

	// updated is notified, without blocking, after every applied update;
	// its capacity of 1 coalesces updates a slow reader has not seen yet.
	updated chan struct{}

	lastErr atomic.Pointer[errorBox] // last watch error, for notReadyError

	closed   atomic.Bool // read by every getter
	closeMu  sync.Mutex  // serialises Close
	closeErr error       // guarded by closeMu
}

type errorBox struct{ err error }

// start creates the client if needed and runs each watch in its own
// goroutine. Unless cfg.noWait, it then blocks until every ready channel is
// closed, a watch gives up, or ctx is done. On error the caller must close
// the source.
func (b *sourceBase) start(ctx context.Context, cfg sourceConfig, watches []func(context.Context) error, ready []chan struct{}) error {
	b.updated = make(chan struct{}, 1)
	b.client = cfg.client
	if b.client == nil {
		client, err := New(ctx, cfg.clientOptions...)
		if err != nil {
			return err
		}
		b.client, b.ownsClient = client, true
	}

	// The watches outlive ctx, which only bounds construction.
	watchCtx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	errCh := make(chan error, len(watches)) // never blocks a watch
	for _, watch := range watches {
		b.wg.Go(func() { errCh <- watch(watchCtx) })
	}
	if cfg.noWait {
		return nil
	}
	for _, r := range ready {
		select {
		case <-r:
		case err := <-errCh:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.drainUpdated() // the first update is not news to the caller
	return nil
}

// close stops the watches, waits for them and closes an owned client. It is
// idempotent and safe for concurrent use.
func (b *sourceBase) close() error {
	b.closeMu.Lock()
	defer b.closeMu.Unlock()
	if b.closed.Load() {
		return b.closeErr
	}
	b.closed.Store(true)
	if b.cancel != nil {
		b.cancel()
	}
	b.wg.Wait()
	if b.ownsClient && b.client != nil {
		b.closeErr = b.client.Close()
	}
	return b.closeErr
}

// closeOnError closes the source after a failed construction and joins the
// errors.
func (b *sourceBase) closeOnError(err error) error {
	return errors.Join(err, b.close())
}

func (b *sourceBase) checkClosed() error {
	if b.closed.Load() {
		return ErrSourceClosed
	}
	return nil
}

func (b *sourceBase) setErr(err error) { b.lastErr.Store(&errorBox{err: err}) }

// notReady returns the error of a getter called before the first update.
func (b *sourceBase) notReady(what string) error {
	e := &notReadyError{what: what}
	if box := b.lastErr.Load(); box != nil {
		e.last = box.err
	}
	return e
}

func (b *sourceBase) triggerUpdated() {
	select {
	case b.updated <- struct{}{}:
	default: // a notification is already pending
	}
}

func (b *sourceBase) drainUpdated() {
	select {
	case <-b.updated:
	default:
	}
}

func (b *sourceBase) waitUntilUpdated(ctx context.Context) error {
	select {
	case <-b.updated:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// markReady closes ch once.
func markReady(once *sync.Once, ch chan struct{}) { once.Do(func() { close(ch) }) }
