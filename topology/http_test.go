package topology

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// newFixtureServer serves the fixture graph (clock at fixtureNow).
func newFixtureServer(t *testing.T) *httptest.Server {
	t.Helper()
	g := newFixtureGraph(t, fixtureNow)
	mux := http.NewServeMux()
	g.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// strictDecode decodes body into the Kiali mirror types, rejecting any
// field they do not know.
func strictDecode(t testing.TB, body []byte) *Cytoscape {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var c Cytoscape
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("strict decode: %v\n%s", err, body)
	}
	return &c
}

func TestGraphEndpointMatchesGoldenFiles(t *testing.T) {
	srv := newFixtureServer(t)
	const at = "&queryTime=1790000000"
	for name, q := range map[string]string{
		"workload":            "graphType=workload",
		"app_boxed":           "graphType=app&boxBy=namespace,app&namespaces=bookinfo",
		"versioned_app":       "graphType=versionedApp&boxBy=app&responseTime=99&throughputType=request",
		"service":             "graphType=service",
		"workload_injected":   "injectServiceNodes=true&boxBy=cluster,namespace",
		"no_appenders":        "appenders=",
		"other_namespace_out": "namespaces=other",
	} {
		t.Run(name, func(t *testing.T) {
			code, body := get(t, srv.URL+PathGraph+"?"+q+at)
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, body)
			}
			strictDecode(t, body)
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, body, "", "  "); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("%s differs from %s (run with -update after checking the diff):\n%s", q, path, pretty.Bytes())
			}
		})
	}
}

func TestGraphIDsAreStableAcrossCalls(t *testing.T) {
	srv := newFixtureServer(t)
	_, a := get(t, srv.URL+PathGraph+"?queryTime=1790000000")
	_, b := get(t, srv.URL+PathGraph+"?queryTime=1790000000&graphType=workload&duration=600s")
	if !bytes.Equal(a, b) {
		t.Error("the same graph twice differs")
	}
}

func TestBadParametersAnswer400WithKialiErrorJSON(t *testing.T) {
	srv := newFixtureServer(t)
	for _, q := range []string{"graphType=pods", "duration=soon", "duration=0s", "queryTime=yesterday",
		"appenders=magic", "injectServiceNodes=maybe", "rateGrpc=bytes", "rateHttp=sent", "rateTcp=requests",
		"responseTime=90", "throughputType=both", "boxBy=version", "refresh=1ms"} {
		for _, path := range []string{PathGraph, PathStream} {
			t.Run(path+"?"+q, func(t *testing.T) {
				code, body := get(t, srv.URL+path+"?"+q)
				if code != http.StatusBadRequest {
					t.Fatalf("status %d, want 400: %s", code, body)
				}
				var e struct {
					Error string `json:"error"`
				}
				dec := json.NewDecoder(bytes.NewReader(body))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&e); err != nil || e.Error == "" {
					t.Fatalf("body %s: %v", body, err)
				}
				param, _, _ := strings.Cut(q, "=")
				if !strings.HasPrefix(e.Error, param+":") {
					t.Errorf("error %q does not name %s", e.Error, param)
				}
			})
		}
	}
}

func TestOptionsDefaultsAreKialis(t *testing.T) {
	o, err := ParseOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.GraphType != "workload" || o.Duration != 10*time.Minute || o.InjectServiceNodes || o.RateHTTP != "requests" ||
		o.RateGRPC != "requests" || o.RateTCP != "sent" || o.ResponseTime != "95" || o.ThroughputType != "response" ||
		o.Refresh != 5*time.Second || len(o.BoxBy) != 0 || !o.Appenders[AppenderHealth] || o.Appenders[AppenderIdleNode] {
		t.Errorf("defaults %+v", o)
	}
}

func TestGraphIsGzippedOnlyWhenAskedAndOnce(t *testing.T) {
	srv := newFixtureServer(t)
	url := srv.URL + PathGraph + "?queryTime=1790000000"
	// A transport that adds no Accept-Encoding and decompresses nothing.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	t.Cleanup(client.CloseIdleConnections)
	fetch := func(acceptEncoding string) (string, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if acceptEncoding != "" {
			req.Header.Set("Accept-Encoding", acceptEncoding)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %v", resp.StatusCode, err)
		}
		return resp.Header.Get("Content-Encoding"), body
	}
	enc, plain := fetch("")
	if enc != "" {
		t.Fatalf("Content-Encoding %q without Accept-Encoding", enc)
	}
	strictDecode(t, plain)
	for _, ae := range []string{"gzip", "br, gzip;q=0.5", "deflate , GZIP"} {
		enc, zipped := fetch(ae)
		if enc != "gzip" {
			t.Fatalf("Accept-Encoding %q: Content-Encoding %q", ae, enc)
		}
		zr, err := gzip.NewReader(bytes.NewReader(zipped))
		if err != nil {
			t.Fatal(err)
		}
		unzipped, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(unzipped, plain) {
			t.Errorf("Accept-Encoding %q: the gzipped graph is not the plain one (%v)", ae, err)
		}
	}
	for _, ae := range []string{"gzip;q=0", "br", "identity"} {
		if enc, _ := fetch(ae); enc != "" {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q", ae, enc)
		}
	}
	e := &cacheEntry{body: plain}
	if a, b := e.gzipped(), e.gzipped(); &a[0] != &b[0] {
		t.Error("a cached graph was compressed twice")
	}
}
