package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/alecthomas/units"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/glassmesh/glassmesh/telemetry/admission"
)

// bytesFlag is a byte size flag in Prometheus's spelling (512MiB, 2GB,
// both base 2; 0).
type bytesFlag units.Base2Bytes

func (b *bytesFlag) String() string { return units.Base2Bytes(*b).String() }
func (b *bytesFlag) Type() string   { return "bytes" }

func (b *bytesFlag) Set(s string) error {
	n, err := units.ParseBase2Bytes(s)
	if err != nil {
		return fmt.Errorf("%q is no size like 512MiB or 2GiB: %w", s, err)
	}
	if n < 0 {
		return fmt.Errorf("%q: must not be negative", s)
	}
	*b = bytesFlag(n)
	return nil
}

// newMemoryBudget builds the ingest paths' memory budget from
// --memory.limit and gives the Go runtime its soft limit, unless
// GOMEMLIMIT already set one (the operator's word wins). nil when the
// limit is 0.
func newMemoryBudget(limit int64, logger *slog.Logger, reg prometheus.Registerer) (*admission.Budget, error) {
	b, err := admission.New(admission.Config{Limit: limit}, reg)
	if err != nil || b == nil {
		return nil, err
	}
	soft := admission.SoftLimit(limit)
	if env := os.Getenv("GOMEMLIMIT"); env != "" {
		logger.Info("GOMEMLIMIT is set: the Go runtime keeps it, not --memory.limit's share", "GOMEMLIMIT", env, "memoryLimit", limit)
	} else {
		debug.SetMemoryLimit(soft)
	}
	logger.Info("memory budget", "limit", units.Base2Bytes(limit).String(), "goSoftLimit", units.Base2Bytes(debug.SetMemoryLimit(-1)).String())
	return b, nil
}
