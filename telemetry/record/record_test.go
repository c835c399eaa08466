package record

import (
	"errors"
	"fmt"
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
