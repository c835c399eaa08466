package forward

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// Exporter sends spans to an external trace backend. The Forwarder calls
// it, one call at a time per target, and retries what it reports as
// transient.
type Exporter interface {
	// Export sends td and returns nil once the target accepted it. An error
	// is transient (retried with backoff) unless it is an *ExportError with
	// Permanent set; it must not keep td after returning.
	Export(ctx context.Context, td ptrace.Traces) error
}

// ExportError is an error an Exporter reports with what the forwarder
// needs to decide between retrying and giving up.
type ExportError struct {
	// Err is the cause.
	Err error
	// Permanent means retrying the same spans cannot succeed (a 4xx other
	// than 408/429, INVALID_ARGUMENT, or an OTLP partial success): the
	// forwarder counts them as failed and moves on.
	Permanent bool
	// Rejected is how many spans a partial success rejected; 0 means all.
	Rejected int64
	// RetryAfter is the wait the target asked for (Retry-After, RetryInfo).
	RetryAfter time.Duration
}

// Error implements error.
func (e *ExportError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *ExportError) Unwrap() error { return e.Err }

// NewExporter builds the exporter for an --traces.export-otlp URL:
//
//	http://host:port, https://host:port   OTLP/HTTP protobuf, POST to /v1/traces
//	http(s)://host:port/some/path         OTLP/HTTP protobuf, POST to that exact path
//	grpc://host:port, or host:port        OTLP/gRPC without TLS
//
// So glassmesh's own receiver is reached at http://<otlp-http-addr> or
// <otlp-grpc-addr>. The exporter (an *HTTPExporter or *GRPCExporter) holds
// connections: stop it with its Close method.
func NewExporter(rawURL string) (Exporter, error) {
	kind, target, err := parseExportURL(rawURL)
	if err != nil {
		return nil, err
	}
	if kind == "grpc" {
		return NewGRPCExporter(target)
	}
	return NewHTTPExporter(target), nil
}

// parseExportURL applies NewExporter's URL convention; it returns "http"
// with the full POST URL or "grpc" with host:port.
func parseExportURL(raw string) (kind, target string, err error) {
	if !strings.Contains(raw, "://") {
		if _, _, err := splitHostPort(raw); err != nil {
			return "", "", fmt.Errorf("%q: want http(s)://host:port[/path], grpc://host:port or host:port", raw)
		}
		return "grpc", raw, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("%q: %w", raw, err)
	}
	if u.Host == "" {
		return "", "", fmt.Errorf("%q: no host", raw)
	}
	switch u.Scheme {
	case "grpc":
		if u.Path != "" && u.Path != "/" {
			return "", "", fmt.Errorf("%q: a gRPC URL has no path", raw)
		}
		return "grpc", u.Host, nil
	case "http", "https":
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/traces"
		}
		return "http", u.String(), nil
	}
	return "", "", fmt.Errorf("%q: scheme %q is not http, https or grpc", raw, u.Scheme)
}

func splitHostPort(s string) (string, int, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return "", 0, errors.New("no port")
	}
	p, err := strconv.Atoi(s[i+1:])
	if err != nil || p <= 0 || p > 65535 {
		return "", 0, errors.New("bad port")
	}
	return s[:i], p, nil
}

// HTTPExporter sends spans as OTLP/HTTP protobuf to one URL.
type HTTPExporter struct {
	url       string
	client    *http.Client
	transport *http.Transport
}

// NewHTTPExporter returns an exporter that POSTs to postURL as is.
func NewHTTPExporter(postURL string) *HTTPExporter {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &HTTPExporter{url: postURL, transport: tr, client: &http.Client{Transport: tr}}
}

// protoExporter is an Exporter that sends TracesData protobuf as it is
// (the same bytes as an ExportTraceServiceRequest: both are field 1,
// repeated ResourceSpans), so forwarding skips a decode and an encode.
type protoExporter interface {
	exportProto(ctx context.Context, body []byte) error
}

// Export implements Exporter: 2xx is success (a partial success with
// rejected spans is a permanent *ExportError), 4xx other than 408/429 is
// permanent, and everything else is transient, with Retry-After honoured.
func (e *HTTPExporter) Export(ctx context.Context, td ptrace.Traces) error {
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		return &ExportError{Err: fmt.Errorf("encode: %w", err), Permanent: true}
	}
	return e.exportProto(ctx, body)
}

func (e *HTTPExporter) exportProto(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return &ExportError{Err: err, Permanent: true}
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // lets the connection be reused
	if resp.StatusCode/100 == 2 {
		return partialSuccess(msg)
	}
	err = fmt.Errorf("POST %s: %s: %s", e.url, resp.Status, strings.TrimSpace(string(msg)))
	permanent := resp.StatusCode/100 == 4 &&
		resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout
	return &ExportError{Err: err, Permanent: permanent, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
}

// partialSuccess reports the spans an OTLP response body says it rejected.
func partialSuccess(body []byte) error {
	if len(body) == 0 {
		return nil
	}
	r := ptraceotlp.NewExportResponse()
	if r.UnmarshalProto(body) != nil {
		return nil // not OTLP protobuf; the 2xx is what counts
	}
	ps := r.PartialSuccess()
	if ps.RejectedSpans() == 0 {
		return nil
	}
	return &ExportError{Err: fmt.Errorf("target rejected %d spans: %s", ps.RejectedSpans(), ps.ErrorMessage()),
		Permanent: true, Rejected: ps.RejectedSpans()}
}

// retryAfter parses a Retry-After value, seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Close closes idle connections.
func (e *HTTPExporter) Close() error {
	e.transport.CloseIdleConnections()
	return nil
}
