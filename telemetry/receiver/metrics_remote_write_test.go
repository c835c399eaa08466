package receiver

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

const (
	rw1ContentType = "application/x-protobuf"
	rw2ContentType = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
)

// rw1Body is a snappy-compressed remote-write 1.0 request with one sample.
func rw1Body(t *testing.T, name string, v float64, ts int64) []byte {
	t.Helper()
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: name}, {Name: "job", Value: "rw"}},
		Samples: []prompb.Sample{{Value: v, Timestamp: ts}},
	}}}
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, raw)
}

// rw2Body is a snappy-compressed remote-write 2.0 request with one gauge sample.
func rw2Body(t *testing.T, name string, v float64, ts int64) []byte {
	t.Helper()
	st := writev2.NewSymbolTable()
	refs := st.SymbolizeLabels(labels.FromStrings("__name__", name, "job", "rw2"), nil)
	req := &writev2.Request{
		Timeseries: []writev2.TimeSeries{{
			LabelsRefs: refs,
			Samples:    []writev2.Sample{{Value: v, Timestamp: ts}},
			Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE},
		}},
		Symbols: st.Symbols(),
	}
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, raw)
}

// postRW posts a remote-write body and returns the response (body read).
func postRW(t *testing.T, url, contentType string, body []byte) (*http.Response, string) {
	t.Helper()
	return postWith(t, url, body, "Content-Type", contentType, "Content-Encoding", "snappy",
		"X-Prometheus-Remote-Write-Version", "0.1.0")
}

func TestRemoteWriteReceiver(t *testing.T) {
	e := newIngestEnv(t, ingestEnvOptions{})
	url := e.srv.URL + "/api/v1/write"
	now := timestamp.FromTime(time.Now())

	t.Run("a 1.0 request is stored and queryable", func(t *testing.T) {
		resp, body := postRW(t, url, rw1ContentType, rw1Body(t, "rw_in_v1", 3, now))
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if got := e.query(t, "rw_in_v1"); got[`{__name__="rw_in_v1", job="rw"}`] != "3" {
			t.Fatalf("query = %v", got)
		}
	})
	t.Run("a 2.0 request is stored and reports what was written", func(t *testing.T) {
		resp, body := postRW(t, url, rw2ContentType, rw2Body(t, "rw_in_v2", 5, now))
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if got := resp.Header.Get("X-Prometheus-Remote-Write-Samples-Written"); got != "1" {
			t.Fatalf("samples written header = %q", got)
		}
		if got := e.query(t, "rw_in_v2"); got[`{__name__="rw_in_v2", job="rw2"}`] != "5" {
			t.Fatalf("query = %v", got)
		}
	})

	tests := []struct {
		name        string
		contentType string
		body        []byte
		code        int
		reason      string
	}{
		// klauspost/compress's snappy decoder says "s2: corrupt input".
		{"a body that is not snappy is refused with the reason", rw1ContentType, []byte("hello, not snappy"),
			http.StatusBadRequest, "corrupt input"},
		{"an uncompressed protobuf is refused as not snappy", rw1ContentType, rw1BodyRaw(t),
			http.StatusBadRequest, "corrupt input"},
		{"snappy that is not a protobuf is refused", rw1ContentType, snappy.Encode(nil, []byte("\xff\xff\xff")),
			http.StatusBadRequest, ""},
		{"an unknown content type is refused", "text/plain", rw1Body(t, "x", 1, now),
			http.StatusUnsupportedMediaType, "expected application/x-protobuf"},
		{"an out-of-order sample is a bad request", rw1ContentType, rw1Body(t, "rw_in_v1", 1, now-time.Hour.Milliseconds()),
			http.StatusBadRequest, "out of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := postRW(t, url, tt.contentType, tt.body)
			if resp.StatusCode != tt.code || !strings.Contains(body, tt.reason) {
				t.Fatalf("got %d %q, want %d containing %q", resp.StatusCode, body, tt.code, tt.reason)
			}
		})
	}
	t.Run("GET is not a write", func(t *testing.T) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("GET: %d", resp.StatusCode)
		}
	})
}

func rw1BodyRaw(t *testing.T) []byte {
	raw, err := snappy.Decode(nil, rw1Body(t, "raw", 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestIngestOverload keeps requests in flight and checks that the next
// ones are turned away at once, across receivers, instead of queueing.
func TestIngestOverload(t *testing.T) {
	var blocking *blockingAppendable
	wrap := withBlockingAppendable(&blocking)
	now := timestamp.FromTime(time.Now())

	t.Run("over the request limit: 429 with Retry-After, for remote-write and OTLP alike", func(t *testing.T) {
		e := newIngestEnv(t, ingestEnvOptions{wrap: wrap, cfg: MetricsConfig{MaxInflightRequests: 1, RetryAfter: 2 * time.Second}})
		first := make(chan int, 1)
		go func() {
			resp, _ := postRW(t, e.srv.URL+"/api/v1/write", rw1ContentType, rw1Body(t, "held", 1, now))
			first <- resp.StatusCode
		}()
		<-blocking.entered
		resp, body := postRW(t, e.srv.URL+"/api/v1/write", rw1ContentType, rw1Body(t, "refused", 1, now))
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" {
			t.Fatalf("second write: %d Retry-After=%q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		code, _ := otlpPostHTTP(t, e.srv.URL+"/api/v1/otlp/v1/metrics", otlpTestRequest(now))
		if code != http.StatusTooManyRequests {
			t.Fatalf("OTLP while full: %d", code)
		}
		close(blocking.release)
		if code := <-first; code != http.StatusNoContent {
			t.Fatalf("held write: %d", code)
		}
		if resp, body := postRW(t, e.srv.URL+"/api/v1/write", rw1ContentType, rw1Body(t, "later", 1, now)); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("write after release: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("over the byte limit: 429; larger than the limit alone: 413", func(t *testing.T) {
		small := rw1Body(t, "held", 1, now)
		e := newIngestEnv(t, ingestEnvOptions{wrap: wrap, cfg: MetricsConfig{MaxInflightBytes: int64(len(small)) * 3 / 2}})
		first := make(chan int, 1)
		go func() {
			resp, _ := postRW(t, e.srv.URL+"/api/v1/write", rw1ContentType, small)
			first <- resp.StatusCode
		}()
		<-blocking.entered
		if resp, body := postRW(t, e.srv.URL+"/api/v1/write", rw1ContentType, small); resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("second write: %d %s", resp.StatusCode, body)
		}
		big := bytes.Repeat(small, 2)
		if resp, body := postRW(t, e.srv.URL+"/api/v1/write", rw1ContentType, big); resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("big write: %d %s", resp.StatusCode, body)
		}
		close(blocking.release)
		if code := <-first; code != http.StatusNoContent {
			t.Fatalf("held write: %d", code)
		}
	})
}
