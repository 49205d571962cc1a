package kit_test

import (
	"fmt"
	"os"

	"github.com/spiffekit/spiffekit/conformance/kit"
)

// Check a SPIFFE bundle document and two versions of it, and read the
// verdicts.
func ExampleReport_CheckBundle() {
	doc, err := os.ReadFile("../crossverify/testdata/bundle-section-f.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	r := kit.NewReport(kit.ModeBundle, "bundle-section-f.json")
	r.CheckBundle("bundle", doc)
	// The same keys published again under the same sequence number.
	r.CheckBundleUpdate("republished", doc, doc)
	r.Finish()

	c := r.Counts()
	fmt.Println("pass:", c[kit.Pass], "fail:", c[kit.Fail], "not applicable:", c[kit.NotApplicable])
	fmt.Println("Bundle rule 8b:", r.Verdicts()["Bundle rule 8b"])
	fmt.Println("exit status 0:", !r.Failed())
	// Output:
	// pass: 18 fail: 0 not applicable: 1
	// Bundle rule 8b: pass
	// exit status 0: true
}
