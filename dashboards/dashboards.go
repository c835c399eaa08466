// Package dashboards is glassmesh's web UI: the built single-page app
// (sources in web/, built by `make ui` into dist/) embedded in the binary,
// and the Grafana dashboards in grafana/. It talks to the other parts only
// through their HTTP APIs.
package dashboards

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed all:dist
var dist embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	body  []byte
	gz    []byte // gzip-compressed body when that is smaller, else nil
	ctype string
	etag  string
	cache string
}

// handler serves the embedded SPA from a map built once at start.
type handler struct {
	files map[string]*asset // by path without the leading slash
	index *asset
}

// Handler serves the web UI; mount it at "/" (no method, so that it does
// not conflict with method-less API patterns such as "/api/v1/"). It serves
// the files of dist/, index.html for every other
// path that looks like a client-side route (no file extension, not under
// /api/ or /assets/), hashed assets with a year-long immutable cache, and
// gzip when the client accepts it.
func Handler() http.Handler {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // dist is embedded at build time; this cannot fail
	}
	h, err := newHandler(sub)
	if err != nil {
		panic(err)
	}
	return h
}

func newHandler(fsys fs.FS) (*handler, error) {
	h := &handler{files: map[string]*asset{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		h.files[p] = newAsset(p, body)
		return nil
	})
	if err != nil {
		return nil, err
	}
	h.index = h.files["index.html"]
	if h.index == nil {
		// A checkout whose dist was never built: say so instead of 404s.
		h.index = newAsset("index.html", []byte(`<!doctype html><meta charset="utf-8"><title>glassmesh</title>
<p>The glassmesh web UI was not built into this binary: run <code>make ui</code> and rebuild. The APIs under /api work.</p>`))
	}
	return h, nil
}

func newAsset(p string, body []byte) *asset {
	sum := sha256.Sum256(body)
	a := &asset{
		body:  body,
		ctype: mime.TypeByExtension(path.Ext(p)),
		etag:  `"` + hex.EncodeToString(sum[:8]) + `"`,
		cache: "no-cache",
	}
	if a.ctype == "" {
		a.ctype = http.DetectContentType(body)
	}
	// Vite names every file under assets/ by its content hash.
	if strings.HasPrefix(p, "assets/") {
		a.cache = "public, max-age=31536000, immutable"
	}
	if compressible(a.ctype) && len(body) > 1024 {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		_, _ = zw.Write(body)
		_ = zw.Close()
		if b.Len() < len(body) {
			a.gz = b.Bytes()
		}
	}
	return a
}

func compressible(ctype string) bool {
	for _, p := range []string{"text/", "application/javascript", "application/json", "image/svg+xml"} {
		if strings.HasPrefix(ctype, p) {
			return true
		}
	}
	return false
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		// Mounted at "/", this also sees other methods on unknown API paths.
		if strings.HasPrefix(p, "api/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	a := h.files[p]
	if a == nil || p == "" {
		if p != "" && (path.Ext(p) != "" || strings.HasPrefix(p, "api/") || strings.HasPrefix(p, "assets/")) {
			http.NotFound(w, r)
			return
		}
		a = h.index
	}
	hd := w.Header()
	hd.Set("Content-Type", a.ctype)
	hd.Set("Cache-Control", a.cache)
	hd.Set("ETag", a.etag)
	hd.Set("X-Content-Type-Options", "nosniff")
	body := a.body
	if a.gz != nil {
		hd.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			hd.Set("Content-Encoding", "gzip")
			body = a.gz
		}
	}
	// ServeContent answers If-None-Match from the ETag and handles HEAD.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// acceptsGzip reads Accept-Encoding, honouring an explicit q=0.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(name) != "gzip" && strings.TrimSpace(name) != "*" {
			continue
		}
		q := strings.ReplaceAll(params, " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}
