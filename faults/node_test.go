//go:build faults

package faults

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// node is one glassmesh that is killed and started again on the same data
// dir and the same ports, so clients reconnect as they would to a
// restarted pod behind a stable address.
type node struct {
	dir                string
	http, grpc, zipkin string
	args               []string
	g                  *glassmesh
	starts             int
}

// newNode picks the node's ports; args go to every start.
func newNode(t *testing.T, dir string, args ...string) *node {
	return &node{dir: dir, http: freeAddr(t), grpc: freeAddr(t), zipkin: freeAddr(t), args: args}
}

// start runs glassmesh and returns how long it took from exec to
// /readyz/all answering 200 (every store open), logging where the time went by the binary's own log.
func (n *node) start(t *testing.T) time.Duration {
	t.Helper()
	began := time.Now()
	n.g = launch(t, append(n.args, "--data-dir", n.dir, "--http-addr", n.http, "--grpc-addr", n.grpc, "--zipkin-addr", n.zipkin)...)
	listening := time.Since(began)
	// Every store open, not only xDS (/readyz): what a case's read-backs need.
	eventually(t, 2*time.Minute, "/readyz/all 200", func() error {
		resp, err := http.Get("http://" + n.http + "/readyz/all")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	ready := time.Since(began)
	n.starts++
	t.Logf("start %d: listening after %s, ready after %s (trace store opened in %s, TSDB in %s, istio_* counters restored in %s)",
		n.starts, listening.Round(time.Millisecond), ready.Round(time.Millisecond),
		n.took("trace store opened", "took"), n.took("metrics storage opened", "took"), n.took("metrics restored from TSDB", "took"))
	return ready
}

// took is a duration field of the first log line of message msg.
func (n *node) took(msg, field string) string {
	l, ok := n.g.logged(msg)
	if !ok {
		return "?"
	}
	switch v := l[field].(type) {
	case float64: // slog's JSON handler writes durations as nanoseconds
		return time.Duration(v).Round(time.Millisecond).String()
	case string:
		return v
	}
	return "?"
}

// kill sends SIGKILL and waits until the process is gone.
func (n *node) kill(t *testing.T) {
	t.Helper()
	if err := n.g.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = n.g.cmd.Wait()
}

// traceSpans returns the span ids the Jaeger API holds for a trace id
// (32 hex characters); none when it is not found.
func (n *node) traceSpans(t *testing.T, id string) []string {
	t.Helper()
	resp, err := http.Get("http://" + n.http + "/api/traces/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	var body struct {
		Data []struct {
			Spans []struct {
				SpanID string `json:"spanID"`
			} `json:"spans"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("trace %s: status %d, %v", id, resp.StatusCode, err)
	}
	var out []string
	for _, d := range body.Data {
		for _, s := range d.Spans {
			out = append(out, s.SpanID)
		}
	}
	return out
}

// promSeries is one series of a PromQL answer: an instant vector's value
// or a range vector's values.
type promSeries struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
	Values [][2]any          `json:"values"`
}

// query runs an instant PromQL query.
func (n *node) query(t *testing.T, q string) []promSeries {
	t.Helper()
	resp, err := http.Get("http://" + n.http + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Result []promSeries `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &body); err != nil || body.Status != "success" {
		t.Fatalf("query %s: %s %v", q, b, err)
	}
	return body.Data.Result
}

// queryScalar is the value of a query that returns one series.
func (n *node) queryScalar(t *testing.T, q string) float64 {
	t.Helper()
	r := n.query(t, q)
	if len(r) != 1 {
		t.Fatalf("query %s: %d series", q, len(r))
	}
	return promFloat(t, r[0].Value[1])
}

func promFloat(t *testing.T, v any) float64 {
	s, _ := v.(string)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("sample value %v: %v", v, err)
	}
	return f
}
