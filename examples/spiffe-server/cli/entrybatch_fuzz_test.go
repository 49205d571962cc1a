package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzDataFile feeds entry files to the parser of entry create -data:
// whatever the bytes, it returns entries or an error, never panics, and
// every entry it returns converts or fails with a reason.
func FuzzDataFile(f *testing.F) {
	for _, name := range []string{"spire-entry-show.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"entries":[{"spiffe_id":"spiffe://example.org/a","parent_id":"spiffe://example.org/p","selectors":["unix:uid:1"],"x509_svid_ttl":"1h","ttl":3600}]}`))
	f.Add([]byte(`{"entries":[{"spiffe_id":{"trust_domain":"example.org","path":"/a"},"expires_at":"0","id":"x"}],"next_page_token":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := readDataFile(strings.NewReader(string(data)), "-")
		if err != nil {
			return
		}
		for _, j := range entries {
			if _, err := j.toEntry(); err != nil && err.Error() == "" {
				t.Fatal("an error without a reason")
			}
		}
	})
}
