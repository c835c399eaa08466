package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// fakeLock is a Lease lock whose writes fail while err is set.
type fakeLock struct {
	resourcelock.Interface
	err error
}

func (f *fakeLock) Identity() string { return "me" }
func (f *fakeLock) Create(context.Context, resourcelock.LeaderElectionRecord) error {
	return f.err
}
func (f *fakeLock) Update(context.Context, resourcelock.LeaderElectionRecord) error {
	return f.err
}

// The lead is current only after a successful write naming this replica,
// and only for the validity window after it began: a failed renewal or a
// release does not extend it.
func TestRenewalsKeepTheLeadCurrentOnlyWhileTheyRecentlySucceeded(t *testing.T) {
	lock := &fakeLock{}
	r := &renewals{Interface: lock, valid: 200 * time.Millisecond}
	ctx := context.Background()
	if r.current() {
		t.Fatal("current before any renewal")
	}
	if err := r.Create(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "me"}); err != nil || !r.current() {
		t.Fatalf("not current after acquiring (%v)", err)
	}
	time.Sleep(250 * time.Millisecond)
	if r.current() {
		t.Error("still current a validity window after the last renewal")
	}
	lock.err = errors.New("partitioned")
	if err := r.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "me"}); err == nil || r.current() {
		t.Errorf("a failed renewal made the lead current (err %v)", err)
	}
	lock.err = nil
	if _ = r.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: ""}); r.current() {
		t.Error("a release made the lead current")
	}
	if _ = r.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "me"}); !r.current() {
		t.Error("not current after a renewal")
	}
}

func TestLeaseValidForStaysWithinTheRenewDeadline(t *testing.T) {
	for _, c := range []struct{ retry, renew, want time.Duration }{
		{2 * time.Second, 10 * time.Second, 7 * time.Second},
		{500 * time.Millisecond, 2 * time.Second, 1500 * time.Millisecond},
		{9 * time.Second, 10 * time.Second, 10 * time.Second},
	} {
		if got := leaseValidFor(c.retry, c.renew); got != c.want {
			t.Errorf("leaseValidFor(%s, %s) = %s, want %s", c.retry, c.renew, got, c.want)
		}
	}
}
