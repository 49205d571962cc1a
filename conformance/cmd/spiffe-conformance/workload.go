package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"time"

	"github.com/spiffekit/spiffekit/conformance/kit"
)

// workloadOpts are the flags of the workload mode.
type workloadOpts struct {
	cfg              kit.WorkloadConfig
	unregisteredUID  int
	unregisteredGID  int
	unregisteredOnly bool
}

func workloadFlags(fs *flag.FlagSet) *workloadOpts {
	w := &workloadOpts{}
	fs.StringVar(&w.cfg.Addr, "addr", "", "the Workload API endpoint: unix:///PATH, tcp://IP:PORT or, on Windows, npipe:NAME (required)")
	fs.StringVar(&w.cfg.Audience, "audience", kit.DefaultAudience, "the audience of the JWT-SVIDs to ask for")
	fs.DurationVar(&w.cfg.Timeout, "timeout", kit.DefaultTimeout, "bound on every call and on a stream's first message")
	fs.DurationVar(&w.cfg.RotationWait, "rotation-wait", 0, "keep the X509-SVID stream open this long to see a rotation (0: do not wait)")
	fs.StringVar(&w.cfg.UnregisteredAddr, "unregistered-addr", "", "a second address of the endpoint through which the kit is entitled to nothing")
	fs.IntVar(&w.unregisteredUID, "unregistered-uid", -1, "a uid entitled to nothing: the kit runs itself again under it for the unregistered caller's checks (needs root)")
	fs.IntVar(&w.unregisteredGID, "unregistered-gid", -1, "the gid of that process (default: the uid's number)")
	fs.BoolVar(&w.unregisteredOnly, "unregistered-only", false, "run only the unregistered caller's checks, as this process (what -unregistered-uid runs)")
	return w
}

// check runs the workload mode.
func (w *workloadOpts) check(ctx context.Context) (*kit.Report, error) {
	if w.cfg.Addr == "" {
		return nil, fmt.Errorf("-addr is required")
	}
	if w.unregisteredOnly {
		return kit.CheckUnregistered(ctx, w.cfg)
	}
	if w.unregisteredUID >= 0 && w.cfg.UnregisteredAddr != "" {
		return nil, fmt.Errorf("-unregistered-uid and -unregistered-addr are two ways to do one thing: give one")
	}
	r, err := kit.CheckWorkloadAPI(ctx, w.cfg)
	if err != nil || w.unregisteredUID < 0 {
		return r, err
	}
	other, err := w.runUnregistered(ctx)
	if err != nil {
		return nil, err
	}
	// The unregistered caller's results replace "not told how".
	r.Results = slices.DeleteFunc(r.Results, func(res kit.Result) bool {
		return res.Rule == "WAPI rule 10b" && res.Verdict == kit.NotApplicable
	})
	r.Merge(other)
	return r, nil
}

// runUnregistered runs this program again under the unregistered uid, in
// the unregistered-only mode, and returns its report.
func (w *workloadOpts) runUnregistered(ctx context.Context) (*kit.Report, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	gid := w.unregisteredGID
	if gid < 0 {
		gid = w.unregisteredUID
	}
	// Two calls, each within the timeout, and the start of the process.
	ctx, cancel := context.WithTimeout(ctx, 3*w.cfg.Timeout+10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, "workload", "-unregistered-only", "-format", "json",
		"-addr", w.cfg.Addr, "-audience", w.cfg.Audience, "-timeout", w.cfg.Timeout.String())
	if err := runAs(cmd, w.unregisteredUID, gid); err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if code := cmd.ProcessState.ExitCode(); err != nil && code != exitFail {
		return nil, fmt.Errorf("the unregistered caller (uid %d): %v: %s", w.unregisteredUID, err, bytes.TrimSpace(stderr.Bytes()))
	}
	var r kit.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return nil, fmt.Errorf("the unregistered caller (uid %d): its report: %v", w.unregisteredUID, err)
	}
	for i := range r.Results {
		r.Results[i].Subject += " (uid " + strconv.Itoa(w.unregisteredUID) + ")"
	}
	return &r, nil
}
