// Package metricstest reads what a program's /metrics serves, for tests:
// every sample by its series, so that a test can ask for a labelled series
// and its value.
package metricstest

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Samples are the values of a scrape by series, written
// name{label="value",...} with the labels sorted by name, or the bare name
// of a series without labels. A histogram gives its name_count and
// name_sum series (not its buckets).
type Samples map[string]float64

// Series returns the key of the series of name with labels, given as
// name, value pairs in any order.
func Series(name string, labels ...string) string {
	if len(labels)%2 != 0 {
		panic("metricstest: labels must come in name, value pairs")
	}
	var pairs []string
	for i := 0; i < len(labels); i += 2 {
		pairs = append(pairs, labels[i]+"="+strconv.Quote(labels[i+1]))
	}
	if len(pairs) == 0 {
		return name
	}
	slices.Sort(pairs)
	return name + "{" + strings.Join(pairs, ",") + "}"
}

// Get returns the value of the series of name with labels (name, value
// pairs), and whether the scrape had it.
func (s Samples) Get(name string, labels ...string) (float64, bool) {
	v, ok := s[Series(name, labels...)]
	return v, ok
}

// Parse reads the Prometheus text format.
func Parse(r io.Reader) (Samples, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	out := Samples{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName(), l.GetValue())
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[Series(name, labels...)] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[Series(name, labels...)] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[Series(name+"_count", labels...)] = float64(m.GetHistogram().GetSampleCount())
				out[Series(name+"_sum", labels...)] = m.GetHistogram().GetSampleSum()
			case dto.MetricType_SUMMARY:
				out[Series(name+"_count", labels...)] = float64(m.GetSummary().GetSampleCount())
				out[Series(name+"_sum", labels...)] = m.GetSummary().GetSampleSum()
			default:
				out[Series(name, labels...)] = m.GetUntyped().GetValue()
			}
		}
	}
	return out, nil
}

// Scrape GETs url, which must answer 200 in the text format, and returns
// its samples; it fails the test otherwise.
func Scrape(t testing.TB, url string) Samples {
	t.Helper()
	s, err := scrape(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	return s
}

func scrape(url string) (Samples, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	return Parse(resp.Body)
}
