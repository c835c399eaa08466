package record

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestOverloadedIsErrOverloadedAndSaysWhen(t *testing.T) {
	err := fmt.Errorf("writing spans: %w", &Overloaded{What: "trace store", RetryAfter: 3 * time.Second})
	if !errors.Is(err, ErrOverloaded) {
		t.Fatal("an Overloaded is not ErrOverloaded")
	}
	if got := RetryAfter(err, time.Second); got != 3*time.Second {
		t.Errorf("RetryAfter = %s, want the error's 3s", got)
	}
	if got := RetryAfter(fmt.Errorf("x: %w", ErrOverloaded), time.Second); got != time.Second {
		t.Errorf("RetryAfter of the plain error = %s, want the default", got)
	}
	if got := RetryAfter(&Overloaded{What: "queue"}, 2*time.Second); got != 2*time.Second {
		t.Errorf("RetryAfter without a delay = %s, want the default", got)
	}
	if errors.Is(errors.New("other"), ErrOverloaded) {
		t.Error("any error is ErrOverloaded")
	}
	if msg := (&Overloaded{What: "trace store"}).Error(); msg != "trace store: over capacity, retry later" {
		t.Errorf("message %q", msg)
	}
}

func TestStorageFullIsErrStorageFullAndSoAreENOSPCAndEDQUOT(t *testing.T) {
	full := fmt.Errorf("writing spans: %w", &StorageFull{What: "/data: 0 B free", RetryAfter: 5 * time.Second, Err: syscall.ENOSPC})
	for name, err := range map[string]error{
		"a StorageFull":  full,
		"a plain ENOSPC": &os.PathError{Op: "write", Path: "/data/wal/00000001", Err: syscall.ENOSPC},
		"a plain EDQUOT": fmt.Errorf("wal: %w", syscall.EDQUOT),
	} {
		if !IsStorageFull(err) {
			t.Errorf("%s is not storage full", name)
		}
	}
	if !errors.Is(full, ErrStorageFull) || errors.Is(full, ErrOverloaded) {
		t.Error("a StorageFull must be ErrStorageFull and not ErrOverloaded")
	}
	if IsStorageFull(errors.New("other")) || IsStorageFull(syscall.EIO) {
		t.Error("any error is storage full")
	}
	if got := RetryAfter(full, time.Second); got != 5*time.Second {
		t.Errorf("RetryAfter = %s, want the error's 5s", got)
	}
	if msg := full.Error(); msg != "writing spans: data dir full: /data: 0 B free" {
		t.Errorf("message %q", msg)
	}
}
