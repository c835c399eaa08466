package demo

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TrafficConfig configures the traffic generator.
type TrafficConfig struct {
	RPS         float64       // requests per second to productpage
	TesterShare float64       // share of requests sent with x-user: tester
	Report      time.Duration // how often to log what the traffic saw
	ReportAddr  string        // glassmesh's --grpc-addr, where calls are reported
	Trace       TraceConfig   // where spans go; each call is the root of a trace
	Secure      bool          // dial with xDS credentials (mTLS when glassmesh says so)
}

// RunTraffic calls productpage through glassmesh at a steady rate until ctx
// ends, and logs which reviews version answered, so a weight edit shows up.
func RunTraffic(ctx context.Context, cfg TrafficConfig, logger *slog.Logger) error {
	me := App{Service: TrafficGenerator, Version: "v1"}
	rep, err := reporter(me, cfg.ReportAddr, logger)
	if err != nil {
		return err
	}
	if rep != nil {
		defer rep.Close()
	}
	tr, err := newTracing(ctx, me, cfg.Trace, logger)
	if err != nil {
		return err
	}
	defer tr.shutdown()
	creds, err := transportCredentials(cfg.Secure)
	if err != nil {
		return err
	}
	cc, err := grpc.NewClient(Target("productpage"), clientOptions(creds, rep, tr)...)
	if err != nil {
		return err
	}
	defer cc.Close()
	if cfg.RPS <= 0 {
		cfg.RPS = 20
	}
	if cfg.Report <= 0 {
		cfg.Report = 10 * time.Second
	}
	var (
		mu     sync.Mutex
		stats  = map[string]int{}
		wg     sync.WaitGroup
		n      int
		tick   = time.NewTicker(time.Duration(float64(time.Second) / cfg.RPS))
		report = time.NewTicker(cfg.Report)
	)
	defer tick.Stop()
	defer report.Stop()
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-report.C:
			mu.Lock()
			logTraffic(logger, stats)
			stats = map[string]int{}
			mu.Unlock()
		case <-tick.C:
			n++
			tester := cfg.TesterShare > 0 && float64(n%1000) < cfg.TesterShare*1000
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := callOnce(ctx, cc, tester)
				mu.Lock()
				stats[key]++
				mu.Unlock()
			}()
		}
	}
}

func callOnce(ctx context.Context, cc *grpc.ClientConn, tester bool) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if tester {
		ctx = metadata.AppendToOutgoingContext(ctx, "x-user", "tester")
	}
	out, err := Call(ctx, cc, "productpage", nil)
	if err != nil {
		return "error " + status.Code(err).String()
	}
	return "reviews-" + out.Fields["reviewsVersion"].GetStringValue()
}

func logTraffic(logger *slog.Logger, stats map[string]int) {
	keys := make([]string, 0, len(stats))
	total := 0
	for k, v := range stats {
		keys = append(keys, k)
		total += v
	}
	sort.Strings(keys)
	attrs := []any{"requests", total}
	for _, k := range keys {
		attrs = append(attrs, k, stats[k])
	}
	logger.Info("traffic", attrs...)
}
