package metrics

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/glassmesh/glassmesh/telemetry/metrics/metricstest"
)

// fakeRemoteWriteReceiver decodes remote-write 1.0 requests (snappy +
// prompb) and keeps the last value per series.
type fakeRemoteWriteReceiver struct {
	srv *httptest.Server

	mu      sync.Mutex
	samples map[string]float64
	headers http.Header
}

func newFakeRemoteWriteReceiver(t *testing.T) *fakeRemoteWriteReceiver {
	r := &fakeRemoteWriteReceiver{samples: map[string]float64{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		compressed, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		raw, err := snappy.Decode(nil, compressed)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var wr prompb.WriteRequest
		if err := wr.Unmarshal(raw); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.headers = req.Header.Clone()
		for _, ts := range wr.Timeseries {
			b := labels.NewScratchBuilder(len(ts.Labels))
			for _, l := range ts.Labels {
				b.Add(l.Name, l.Value)
			}
			b.Sort()
			for _, s := range ts.Samples {
				r.samples[b.Labels().String()] = s.Value
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *fakeRemoteWriteReceiver) value(series string) (float64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.samples[series]
	return v, ok
}

// startRemoteWrite ships e's TSDB to urls until the test ends.
func startRemoteWrite(t *testing.T, e *dbEnv, cfg RemoteWriteConfig) {
	t.Helper()
	cfg.BatchSendDeadline = 50 * time.Millisecond
	cfg.FlushDeadline = time.Second
	rw, err := NewRemoteWrite(cfg, e.db, metricstest.Logger(t), e.reg)
	if err != nil {
		t.Fatal(err)
	}
	metricstest.Run(t, rw.Run)
}

// appendUntil appends series=i every 100ms until arrived(i) holds: the WAL
// watcher only ships samples newer than its own start.
func appendUntil(t *testing.T, e *dbEnv, lbls labels.Labels, arrived func(v float64) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for i := 1; ; i++ {
		metricstest.Append(t, e.db, metricstest.Sample{Labels: lbls, T: timestamp.FromTime(time.Now()), V: float64(i)})
		time.Sleep(100 * time.Millisecond)
		if arrived(float64(i)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not arrive in 30s", lbls)
		}
	}
}

func TestRemoteWriteShipsToReceiver(t *testing.T) {
	recv := newFakeRemoteWriteReceiver(t)
	e := newDBEnv(t)
	u := recv.srv.URL + "/api/v1/push"
	startRemoteWrite(t, e, RemoteWriteConfig{
		URLs:           []string{u[:len("http://")] + "mesh:pw@" + u[len("http://"):]},
		ExternalLabels: map[string]string{"cluster": "test"},
	})
	lbls := labels.FromStrings("__name__", "rw_out_total", "job", "mesh")
	appendUntil(t, e, lbls, func(v float64) bool {
		got, ok := recv.value(`{__name__="rw_out_total", cluster="test", job="mesh"}`)
		return ok && got >= 1
	})
	recv.mu.Lock()
	h := recv.headers
	recv.mu.Unlock()
	if h.Get("Content-Encoding") != "snappy" || h.Get("Authorization") == "" || h.Get("X-Prometheus-Remote-Write-Version") == "" {
		t.Fatalf("request headers: %v", h)
	}
}

// With a replica label, the replica's own series carry it and rule results
// (recordings, ALERTS, ALERTS_FOR_STATE) do not: the leader writes those
// for the whole mesh and the next leader continues the same series.
func TestRemoteWriteReplicaLabelSkipsRuleResults(t *testing.T) {
	recv := newFakeRemoteWriteReceiver(t)
	e := newDBEnv(t)
	startRemoteWrite(t, e, RemoteWriteConfig{
		URLs:           []string{recv.srv.URL + "/api/v1/push"},
		ExternalLabels: map[string]string{"replica": "glassmesh-0", "cluster": "east"},
		ReplicaLabel:   "replica",
	})
	own := labels.FromStrings("__name__", "istio_requests_total", "destination_service_name", "reviews")
	appendUntil(t, e, own, func(float64) bool {
		_, ok := recv.value(`{__name__="istio_requests_total", cluster="east", destination_service_name="reviews", replica="glassmesh-0"}`)
		return ok
	})
	for _, name := range []string{"slo:sli_error:ratio_rate5m", "ALERTS", "ALERTS_FOR_STATE"} {
		lbls := labels.FromStrings("__name__", name, "sloth_id", "default-reviews-availability")
		appendUntil(t, e, lbls, func(float64) bool {
			_, ok := recv.value(`{__name__="` + name + `", cluster="east", sloth_id="default-reviews-availability"}`)
			return ok
		})
		if _, ok := recv.value(`{__name__="` + name + `", cluster="east", replica="glassmesh-0", sloth_id="default-reviews-availability"}`); ok {
			t.Errorf("%s was sent with the replica label", name)
		}
	}
}

func TestRemoteWriteReplicaLabelMustBeAName(t *testing.T) {
	for _, name := range []string{"__name__", "a\xff"} {
		err := RemoteWriteConfig{ReplicaLabel: name}.Validate()
		if err == nil || !strings.Contains(err.Error(), "remote-write.replica-label") {
			t.Errorf("ReplicaLabel %q: err = %v, want one naming remote-write.replica-label", name, err)
		}
	}
}

// TestRemoteWriteToPrometheus ships to a real Prometheus (Debian's
// package) started with its remote-write receiver, and reads the series
// back through that Prometheus's query API.
func TestRemoteWriteToPrometheus(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus binary not installed (Debian package prometheus; .ci/run installs it)")
	}
	promURL := startPrometheus(t, bin)
	e := newDBEnv(t)
	startRemoteWrite(t, e, RemoteWriteConfig{URLs: []string{promURL + "/api/v1/write"}})
	lbls := labels.FromStrings("__name__", "glassmesh_rw_e2e_total", "job", "mesh", "destination_workload", "reviews-v2")
	appendUntil(t, e, lbls, func(float64) bool {
		v, ok := promQuery(t, promURL, "glassmesh_rw_e2e_total")
		return ok && v >= 1
	})
}

func startPrometheus(t *testing.T, bin string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeLoopbackAddr(t)
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--web.enable-remote-write-receiver", "--log.level=warn")
	cmd.Stdout, cmd.Stderr = t.Output(), t.Output()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	base := "http://" + addr
	metricstest.Eventually(t, 30*time.Second, "prometheus ready", func() bool {
		select {
		case <-exited:
			t.Fatal("prometheus exited early")
		default:
		}
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return base
}

func freeLoopbackAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// promQuery returns the value of a one-series instant query.
func promQuery(t *testing.T, base, q string) (float64, bool) {
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Data.Result) != 1 {
		return 0, false
	}
	var v float64
	_, err = fmt.Sscan(r.Data.Result[0].Value[1].(string), &v)
	return v, err == nil
}

func TestRemoteWriteConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  RemoteWriteConfig
		want string
	}{
		{"no URLs is valid", RemoteWriteConfig{}, ""},
		{"http and https URLs are valid", RemoteWriteConfig{URLs: []string{"http://a/api/v1/write", "https://u:p@b/push"}}, ""},
		{"a URL without scheme is named by index", RemoteWriteConfig{URLs: []string{"http://a", "b:9090/write"}}, "remote-write-url[1]"},
		{"a URL without host is named", RemoteWriteConfig{URLs: []string{"http:///write"}}, "missing host"},
		{"a URL given twice is named", RemoteWriteConfig{URLs: []string{"http://a", "http://a"}}, "given twice"},
		{"a negative deadline is named", RemoteWriteConfig{BatchSendDeadline: -1}, "remote-write.batch-send-deadline"},
		{"a bad external label is named", RemoteWriteConfig{ExternalLabels: map[string]string{"": "x"}}, "remote-write.external-label:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			metricstest.CheckErr(t, tt.cfg.Validate(), tt.want)
		})
	}
}

// dbEnv is a temp-dir TSDB and a registry for what runs on it.
type dbEnv struct {
	db  *tsdb.DB
	reg *prometheus.Registry
}

func newDBEnv(t *testing.T) *dbEnv {
	return &dbEnv{db: metricstest.OpenDB(t), reg: prometheus.NewRegistry()}
}
