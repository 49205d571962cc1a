package attest_test

import (
	"fmt"

	"github.com/spiffekit/spiffekit/attest"
)

// A registration entry matches a workload when the workload's selectors
// contain all of the entry's.
func ExampleSelectors_ContainsAll() {
	var workload []attest.Selector
	for _, s := range []string{"unix:uid:1000", "unix:gid:1000", "unix:path:/usr/bin/app"} {
		sel, err := attest.ParseSelector(s)
		if err != nil {
			fmt.Println(err)
			return
		}
		workload = append(workload, sel)
	}
	got := attest.NewSelectors(workload...)

	entry := attest.NewSelectors(
		attest.Selector{Type: "unix", Value: "uid:1000"},
		attest.Selector{Type: "unix", Value: "path:/usr/bin/app"},
	)
	fmt.Println(got)
	fmt.Println(got.ContainsAll(entry))
	// Output:
	// [unix:gid:1000 unix:path:/usr/bin/app unix:uid:1000]
	// true
}
