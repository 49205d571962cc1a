package kit

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteText writes the report for people: one line per result (verdict,
// rule, level, subject, evidence) and a summary.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "SPIFFE conformance: %s %s\n", r.Mode, r.Target)
	for _, res := range r.Results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", strings.ToUpper(string(res.Verdict)), res.Rule, res.Level, res.Subject, oneLine(res.Evidence))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	c := r.Counts()
	verdict := "no MUST rule failed"
	if failed := r.FailedRules(); len(failed) > 0 {
		verdict = "MUST rules failed: " + strings.Join(failed, ", ")
	}
	_, err := fmt.Fprintf(w, "%d pass, %d fail, %d not applicable, %d deviation allowed; %s\n",
		c[Pass], c[Fail], c[NotApplicable], c[DeviationAllowed], verdict)
	return err
}

// WriteJSON writes the report as one JSON object (the fields of Report,
// with "counts" and "failed_rules" added), for CI.
func (r *Report) WriteJSON(w io.Writer) error {
	type out struct {
		*Report
		Counts      map[Verdict]int `json:"counts"`
		FailedRules []string        `json:"failed_rules"`
	}
	failed := r.FailedRules()
	if failed == nil {
		failed = []string{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out{Report: r, Counts: r.Counts(), FailedRules: failed})
}

type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Timestamp string      `xml:"timestamp,attr"`
	Time      string      `xml:"time,attr"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
}

// WriteJUnit writes the report as JUnit XML, for CI: a test case per
// result, named by rule and subject; a MUST failure is a <failure>, a
// rule that does not apply is <skipped>, an allowed deviation passes with
// its evidence in <system-out>.
func (r *Report) WriteJUnit(w io.Writer) error {
	s := junitSuite{
		Name:      fmt.Sprintf("SPIFFE conformance: %s %s", r.Mode, r.Target),
		Tests:     len(r.Results),
		Timestamp: r.Started.Format("2006-01-02T15:04:05Z"),
		Time:      fmt.Sprintf("%.3f", max(r.Finished.Sub(r.Started).Seconds(), 0)),
	}
	for _, res := range r.Results {
		c := junitCase{Name: res.Rule + ": " + res.Subject, ClassName: res.Rule}
		switch res.Verdict {
		case Fail:
			s.Failures++
			c.Failure = &junitMessage{Message: res.Evidence, Type: string(res.Level)}
		case NotApplicable:
			s.Skipped++
			c.Skipped = &junitMessage{Message: res.Evidence}
		case DeviationAllowed:
			c.SystemOut = "deviation allowed (" + string(res.Level) + "): " + res.Evidence
		default:
			c.SystemOut = res.Evidence
		}
		s.Cases = append(s.Cases, c)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(junitSuites{Suites: []junitSuite{s}}); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// Format names a report format: "text", "json" or "junit".
type Format string

// The report formats.
const (
	FormatText  Format = "text"
	FormatJSON  Format = "json"
	FormatJUnit Format = "junit"
)

// Write writes the report in the given format.
func (r *Report) Write(w io.Writer, f Format) error {
	switch f {
	case FormatText:
		return r.WriteText(w)
	case FormatJSON:
		return r.WriteJSON(w)
	case FormatJUnit:
		return r.WriteJUnit(w)
	}
	return fmt.Errorf("kit: unknown report format %q (text, json or junit)", f)
}

// WriteRulesTable writes the Markdown table of every rule the kit checks:
// ID, level, the standard's section, what is checked, and by which modes.
// docs/CONFORMANCE.md holds its output.
func WriteRulesTable(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| rule | level | standard, section | what the kit checks | modes |\n")
	b.WriteString("|---|---|---|---|---|\n")
	for _, r := range Rules() {
		modes := make([]string, len(r.Modes))
		for i, m := range r.Modes {
			modes[i] = string(m)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.ID, r.Level, r.Section, strings.ReplaceAll(r.Text, "|", `\|`), strings.Join(modes, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// oneLine keeps evidence on one line of the text report.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
