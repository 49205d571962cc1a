package metrics

import (
	"bufio"
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteToFormat(t *testing.T) {
	r := New()
	c := r.Counter("b_requests_total", "Requests served.")
	c.Add(41)
	c.Inc()
	r.Gauge("a_temperature", "Temperature in\nkelvin, see C:\\temp.").Set(-1.5)
	r.GaugeFunc("c_ratio", "A ratio.", func() float64 { return 0.25 })
	r.CounterFunc("d_syncs_total", "", func() float64 { return 1e21 })
	r.GaugeFunc("e_inf", "Up.", func() float64 { return math.Inf(1) })
	r.GaugeFunc("e_minf", "Down.", func() float64 { return math.Inf(-1) })
	r.GaugeFunc("e_nan", "Nothing.", math.NaN)
	require.NoError(t, r.Err())

	var sb strings.Builder
	n, err := r.WriteTo(&sb)
	require.NoError(t, err)
	assert.Equal(t, int64(sb.Len()), n)
	want := []string{
		`# HELP a_temperature Temperature in\nkelvin, see C:\\temp.`,
		`# TYPE a_temperature gauge`,
		`a_temperature -1.5`,
		`# HELP b_requests_total Requests served.`,
		`# TYPE b_requests_total counter`,
		`b_requests_total 42`,
		`# HELP c_ratio A ratio.`,
		`# TYPE c_ratio gauge`,
		`c_ratio 0.25`,
		`# HELP d_syncs_total `,
		`# TYPE d_syncs_total counter`,
		`d_syncs_total 1e+21`,
		`# HELP e_inf Up.`,
		`# TYPE e_inf gauge`,
		`e_inf +Inf`,
		`# HELP e_minf Down.`,
		`# TYPE e_minf gauge`,
		`e_minf -Inf`,
		`# HELP e_nan Nothing.`,
		`# TYPE e_nan gauge`,
		`e_nan NaN`,
	}
	assert.Equal(t, strings.Join(want, "\n")+"\n", sb.String())
}

func TestEmptyRegistryWritesNothing(t *testing.T) {
	var sb strings.Builder
	n, err := New().WriteTo(&sb)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Empty(t, sb.String())
}

func TestLargeCounterStaysExact(t *testing.T) {
	r := New()
	r.Counter("big_total", "Big.").Add(1<<53 + 1)
	var sb strings.Builder
	_, err := r.WriteTo(&sb)
	require.NoError(t, err)
	assert.Contains(t, sb.String(), "\nbig_total 9007199254740993\n")
}

// TestParseBack reads the exposition back as a Prometheus scraper would and
// checks every metric comes back with its help, type and value.
func TestParseBack(t *testing.T) {
	r := New()
	helps := map[string]string{
		"x_total":    "Weird help: back\\slash, new\nline, \"quotes\" and ünïcode.",
		"y":          "Plain.",
		"z:recorded": "",
	}
	r.Counter("x_total", helps["x_total"]).Add(7)
	r.Gauge("y", helps["y"]).Set(3.125e-9)
	r.GaugeFunc("z:recorded", helps["z:recorded"], func() float64 { return -0 })

	var sb strings.Builder
	_, err := r.WriteTo(&sb)
	require.NoError(t, err)
	got := parseExposition(t, sb.String())
	require.Len(t, got, 3)
	for name, help := range helps {
		assert.Equal(t, help, got[name].help, name)
	}
	assert.Equal(t, "counter", got["x_total"].typ)
	assert.Equal(t, 7.0, got["x_total"].value)
	assert.Equal(t, "gauge", got["y"].typ)
	assert.Equal(t, 3.125e-9, got["y"].value)
	assert.Equal(t, 0.0, got["z:recorded"].value)
}

type parsed struct {
	help, typ string
	value     float64
}

// parseExposition is a strict reader of the text format 0.0.4 for metrics
// without labels: each metric is a HELP line, a TYPE line and one sample,
// in that order.
func parseExposition(t *testing.T, text string) map[string]parsed {
	t.Helper()
	out := map[string]parsed{}
	sc := bufio.NewScanner(strings.NewReader(text))
	var cur string
	var p parsed
	state := 0
	for sc.Scan() {
		line := sc.Text()
		switch state {
		case 0:
			rest, ok := strings.CutPrefix(line, "# HELP ")
			require.True(t, ok, "want a HELP line: %q", line)
			name, help, ok := strings.Cut(rest, " ")
			require.True(t, ok, line)
			require.True(t, validName(name), name)
			var err error
			p = parsed{}
			p.help, err = unescapeHelp(help)
			require.NoError(t, err)
			cur = name
		case 1:
			rest, ok := strings.CutPrefix(line, "# TYPE "+cur+" ")
			require.True(t, ok, "want a TYPE line for %s: %q", cur, line)
			require.Contains(t, []string{"counter", "gauge"}, rest)
			p.typ = rest
		case 2:
			name, value, ok := strings.Cut(line, " ")
			require.True(t, ok, line)
			require.Equal(t, cur, name)
			v, err := strconv.ParseFloat(value, 64)
			require.NoError(t, err, line)
			p.value = v
			_, dup := out[name]
			require.False(t, dup, "metric %s twice", name)
			out[name] = p
		}
		state = (state + 1) % 3
	}
	require.NoError(t, sc.Err())
	require.Zero(t, state, "truncated metric %s", cur)
	return out
}

func unescapeHelp(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch {
		case i == len(s):
			return "", errors.New("dangling backslash")
		case s[i] == '\\':
			b.WriteByte('\\')
		case s[i] == 'n':
			b.WriteByte('\n')
		default:
			return "", errors.New("bad escape")
		}
	}
	return b.String(), nil
}

