package lifecycle

import (
	"context"
	"errors"
	"sync"
)

// RunAll runs each part on a goroutine of its own, with a context derived
// from ctx, and returns once every part has returned. The first part that
// fails cancels the context of the others. RunAll returns the failures
// joined in the order of parts, or nil. A part that returns the context's
// own error (or one wrapping it) once the context is done stopped as asked:
// that is no failure.
func RunAll(ctx context.Context, parts ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, run := range parts {
		wg.Go(func() {
			err := run(ctx)
			if err == nil || ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return
			}
			errs[i] = err
			cancel()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
