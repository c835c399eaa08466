// Package pipelinetest has what tests around the pipeline share: a
// RequestConsumer that records, and the 4-service test mesh.
package pipelinetest

import (
	"context"
	_ "embed"
	"sync"
	"testing"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

// Recorder is a record.RequestConsumer that keeps every Request it is
// given, or refuses them all with Err when it is set.
type Recorder struct {
	mu   sync.Mutex
	reqs []record.Request
	err  error
}

// ConsumeRequests records reqs (copied), or returns the error set with Fail.
func (r *Recorder) ConsumeRequests(_ context.Context, reqs []record.Request) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.reqs = append(r.reqs, reqs...)
	return nil
}

// Fail makes ConsumeRequests return err from now on (nil: record again).
func (r *Recorder) Fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

// Take returns the Requests recorded so far and forgets them.
func (r *Recorder) Take() []record.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reqs
	r.reqs = nil
	return out
}

// Len is how many Requests are recorded.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

//go:embed testdata/mesh.yaml
var meshYAML []byte

// Mesh is a bookinfo-like mesh: services productpage, reviews, ratings
// (default) and details (shop); reviews-v1 and reviews-v2 share a service
// account; ratings-v1 and details-v1 share 127.0.0.1, like proxyless apps
// on one machine.
func Mesh(tb testing.TB) *model.Mesh {
	tb.Helper()
	objs, diags := model.Parse("pipelinetest/mesh.yaml", meshYAML)
	mesh, errs, _ := model.Validate(objs)
	if len(diags)+len(errs) > 0 {
		tb.Fatalf("test mesh: %v %v", diags, errs)
	}
	return mesh
}
