// Package record is the request record every telemetry part shares: one
// request (or TCP connection event) as one reporter saw it, with Istio's
// labels, and the consumer interface the pipeline feeds. The receivers and
// the pipeline build records, the metrics aggregator and the graph read
// them; none of them needs the others (or the TSDB) to name one. It
// imports only the standard library.
package record

import (
	"context"
	"errors"
	"syscall"
	"time"
)

// Reporters of a request, as Istio's "reporter" label.
const (
	ReporterSource      = "source"
	ReporterDestination = "destination"
)

// Protocols, as Istio's "request_protocol" label.
const (
	ProtocolHTTP = "http"
	ProtocolGRPC = "grpc"
	ProtocolTCP  = "tcp"
)

// Unknown is the value of every label glassmesh cannot fill.
const Unknown = "unknown"

// Peer is one side of a request: who called, or who answered.
type Peer struct {
	Workload          string // workload name, or Unknown
	Namespace         string // workload namespace, or Unknown
	App               string // "app" label, or Unknown
	Version           string // "version" label, or Unknown
	Principal         string // SPIFFE id, or Unknown
	CanonicalService  string // Istio's canonical service: app label, else workload name
	CanonicalRevision string // Istio's canonical revision: version label, else "latest"
	Cluster           string // cluster id, or Unknown
}

// Request is one request (or, for TCP, one connection event) as seen by one
// reporter, with every label Istio's standard metrics carry. The pipeline
// builds them from Envoy access logs and proxyless reports.
type Request struct {
	Time     time.Time
	Reporter string // ReporterSource or ReporterDestination
	Source   Peer
	Dest     Peer

	DestinationService          string // host, e.g. reviews.default.svc.cluster.local, or Unknown
	DestinationServiceName      string
	DestinationServiceNamespace string

	Protocol                 string // ProtocolHTTP, ProtocolGRPC or ProtocolTCP
	ResponseCode             int    // HTTP status; 0 when there was no response
	GRPCStatus               string // numeric gRPC status as a string ("0", "14"); "" when not gRPC
	ResponseFlags            string // Envoy short codes joined by ","; "-" when none
	ConnectionSecurityPolicy string // "mutual_tls", "none" or Unknown

	Duration      time.Duration // request duration (HTTP/gRPC)
	RequestBytes  uint64        // request size, headers + body, as Istio counts it (HTTP/gRPC)
	ResponseBytes uint64        // response size, headers + body (HTTP/gRPC)

	// TCP only: bytes sent and received by the reporter since the last
	// report, and whether a connection opened and/or closed.
	TCPSentBytes     uint64
	TCPReceivedBytes uint64
	TCPOpened        bool
	TCPClosed        bool

	TraceID string // hex trace id, when the request carried one; becomes an exemplar
}

// ErrOverloaded is the one overload error of telemetry: what a store, a
// consumer or a receiver answers when it cannot take more now, and what
// receivers turn into RESOURCE_EXHAUSTED or 429 with Retry-After.
// errors.Is(err, ErrOverloaded) holds for it and for every *Overloaded.
var ErrOverloaded = errors.New("over capacity, retry later")

// Overloaded is an overload error that says what is full and, when it
// knows, when to come back.
type Overloaded struct {
	What       string        // what is full, for the client's message
	RetryAfter time.Duration // when to come back; 0: the receiver's default
}

func (e *Overloaded) Error() string { return e.What + ": over capacity, retry later" }

// Is makes errors.Is(err, ErrOverloaded) hold.
func (e *Overloaded) Is(target error) bool { return target == ErrOverloaded }

// ErrNotReady is what a store answers while it is still opening (after a
// restart it replays its write-ahead log): nothing was written or read, and
// the same request will succeed later. Receivers turn it into UNAVAILABLE
// or 503 with Retry-After; readers of metrics treat it as no data, never
// as a verdict. errors.Is(err, ErrNotReady) holds for every *NotReady.
var ErrNotReady = errors.New("not ready yet, retry later")

// NotReady is a not-ready error that says which store, why, and when to
// come back.
type NotReady struct {
	What       string        // the store, e.g. "metrics storage"
	Reason     string        // e.g. "replaying its WAL (42% of segments)"
	RetryAfter time.Duration // when to come back; 0: the receiver's default
}

func (e *NotReady) Error() string { return e.What + " is " + e.Reason + ", retry later" }

// Is makes errors.Is(err, ErrNotReady) hold.
func (e *NotReady) Is(target error) bool { return target == ErrNotReady }

// RetryAfter is when an overload, not-ready or disk-full error asks its
// client to come back, or def when it does not say.
func RetryAfter(err error, def time.Duration) time.Duration {
	var o *Overloaded
	if errors.As(err, &o) && o.RetryAfter > 0 {
		return o.RetryAfter
	}
	var n *NotReady
	if errors.As(err, &n) && n.RetryAfter > 0 {
		return n.RetryAfter
	}
	var f *StorageFull
	if errors.As(err, &f) && f.RetryAfter > 0 {
		return f.RetryAfter
	}
	return def
}

// RequestConsumer takes batches of requests. It must not keep the slice.
type RequestConsumer interface {
	// ConsumeRequests records the requests. It returns ErrOverloaded when it
	// is over capacity, in which case none of the batch was recorded.
	ConsumeRequests(ctx context.Context, reqs []Request) error
}

// ErrStorageFull is the one disk-full error of telemetry: what a store
// answers when its data directory's filesystem has no room (or less than
// the reserve it keeps), and what receivers turn into RESOURCE_EXHAUSTED
// or 507 Insufficient Storage with Retry-After. Nothing of a refused write
// was acknowledged. errors.Is(err, ErrStorageFull) holds for it, for every
// *StorageFull and for the ENOSPC and EDQUOT errors of the OS.
var ErrStorageFull = errors.New("data dir full, retry later")

// StorageFull is a disk-full error that says which directory is full and
// how full, and when to come back.
type StorageFull struct {
	What       string        // the directory and its free space, for the client's message
	RetryAfter time.Duration // when to come back; 0: the receiver's default
	Err        error         // the write error that showed it, if one did
}

func (e *StorageFull) Error() string { return "data dir full: " + e.What }

// Is makes errors.Is(err, ErrStorageFull) hold.
func (e *StorageFull) Is(target error) bool { return target == ErrStorageFull }

// Unwrap is the write error that showed the disk full, if any.
func (e *StorageFull) Unwrap() error { return e.Err }

// IsStorageFull reports whether err means the disk is full: an
// ErrStorageFull, or the OS's ENOSPC (no space) or EDQUOT (quota) from a
// write.
func IsStorageFull(err error) bool {
	return errors.Is(err, ErrStorageFull) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
