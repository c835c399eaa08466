package slo

import (
	"time"

	"github.com/glassmesh/glassmesh/control/model"
)

// Budget states and their thresholds, on the share of the error budget
// left: exhausted at or below ExhaustedAtOrBelow (nothing left, or
// overspent), tight below TightBelow (under a quarter left: the point at
// which error-budget policies usually slow releases down), healthy
// otherwise. Unknown means no events in the window yet.
const (
	StateHealthy   = "healthy"
	StateTight     = "tight"
	StateExhausted = "exhausted"
	StateUnknown   = "unknown"

	TightBelow         = 0.25
	ExhaustedAtOrBelow = 0.0
)

// BurnWindow is the window of the "current" burn rate that time to
// exhaustion extrapolates: long enough that a minute's blip does not
// swing it, short enough to follow an incident.
const BurnWindow = time.Hour

// Budget is an SLO's error budget over its window, from the rollups.
type Budget struct {
	// State is healthy, tight, exhausted or unknown (see the constants).
	State string `json:"state"`
	// Remaining is the share of the budget left: 1 - (errors/events) /
	// (1 - objective); 1 untouched, below 0 overspent; null without
	// events.
	Remaining *float64 `json:"remaining"`
	// Errors and Events are the bad and all events counted in the window.
	Errors float64 `json:"errors"`
	Events float64 `json:"events"`
	// BurnRate is the burn over BurnWindow (1h); null without events.
	BurnRate *float64 `json:"burnRate"`
	// TimeToExhaustionSeconds is how long the budget left lasts at
	// BurnRate (remaining × window / burn rate); 0 when exhausted, null
	// when nothing burns. ExhaustsAt is the same as a time.
	TimeToExhaustionSeconds *float64   `json:"timeToExhaustionSeconds"`
	ExhaustsAt              *time.Time `json:"exhaustsAt"`
	// Since is when the rollups of this SLO begin (its first events seen
	// by this installation); Coverage is the share of the window they
	// cover (below 1 on an installation younger than the window).
	Since    *time.Time `json:"since"`
	Coverage float64    `json:"coverage"`
	// SLI is the error ratio per window ("5m" ... "3d" and the SLO's
	// window) from the rollups; windows without events are left out.
	SLI map[string]float64 `json:"sli"`
	// At is the time of the evaluation round.
	At time.Time `json:"at"`
}

// BudgetState names the state of a budget with remaining left.
func BudgetState(remaining float64) string {
	switch {
	case remaining <= ExhaustedAtOrBelow:
		return StateExhausted
	case remaining < TightBelow:
		return StateTight
	default:
		return StateHealthy
	}
}

// windowCounts are the events of one SLO per window (promDuration keys).
type windowCounts map[string]counts

// budgetOf computes s's budget at t from its per-window events; since is
// when its rollups begin (zero when none).
func budgetOf(s *model.SLO, wc windowCounts, since, t time.Time) Budget {
	period := sloWindow(s)
	allowed := AllowedErrorRatio(s)
	b := Budget{State: StateUnknown, SLI: map[string]float64{}, At: t}
	for w, c := range wc {
		if c.total > 0 {
			b.SLI[w] = c.errors / c.total
		}
	}
	if !since.IsZero() {
		b.Since = &since
		b.Coverage = min(1, t.Sub(since).Seconds()/period.Seconds())
	}
	pc := wc[promDuration(period)]
	b.Errors, b.Events = pc.errors, pc.total
	if pc.total <= 0 || allowed <= 0 {
		return b
	}
	remaining := 1 - (pc.errors/pc.total)/allowed
	b.Remaining = &remaining
	b.State = BudgetState(remaining)
	if sli, ok := b.SLI[promDuration(BurnWindow)]; ok {
		burn := sli / allowed
		b.BurnRate = &burn
		b.TimeToExhaustionSeconds, b.ExhaustsAt = exhaustion(remaining, burn, period, t)
	}
	return b
}

// exhaustion is how long remaining lasts at burn: a burn rate of 1 spends
// the whole budget in one window, so the share left lasts remaining ×
// window / burn (assuming the window's traffic keeps its rate).
func exhaustion(remaining, burn float64, period time.Duration, t time.Time) (*float64, *time.Time) {
	if remaining <= ExhaustedAtOrBelow {
		zero := 0.0
		return &zero, &t
	}
	if burn <= 0 {
		return nil, nil
	}
	secs := remaining * period.Seconds() / burn
	at := t.Add(time.Duration(secs * float64(time.Second))).Truncate(time.Second)
	return &secs, &at
}
