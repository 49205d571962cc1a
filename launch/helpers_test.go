package launch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/launch"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines returns the JSON log lines whose msg is msg.
func (s *syncBuffer) lines(t testing.TB, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for l := range strings.Lines(s.String()) {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// env is a launch server over a real in-memory store, with a clock the
// test moves.
type env struct {
	clock *clock
	store *memstore.Store
	ls    *launch.Server
	logs  *syncBuffer
}

func newEnv(t testing.TB, mod ...func(*launch.Config)) *env {
	t.Helper()
	t.Cleanup(leaktest.Check(t))
	e := &env{clock: &clock{now: time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)}, logs: &syncBuffer{}}
	e.store = memstore.New(memstore.Config{Now: e.clock.Now})
	cfg := launch.Config{
		TrustDomain: td,
		Entries:     e.store,
		Logger:      slog.New(slog.NewJSONHandler(e.logs, nil)),
		Now:         e.clock.Now,
	}
	for _, m := range mod {
		m(&cfg)
	}
	var err error
	e.ls, err = launch.New(cfg)
	require.NoError(t, err)
	return e
}

func (e *env) launch(t testing.TB, path string) launch.Launch {
	t.Helper()
	l, err := e.ls.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, path)})
	require.NoError(t, err)
	return l
}

// failingStore fails every call with err once set.
type failingStore struct {
	*memstore.Store
	mu  sync.Mutex
	err error
}

func (f *failingStore) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *failingStore) failure() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *failingStore) Get(ctx context.Context, id string) (registry.Entry, error) {
	if err := f.failure(); err != nil {
		return registry.Entry{}, err
	}
	return f.Store.Get(ctx, id)
}

func (f *failingStore) Create(ctx context.Context, e registry.Entry) (registry.Entry, error) {
	if err := f.failure(); err != nil {
		return registry.Entry{}, err
	}
	return f.Store.Create(ctx, e)
}

func (f *failingStore) Update(ctx context.Context, e registry.Entry) (registry.Entry, error) {
	if err := f.failure(); err != nil {
		return registry.Entry{}, err
	}
	return f.Store.Update(ctx, e)
}

func (f *failingStore) Delete(ctx context.Context, id string, rev int64) (registry.Entry, error) {
	if err := f.failure(); err != nil {
		return registry.Entry{}, err
	}
	return f.Store.Delete(ctx, id, rev)
}

func (f *failingStore) List(ctx context.Context, fl registry.Filter, p registry.Page) ([]registry.Entry, string, error) {
	if err := f.failure(); err != nil {
		return nil, "", err
	}
	return f.Store.List(ctx, fl, p)
}

var errDown = errors.New("store down")

func registryFilter() registry.Filter { return registry.Filter{} }
func registryPage() registry.Page     { return registry.Page{} }
