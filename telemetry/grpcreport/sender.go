package grpcreport

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
)

// Reconnect backoff bounds.
const (
	minBackoff = 200 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// sender owns the ALS stream; only the run goroutine touches it.
type sender struct {
	r          *Reporter
	stream     alsv3.AccessLogService_StreamAccessLogsClient
	identified bool // the identifier went out on this stream
	backoff    time.Duration
	retryAt    time.Time
	up         bool // for logging transitions only
}

// run batches queued entries and sends a batch when it is full or every
// FlushInterval. While a batch cannot be sent it stops taking from the
// queue, so the queue fills and further calls are dropped, not buffered.
func (r *Reporter) run() {
	defer close(r.done)
	s := &sender{r: r}
	batch := make([]*accesslogdatav3.HTTPAccessLogEntry, 0, r.cfg.BatchSize)
	tick := time.NewTicker(r.cfg.FlushInterval)
	defer tick.Stop()
	for {
		var in <-chan *accesslogdatav3.HTTPAccessLogEntry
		if len(batch) < r.cfg.BatchSize {
			in = r.queue
		}
		select {
		case e := <-in:
			batch = append(batch, e)
			if len(batch) == r.cfg.BatchSize {
				batch = s.flush(batch, false)
			}
		case <-tick.C:
			batch = s.flush(batch, false)
		case <-r.stop:
			r.err = s.drain(batch)
			return
		}
	}
}

// flush sends batch and returns it emptied, or unchanged when it could not
// be sent. Unless force is set it does not reconnect before the backoff
// has passed.
func (s *sender) flush(batch []*accesslogdatav3.HTTPAccessLogEntry, force bool) []*accesslogdatav3.HTTPAccessLogEntry {
	if len(batch) == 0 {
		return batch
	}
	if s.stream == nil {
		if !force && time.Now().Before(s.retryAt) {
			return batch
		}
		stream, err := alsv3.NewAccessLogServiceClient(s.r.conn).StreamAccessLogs(s.r.ctx)
		if err != nil {
			s.failed(err)
			return batch
		}
		s.stream, s.identified = stream, false
	}
	msg := &alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{
		HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: batch},
	}}
	if !s.identified {
		msg.Identifier = &alsv3.StreamAccessLogsMessage_Identifier{Node: s.r.node, LogName: LogName}
	}
	if err := s.stream.Send(msg); err != nil {
		s.failed(s.endStream(err))
		return batch
	}
	if !s.up {
		s.r.logger.Info("streaming call reports to glassmesh", "target", s.r.cfg.Target)
	}
	s.identified, s.up, s.backoff = true, true, 0
	s.r.sent.Add(uint64(len(batch)))
	return batch[:0]
}

// endStream closes a broken stream and returns the status it ended with.
func (s *sender) endStream(sendErr error) error {
	err := sendErr
	if errors.Is(sendErr, io.EOF) {
		// The server ended the stream; the status says why.
		_, err = s.stream.CloseAndRecv()
	}
	s.stream = nil
	return err
}

// failed schedules the next connection attempt with jittered exponential
// backoff.
func (s *sender) failed(err error) {
	if s.up {
		s.r.logger.Warn("lost the stream of call reports to glassmesh; retrying", "target", s.r.cfg.Target, "err", err)
	} else {
		s.r.logger.Debug("cannot stream call reports to glassmesh", "target", s.r.cfg.Target, "err", err)
	}
	s.up = false
	s.backoff = min(max(s.backoff*2, minBackoff), maxBackoff)
	wait := s.backoff/2 + rand.N(s.backoff/2+1)
	s.retryAt = time.Now().Add(max(wait, retryDelay(err)))
}

// retryDelay is the delay a pushed-back server asked for (google.rpc.RetryInfo
// with RESOURCE_EXHAUSTED), or 0.
func retryDelay(err error) time.Duration {
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return min(ri.GetRetryDelay().AsDuration(), maxBackoff)
		}
	}
	return 0
}

// drain sends everything still queued, retrying until the reporter's
// context ends (CloseTimeout), then ends the stream so the server has
// handled every message before Close returns.
func (s *sender) drain(batch []*accesslogdatav3.HTTPAccessLogEntry) error {
	for {
		for len(batch) < s.r.cfg.BatchSize && len(s.r.queue) > 0 {
			batch = append(batch, <-s.r.queue)
		}
		if len(batch) == 0 {
			break
		}
		if batch = s.flush(batch, true); len(batch) == 0 {
			continue
		}
		select {
		case <-s.r.ctx.Done():
			n := uint64(len(batch) + len(s.r.queue))
			s.r.unsent.Add(n)
			return fmt.Errorf("grpcreport: %d call reports not delivered to %s before the close timeout", n, s.r.cfg.Target)
		case <-time.After(minBackoff):
		}
	}
	if s.stream == nil {
		return nil
	}
	if _, err := s.stream.CloseAndRecv(); err != nil {
		return fmt.Errorf("grpcreport: ending the report stream to %s: %w", s.r.cfg.Target, err)
	}
	return nil
}
