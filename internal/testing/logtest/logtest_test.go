package logtest_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/spiffekit/spiffekit/internal/testing/logtest"
)

func TestBuffer(t *testing.T) {
	var b logtest.Buffer
	assert.Empty(t, b.String())
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() { fmt.Fprintf(&b, "line %d\n", i) })
	}
	wg.Wait()
	for i := range 10 {
		assert.True(t, b.Contains(fmt.Sprintf("line %d\n", i)))
	}
	assert.False(t, b.Contains("line 10"))

	b.Logger().Debug("quiet", "k", "v")
	assert.True(t, b.Contains(`level=DEBUG msg=quiet k=v`), b.String())
}