func TestDuplicateNamesReturnTheSameMetric(t *testing.T) {
	r := New()
	c1 := r.Counter("hits_total", "Hits.")
	c2 := r.Counter("hits_total", "Other help.")
	require.Same(t, c1, c2)
	g1 := r.Gauge("level", "Level.")
	require.Same(t, g1, r.Gauge("level", "Level."))
	require.NoError(t, r.Err())
	c2.Inc()
	assert.Equal(t, uint64(1), c1.Value())
}

func TestInvalidAndConflictingNames(t *testing.T) {
	tests := []struct {
		name     string
		register func(r *Registry)
		errText  string
	}{
		{"empty name", func(r *Registry) { r.Counter("", "x").Inc() }, `invalid metric name ""`},
		{"leading digit", func(r *Registry) { r.Gauge("1up", "x").Set(1) }, `invalid metric name "1up"`},
		{"dash", func(r *Registry) { r.GaugeFunc("a-b", "x", func() float64 { return 1 }) }, `invalid metric name "a-b"`},
		{"space", func(r *Registry) { r.CounterFunc("a b", "x", func() float64 { return 1 }) }, `invalid metric name "a b"`},
		{"newline injection", func(r *Registry) { r.Counter("a\nfake_metric", "x") }, `invalid metric name`},
		{"nil func", func(r *Registry) { r.GaugeFunc("nilf", "x", nil) }, "nil function"},
		{"gauge over counter", func(r *Registry) {
			r.Counter("taken", "x")
			r.Gauge("taken", "y").Set(5)
		}, "taken is already registered as a counter"},
		{"counter over gauge", func(r *Registry) {
			r.Gauge("taken", "x")
			r.Counter("taken", "y").Inc()
		}, "taken is already registered as a gauge"},
		{"func twice", func(r *Registry) {
			r.GaugeFunc("taken", "x", func() float64 { return 1 })
			r.GaugeFunc("taken", "y", func() float64 { return 2 })
		}, "taken is already registered as a gauge"},
		{"counter over counter func", func(r *Registry) {
			r.CounterFunc("taken", "x", func() float64 { return 1 })
			r.Counter("taken", "y").Add(9)
		}, "taken is already registered as a counter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New()
			require.NotPanics(t, func() { tt.register(r) })
			require.Error(t, r.Err())
			assert.Contains(t, r.Err().Error(), tt.errText)
			var sb strings.Builder
			_, err := r.WriteTo(&sb)
			require.NoError(t, err)
			// Only the first, valid registration (if any) is exported.
			got := parseExposition(t, sb.String())
			for name, p := range got {
				assert.Equal(t, "taken", name)
				assert.Equal(t, "x", p.help)
				assert.LessOrEqual(t, p.value, 1.0)
			}
		})
	}
}

func TestDetachedMetricsStillWork(t *testing.T) {
	r := New()
	c := r.Counter("bad name", "x")
	c.Add(3)
	assert.Equal(t, uint64(3), c.Value())
	g := r.Gauge("bad name", "x")
	g.Set(2)
	assert.Equal(t, 2.0, g.Value())
}

func TestValidName(t *testing.T) {
	for _, n := range []string{"a", "_", ":", "A_b:c9", "spiffe_agent_entries", "__x"} {
		assert.True(t, validName(n), n)
	}
	for _, n := range []string{"", "9", "a-b", "é", "a.b", "a{b}", "a b"} {
		assert.False(t, validName(n), n)
	}
}

func TestConcurrentUse(t *testing.T) {
	r := New()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			c := r.Counter("c_total", "C.")
			g := r.Gauge("g", "G.")
			for i := range 200 {
				c.Inc()
				g.Set(float64(i))
				if i%50 == 0 {
					var sb strings.Builder
					r.WriteTo(&sb)
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, uint64(1600), r.Counter("c_total", "C.").Value())
}

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("disk full")
	}
	n := min(len(p), f.after)
	f.after -= n
	if n < len(p) {
		return n, errors.New("disk full")
	}
	return n, nil
}

func TestWriteToReportsWriteErrors(t *testing.T) {
	r := New()
	for i := range 200 {
		r.Gauge("gauge_"+strconv.Itoa(i), strings.Repeat("h", 100)).Set(1)
	}
	n, err := r.WriteTo(&failingWriter{after: 10})
	require.Error(t, err)
	assert.Equal(t, int64(10), n)
}
