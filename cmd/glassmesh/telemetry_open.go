package main

import (
	"context"
	"time"

	"github.com/oklog/run"

	"github.com/glassmesh/glassmesh/telemetry/metrics"
	"github.com/glassmesh/glassmesh/tracing/forward"
	"github.com/glassmesh/glassmesh/tracing/store/durable"
)

// metricsOpenConfig is what is built on the TSDB once it has opened.
type metricsOpenConfig struct {
	remote metrics.RemoteWriteConfig
}

// tracesOpenConfig is the trace store and what is built on it once open.
type tracesOpenConfig struct {
	store   durable.Config
	forward forward.Config
}

// openMetrics opens the TSDB (replaying its WAL: minutes at a million
// series after a kill -9) while everything else serves, builds what must
// see every append before the first one (remote-write hooks the TSDB's
// write notifications), lets reads and appends through, adds the stored
// istio_* counters to what the aggregator counted meanwhile, and runs
// what lives on the TSDB until ctx ends. A stop asked during the replay waits for it: the TSDB
// cannot be interrupted mid-replay, and closing it then keeps its state.
//
// It starts once the trace store is open. Both replays are CPU-bound and
// the TSDB's already uses every core, so running them side by side would
// end the TSDB's no sooner and the trace store's several times later:
// the shorter job first gives span ingest back in seconds for the same
// metrics figure.
func (t *telemetry) openMetrics(ctx context.Context) error {
	select {
	case <-t.spanStore.Ready():
	case <-ctx.Done():
		return nil
	}
	logger := t.logger.With("component", "metrics")
	began := time.Now()
	st, err := t.metrics.Open()
	if err != nil {
		return err
	}
	t.storage = st
	logger.Info("metrics storage opened", "took", time.Since(began))
	if ctx.Err() != nil {
		return nil
	}
	if t.remote, err = metrics.NewRemoteWrite(t.metricsCf.remote, st.DB(), logger, t.reg); err != nil {
		return err
	}
	t.metrics.Set(st)
	if err := t.agg.Restore(ctx); err != nil {
		return err
	}
	logger.Info("metrics ready", "sinceOpen", time.Since(began))
	return runAll(ctx, t.agg.Run, t.rules.Run, t.remote.Run, st.Run)
}

// openTraces opens the durable trace store (its blocks, and a replay of
// its head WAL) while everything else serves, registers the forwarder
// before the store runs (so that no WAL segment a target needs goes),
// then lets writes and reads through and runs both until ctx ends.
func (t *telemetry) openTraces(ctx context.Context) error {
	logger := t.logger.With("component", "traces")
	began := time.Now()
	d, err := durable.Open(t.tracesCf.store, logger, t.reg)
	if err != nil {
		return err
	}
	t.traces = d
	logger.Info("trace store opened", "took", time.Since(began))
	if ctx.Err() != nil {
		return nil
	}
	if t.forward, err = forward.New(t.tracesCf.forward, d, logger, t.reg); err != nil {
		return err
	}
	t.spanStore.Set(d)
	return runAll(ctx, d.Run, t.forward.Run)
}

// runAll runs each function with ctx until all have returned; the first
// to fail stops the others.
func runAll(ctx context.Context, fns ...func(context.Context) error) error {
	var g run.Group
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, fn := range fns {
		g.Add(func() error { return fn(ctx) }, func(error) { cancel() })
	}
	return g.Run()
}
