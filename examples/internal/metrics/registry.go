package metrics

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// kind is the Prometheus metric type of a registered metric.
type kind string

const (
	kindCounter kind = "counter"
	kindGauge   kind = "gauge"
)

// metric is one registered metric: its value comes from value, read each
// time the registry is written.
type metric struct {
	name, help string
	kind       kind
	value      func() float64
	counter    *Counter // set for Counter, to hand back on re-registration
	gauge      *Gauge   // set for Gauge, likewise
}

// Registry holds metrics and writes them in the Prometheus text format.
// The zero value is not usable; call [New]. A Registry is safe for
// concurrent use.
type Registry struct {
	mu      sync.Mutex
	metrics map[string]*metric
	errs    []error
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{metrics: make(map[string]*metric)}
}

// Counter is a monotonically increasing count. It is safe for concurrent
// use.
type Counter struct{ v atomic.Uint64 }

// Inc adds one to the counter.
func (c *Counter) Inc() { c.v.Add(1) }

// Add adds n to the counter.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

// Value returns the current count.
func (c *Counter) Value() uint64 { return c.v.Load() }

// Gauge is a value that can go up and down. It is safe for concurrent use.
type Gauge struct{ bits atomic.Uint64 }

// Set sets the gauge to v.
func (g *Gauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }

// Value returns the gauge's current value; zero before the first Set.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

// Counter registers a counter and returns it. If a counter of that name is
// registered already, that counter is returned, so that independent parts
// of a program can count into one metric. An invalid name, or a name taken
// by a metric of another kind, gives a working counter that is not
// exported, and an error in [Registry.Err].
func (r *Registry) Counter(name, help string) *Counter {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m, ok := r.metrics[name]; ok && m.counter != nil {
		return m.counter
	}
	c := &Counter{}
	r.add(&metric{name: name, help: help, kind: kindCounter, counter: c,
		value: func() float64 { return float64(c.Value()) }})
	return c
}

// Gauge registers a gauge and returns it. If a gauge of that name is
// registered already, that gauge is returned. Invalid and conflicting
// names are handled as by [Registry.Counter].
func (r *Registry) Gauge(name, help string) *Gauge {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m, ok := r.metrics[name]; ok && m.gauge != nil {
		return m.gauge
	}
	g := &Gauge{}
	r.add(&metric{name: name, help: help, kind: kindGauge, gauge: g, value: g.Value})
	return g
}

// GaugeFunc registers a gauge whose value is f's result, called each time
// the registry is written (from the goroutine that writes it, with no lock
// of the registry held). f must be safe for concurrent use. A name
// registered already is an error in [Registry.Err] (the first registration
// stays), as are invalid names.
func (r *Registry) GaugeFunc(name, help string, f func() float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.add(&metric{name: name, help: help, kind: kindGauge, value: f})
}

// CounterFunc registers a counter whose value is f's result, like
// [Registry.GaugeFunc]. f must never return less than it returned before.
func (r *Registry) CounterFunc(name, help string, f func() float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.add(&metric{name: name, help: help, kind: kindCounter, value: f})
}

// add registers m, or records why it cannot. r.mu is held.
func (r *Registry) add(m *metric) {
	switch {
	case !validName(m.name):
		r.errs = append(r.errs, fmt.Errorf("metrics: invalid metric name %q", m.name))
	case m.value == nil:
		r.errs = append(r.errs, fmt.Errorf("metrics: %s: nil function", m.name))
	case r.metrics[m.name] != nil:
		r.errs = append(r.errs, fmt.Errorf("metrics: %s is already registered as a %s", m.name, r.metrics[m.name].kind))
	default:
		r.metrics[m.name] = m
	}
}

// Err returns the registration mistakes made so far (invalid names, names
// registered twice with different kinds, repeated GaugeFunc or CounterFunc
// names), joined, or nil if there were none.
func (r *Registry) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(r.errs...)
}

// validName reports whether name is a valid Prometheus metric name:
// [a-zA-Z_:][a-zA-Z0-9_:]*.
func validName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == ':':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// WriteTo writes every metric in the Prometheus text exposition format
// 0.0.4, sorted by name: a "# HELP" line (backslashes and line feeds
// escaped, as the format requires), a "# TYPE" line and the sample. Values
// of function metrics are read during the call. It returns the number of
// bytes written and the first write error.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	ms := make([]*metric, 0, len(r.metrics))
	for _, m := range r.metrics {
		ms = append(ms, m)
	}
	r.mu.Unlock()
	slices.SortFunc(ms, func(a, b *metric) int { return strings.Compare(a.name, b.name) })

	cw := &countingWriter{w: w}
	bw := bufio.NewWriter(cw)
	for _, m := range ms {
		bw.WriteString("# HELP ")
		bw.WriteString(m.name)
		bw.WriteByte(' ')
		bw.WriteString(helpEscaper.Replace(m.help))
		bw.WriteString("\n# TYPE ")
		bw.WriteString(m.name)
		bw.WriteByte(' ')
		bw.WriteString(string(m.kind))
		bw.WriteByte('\n')
		bw.WriteString(m.name)
		bw.WriteByte(' ')
		bw.WriteString(formatValue(m))
		bw.WriteByte('\n')
	}
	err := bw.Flush()
	return cw.n, err
}

// helpEscaper escapes HELP text: in format 0.0.4, a backslash is written
// as \\ and a line feed as \n.
var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

// formatValue writes the sample value as the format wants it: Go float
// syntax, with +Inf, -Inf and NaN spelled so. A Counter is written from its
// integer so that counts beyond 2^53 stay exact.
func formatValue(m *metric) string {
	if m.counter != nil {
		return strconv.FormatUint(m.counter.Value(), 10)
	}
	v := m.value()
	switch {
	case math.IsInf(v, +1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// countingWriter counts the bytes written through it, for WriteTo's
// result.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
