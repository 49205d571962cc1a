package index

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/registry"
)

// notifyingSource is a sliceSource that also signals its writes.
type notifyingSource struct{ sliceSource }

func (*notifyingSource) Subscribe(registry.Topic) (<-chan struct{}, func()) {
	return make(chan struct{}), func() {}
}

// TestDefaultPollInterval: a source that signals its writes is polled only
// as a safety net; one that does not is polled every second; a chosen
// interval is kept either way.
func TestDefaultPollInterval(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  Source
		conf time.Duration
		want time.Duration
	}{
		{"polled source", &sliceSource{}, 0, time.Second},
		{"notifier", &notifyingSource{}, 0, 30 * time.Second},
		{"chosen, notifier", &notifyingSource{}, time.Minute, time.Minute},
		{"chosen, polled", &sliceSource{}, 5 * time.Second, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, err := New(t.Context(), tc.src, Config{PollInterval: tc.conf})
			require.NoError(t, err)
			assert.Equal(t, tc.want, x.conf.PollInterval)
		})
	}
}
