package xds

import (
	"context"
	"fmt"
	"log/slog"

	gcplog "github.com/envoyproxy/go-control-plane/pkg/log"
)

// slogAdapter lets go-control-plane log through slog. Its Infof reports every
// watch opened and answered, far too often for Info, so Debugf and Infof both
// go to Debug; warnings and errors keep their levels.
type slogAdapter struct {
	l *slog.Logger
}

var _ gcplog.Logger = slogAdapter{}

func (a slogAdapter) logf(level slog.Level, format string, args []any) {
	// Check first: the cache logs while holding its lock, so formatting
	// a message nobody reads would slow every push.
	if !a.l.Enabled(context.Background(), level) {
		return
	}
	a.l.Log(context.Background(), level, fmt.Sprintf(format, args...), "component", "go-control-plane")
}

// Debugf logs at Debug.
func (a slogAdapter) Debugf(format string, args ...any) { a.logf(slog.LevelDebug, format, args) }

// Infof logs at Debug: go-control-plane's Info is per watch.
func (a slogAdapter) Infof(format string, args ...any) { a.logf(slog.LevelDebug, format, args) }

// Warnf logs at Warn.
func (a slogAdapter) Warnf(format string, args ...any) { a.logf(slog.LevelWarn, format, args) }

// Errorf logs at Error.
func (a slogAdapter) Errorf(format string, args ...any) { a.logf(slog.LevelError, format, args) }
