package receiver

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/storage"
)

// enospcAppendable fails every commit as a full disk does.
type enospcAppendable struct{ storage.AppendableV2 }

func (a enospcAppendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return enospcAppender{a.AppendableV2.AppenderV2(ctx).(storage.ExemplarAppenderV2)}
}

type enospcAppender struct{ storage.ExemplarAppenderV2 }

func (a enospcAppender) Commit() error {
	_ = a.Rollback()
	return fmt.Errorf("write to WAL: log samples: %w", syscall.ENOSPC)
}

func TestRemoteWriteOnAFullDiskIs507WithRetryAfter(t *testing.T) {
	e := newIngestEnv(t, ingestEnvOptions{
		cfg:  MetricsConfig{RetryAfter: 3 * time.Second},
		wrap: func(app storage.AppendableV2) storage.AppendableV2 { return enospcAppendable{app} },
	})
	resp, body := postRW(t, e.srv.URL+RemoteWritePath, rw1ContentType, rw1Body(t, "full_disk", 1, timestamp.FromTime(time.Now())))
	if resp.StatusCode != http.StatusInsufficientStorage || resp.Header.Get("Retry-After") != "3" || !strings.Contains(body, "data dir full") {
		t.Errorf("remote-write: %d Retry-After %q %q, want 507, 3 and the reason", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if got := e.query(t, "full_disk"); len(got) != 0 {
		t.Errorf("a refused sample is stored: %v", got)
	}
}
