package kit

import (
	"fmt"
	"sort"
	"time"
)

// Verdict is the outcome of one rule on one subject.
type Verdict string

// The verdicts of a check.
const (
	// Pass: the subject keeps the rule.
	Pass Verdict = "pass"
	// Fail: the subject breaks a MUST rule.
	Fail Verdict = "fail"
	// NotApplicable: the rule says nothing about this subject (a signing
	// certificate's rule on a leaf), or the kit could not look (no bundle
	// given, no rotation wait).
	NotApplicable Verdict = "not applicable"
	// DeviationAllowed: the subject does not do what a SHOULD or MAY rule
	// asks, which the standard allows.
	DeviationAllowed Verdict = "deviation allowed"
)

// Result is the verdict of one rule on one subject, with the evidence.
type Result struct {
	// Rule is the ID of the rule (see [LookupRule]).
	Rule string `json:"rule"`
	// Level is the rule's level, copied for the reader.
	Level Level `json:"level"`
	// Subject names what was checked: "leaf spiffe://example.org/web",
	// "FetchJWTSVID".
	Subject string `json:"subject"`
	// Verdict is the outcome.
	Verdict Verdict `json:"verdict"`
	// Evidence says what the kit saw.
	Evidence string `json:"evidence"`
}

// Report is what one run of the kit found.
type Report struct {
	// Mode is what the run looked at.
	Mode Mode `json:"mode"`
	// Target names the file or endpoint.
	Target string `json:"target"`
	// Started and Finished bound the run.
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Results are the verdicts, in the order they were reached.
	Results []Result `json:"results"`
}

// NewReport returns an empty report of a run that starts now.
func NewReport(mode Mode, target string) *Report {
	return &Report{Mode: mode, Target: target, Started: time.Now().UTC()}
}

// add records a verdict of rule id; ok false on a SHOULD or MAY rule is a
// deviation the standard allows, on a MUST rule a failure. It panics on an
// ID missing from the registry: that is a bug of the kit, caught by its
// tests.
func (r *Report) add(id, subject string, ok bool, format string, args ...any) {
	rule, found := LookupRule(id)
	if !found {
		panic("kit: no rule " + id)
	}
	v := Pass
	if !ok {
		v = Fail
		if rule.Level != Must {
			v = DeviationAllowed
		}
	}
	r.Results = append(r.Results, Result{Rule: id, Level: rule.Level, Subject: subject, Verdict: v, Evidence: fmt.Sprintf(format, args...)})
}

// na records that rule id does not apply to subject, and why.
func (r *Report) na(id, subject, format string, args ...any) {
	rule, found := LookupRule(id)
	if !found {
		panic("kit: no rule " + id)
	}
	r.Results = append(r.Results, Result{Rule: id, Level: rule.Level, Subject: subject, Verdict: NotApplicable, Evidence: fmt.Sprintf(format, args...)})
}

// Merge appends the results of other (a check made in another process,
// such as the unregistered caller's) to r.
func (r *Report) Merge(other *Report) {
	r.Results = append(r.Results, other.Results...)
}

// Finish stamps the end of the run.
func (r *Report) Finish() { r.Finished = time.Now().UTC() }

// Failed reports whether some MUST rule failed: the run's exit status is
// then not zero.
func (r *Report) Failed() bool {
	for _, res := range r.Results {
		if res.Verdict == Fail {
			return true
		}
	}
	return false
}

// Counts returns how many results have each verdict.
func (r *Report) Counts() map[Verdict]int {
	c := map[Verdict]int{Pass: 0, Fail: 0, NotApplicable: 0, DeviationAllowed: 0}
	for _, res := range r.Results {
		c[res.Verdict]++
	}
	return c
}

// ByRule returns the results of one rule.
func (r *Report) ByRule(id string) []Result {
	var out []Result
	for _, res := range r.Results {
		if res.Rule == id {
			out = append(out, res)
		}
	}
	return out
}

// Verdicts returns, for each rule that has results, its worst verdict:
// fail, then deviation allowed, then pass, then not applicable.
func (r *Report) Verdicts() map[string]Verdict {
	rank := map[Verdict]int{NotApplicable: 0, Pass: 1, DeviationAllowed: 2, Fail: 3}
	out := map[string]Verdict{}
	for _, res := range r.Results {
		if v, ok := out[res.Rule]; !ok || rank[res.Verdict] > rank[v] {
			out[res.Rule] = res.Verdict
		}
	}
	return out
}

// FailedRules returns the IDs of the rules with a failure, sorted.
func (r *Report) FailedRules() []string {
	var out []string
	for id, v := range r.Verdicts() {
		if v == Fail {
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return ruleLess(out[i], out[j]) })
	return out
}
