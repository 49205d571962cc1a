package attest_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
)

// fakeAttestor returns fixed selectors or a fixed error, and counts its
// calls.
type fakeAttestor struct {
	sels  []attest.Selector
	err   error
	calls atomic.Int32
	pid   atomic.Int64 // of the last workload
}

func (f *fakeAttestor) Attest(_ context.Context, w attest.Workload) (attest.Selectors, error) {
	f.calls.Add(1)
	f.pid.Store(int64(w.PID))
	if f.err != nil {
		return attest.Selectors{}, f.err
	}
	return attest.NewSelectors(f.sels...), nil
}

func TestCombine(t *testing.T) {
	uid := sel("unix:uid:1000")
	gid := sel("unix:gid:1000")
	label := sel("docker:label:app:web")
	rejected := fmt.Errorf("unix: pid 42 exited: %w", attest.ErrRejected)
	unreachable := errors.New("docker: daemon unreachable")
	for _, tt := range []struct {
		name      string
		attestors []*fakeAttestor
		want      []attest.Selector
		rejected  bool // the error wraps ErrRejected
		errs      []error
	}{
		{
			name:      "selectors are the union",
			attestors: []*fakeAttestor{{sels: []attest.Selector{uid, gid}}, {sels: []attest.Selector{label, uid}}},
			want:      []attest.Selector{label, gid, uid},
		},
		{
			name:      "an attestor that finds nothing adds nothing",
			attestors: []*fakeAttestor{{sels: []attest.Selector{uid}}, {}},
			want:      []attest.Selector{uid},
		},
		{
			// The workload is not who it claims to be for one attestor: no
			// selectors from the others may stand in.
			name:      "one rejection rejects the workload",
			attestors: []*fakeAttestor{{sels: []attest.Selector{uid}}, {err: rejected}},
			rejected:  true,
			errs:      []error{rejected},
		},
		{
			// A partial set would be taken for a deleted registration.
			name:      "one failure fails the attestation, not as a rejection",
			attestors: []*fakeAttestor{{sels: []attest.Selector{uid}}, {err: unreachable}},
			errs:      []error{unreachable},
		},
		{
			name:      "a rejection wins over a failure, and both are reported",
			attestors: []*fakeAttestor{{err: unreachable}, {err: rejected}, {sels: []attest.Selector{uid}}},
			rejected:  true,
			errs:      []error{unreachable, rejected},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			as := make([]attest.WorkloadAttestor, len(tt.attestors))
			for i, a := range tt.attestors {
				as[i] = a
			}
			got, err := attest.Combine(as...).Attest(t.Context(), attest.Workload{PID: 42})
			for _, a := range tt.attestors {
				assert.Equal(t, int32(1), a.calls.Load(), "every attestor is asked")
				assert.Equal(t, int64(42), a.pid.Load(), "about the same workload")
			}
			if tt.errs == nil {
				require.NoError(t, err)
				assert.Equal(t, tt.want, got.Slice())
				return
			}
			require.Error(t, err)
			assert.Equal(t, 0, got.Len(), "no selectors with an error")
			assert.Equal(t, tt.rejected, errors.Is(err, attest.ErrRejected))
			for _, want := range tt.errs {
				assert.ErrorIs(t, err, want)
			}
		})
	}
}

func TestCombineEdgeCases(t *testing.T) {
	one := &fakeAttestor{sels: []attest.Selector{sel("unix:uid:0")}}
	assert.Same(t, one, attest.Combine(one), "a single attestor is used as it is")
	assert.Same(t, one, attest.Combine(nil, one, nil), "nil attestors are skipped")

	got, err := attest.Combine().Attest(t.Context(), attest.Workload{PID: 1})
	require.NoError(t, err)
	assert.Equal(t, 0, got.Len(), "no attestor: the empty set, which no entry matches")
}
