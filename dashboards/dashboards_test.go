package dashboards

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func testHandler(t *testing.T) *handler {
	t.Helper()
	js := "console.log(" + strings.Repeat(`"glassmesh",`, 200) + ");"
	h, err := newHandler(fstest.MapFS{
		"index.html":           {Data: []byte("<!doctype html><title>glassmesh</title>")},
		"assets/index-abc.js":  {Data: []byte(js)},
		"assets/index-abc.css": {Data: []byte("body{}")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHandler(t *testing.T) {
	h := testHandler(t)
	for _, tc := range []struct {
		name, method, path string
		status             int
		ctype, cache, body string
	}{
		{"the root is index.html", "GET", "/", 200, "text/html; charset=utf-8", "no-cache", "<!doctype html>"},
		{"a client-side route falls back to index.html", "GET", "/graph", 200, "text/html; charset=utf-8", "no-cache", "<!doctype html>"},
		{"a nested client-side route falls back too", "GET", "/traces/4bf92f3577b34da6", 200, "text/html; charset=utf-8", "no-cache", "<!doctype html>"},
		{"a hashed asset is cached for a year", "GET", "/assets/index-abc.js", 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", "console.log("},
		{"css has its type", "GET", "/assets/index-abc.css", 200, "text/css; charset=utf-8", "public, max-age=31536000, immutable", "body{}"},
		{"a missing asset is 404, not index.html", "GET", "/assets/gone.js", 404, "", "", ""},
		{"a missing file with an extension is 404", "GET", "/favicon.ico", 404, "", "", ""},
		{"an unknown API path is 404, not the SPA", "GET", "/api/nope", 404, "", "", ""},
		{"HEAD works", "HEAD", "/", 200, "text/html; charset=utf-8", "no-cache", ""},
		{"POST is refused", "POST", "/", 405, "", "", ""},
		{"POST to an unknown API path is 404", "POST", "/api/nope", 404, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			if tc.status != 200 {
				return
			}
			if got := rec.Header().Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			if got := rec.Header().Get("Cache-Control"); got != tc.cache {
				t.Errorf("Cache-Control %q, want %q", got, tc.cache)
			}
			if !strings.HasPrefix(rec.Body.String(), tc.body) {
				t.Errorf("body %.40q, want prefix %q", rec.Body.String(), tc.body)
			}
		})
	}
}

func TestHandlerGzipAndETag(t *testing.T) {
	h := testHandler(t)
	req := httptest.NewRequest("GET", "/assets/index-abc.js", nil)
	req.Header.Set("Accept-Encoding", "br, gzip")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("not gzipped: %v", rec.Header())
	}
	zr, err := gzip.NewReader(bytes.NewReader(rec.Body.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if !bytes.Equal(plain, h.files["assets/index-abc.js"].body) {
		t.Fatal("gzip body differs from the file")
	}

	req = httptest.NewRequest("GET", "/", nil)
	req.Header.Set("If-None-Match", h.index.etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Fatalf("revalidation: status %d, want 304", rec.Code)
	}
}

func TestEmbeddedBuild(t *testing.T) {
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `<div id="app">`) {
		t.Fatalf("the embedded index.html is not the built UI (run make ui): %d %.200s", rec.Code, rec.Body.String())
	}
}
