package slo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/glassmesh/glassmesh/control/model"
)

// Report periods.
const (
	PeriodRolling = "rolling" // the SLO's window, ending now
	PeriodMonth   = "month"   // a calendar month (UTC), to date for the current one
)

// maxBurnDownPoints bounds a report's burn-down series: enough for a
// chart, whatever the period.
const maxBurnDownPoints = 720

// Report is an SLO's budget over a period with its burn-down series.
type Report struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Service   string    `json:"service"`
	Objective float64   `json:"objective"` // percent
	Period    string    `json:"period"`    // rolling or month
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	// State, Remaining, Errors, Events: the budget over [Start, End]
	// (see Budget).
	State     string   `json:"state"`
	Remaining *float64 `json:"remaining"`
	Errors    float64  `json:"errors"`
	Events    float64  `json:"events"`
	// Since is when the SLO's rollups begin; Coverage the share of the
	// period they cover.
	Since    *time.Time `json:"since"`
	Coverage float64    `json:"coverage"`
	// Step is the spacing of BurnDown in seconds.
	Step     float64         `json:"step"`
	BurnDown []BurnDownPoint `json:"burnDown"`
	// PolicyActions are the SLO policies' actions in the period; none
	// are recorded by the engine itself (SLOPolicy fills them).
	PolicyActions []json.RawMessage `json:"policyActions"`
}

// BurnDownPoint is the budget left at At, counted from the period's
// start: what a burn-down chart plots.
type BurnDownPoint struct {
	At        time.Time `json:"at"`
	Remaining *float64  `json:"remaining"` // null before the period's first event
	Errors    float64   `json:"errors"`
	Events    float64   `json:"events"`
}

// periodBounds returns the period's start and end at now. month, for
// PeriodMonth, is "2006-01" or empty for the current month.
func periodBounds(s *model.SLO, period, month string, now time.Time) (time.Time, time.Time, error) {
	switch period {
	case PeriodRolling, "":
		return now.Add(-sloWindow(s)), now, nil
	case PeriodMonth:
		now = now.UTC()
		start := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
		if month != "" {
			m, err := time.Parse("2006-01", month)
			if err != nil {
				return time.Time{}, time.Time{}, fmt.Errorf("month: want YYYY-MM, got %q", month)
			}
			start = m
		}
		end := start.AddDate(0, 1, 0)
		if end.After(now) {
			end = now
		}
		if !end.After(start) {
			return time.Time{}, time.Time{}, fmt.Errorf("month %s is in the future", month)
		}
		return start, end, nil
	default:
		return time.Time{}, time.Time{}, fmt.Errorf("period: want %s or %s, got %q", PeriodMonth, PeriodRolling, period)
	}
}

// Report returns s's report for period (see periodBounds) at now, from
// its rollups: one read of its two series over the period.
func (e *Engine) Report(ctx context.Context, s *model.SLO, period, month string, now time.Time) (Report, error) {
	now = now.Truncate(e.cfg.Step)
	start, end, err := periodBounds(s, period, month, now)
	if err != nil {
		return Report{}, inputError{err}
	}
	if period == "" {
		period = PeriodRolling
	}
	r := Report{Namespace: s.Namespace, Name: s.Name, Service: s.Spec.Service, Objective: s.Spec.Objective,
		Period: period, Start: start, End: end, State: StateUnknown, BurnDown: []BurnDownPoint{}, PolicyActions: []json.RawMessage{}}
	pts, err := e.hist.samples(ctx, ID(s), start.Add(-2*e.cfg.Step), end)
	if err != nil {
		return Report{}, err
	}
	first, err := e.hist.firstIn(ctx, start.Add(-2*e.cfg.Step), end, map[string]bool{ID(s): true})
	if err != nil {
		return Report{}, err
	}
	if p, ok := first[seriesKey{ID(s), eventTotal}]; ok && p.t.After(start.Add(-2*e.cfg.Step)) {
		since := p.t
		r.Since = &since
	}
	r.Coverage = coverage(r.Since, start, end)
	errs, total := counterAt(pts[eventError]), counterAt(pts[eventTotal])
	base := counts{errors: errs(start), total: total(start)}
	allowed := AllowedErrorRatio(s)
	step := burnDownStep(end.Sub(start), e.cfg.Step)
	r.Step = step.Seconds()
	for at := start.Add(step); ; at = at.Add(step) {
		if at.After(end) {
			at = end // the last point is the period's end: the report's own values
		}
		p := BurnDownPoint{At: at, Errors: errs(at) - base.errors, Events: total(at) - base.total}
		p.Remaining = remainingOf(p.Errors, p.Events, allowed)
		r.BurnDown = append(r.BurnDown, p)
		if !at.Before(end) {
			break
		}
	}
	r.Errors, r.Events = errs(end)-base.errors, total(end)-base.total
	if r.Remaining = remainingOf(r.Errors, r.Events, allowed); r.Remaining != nil {
		r.State = BudgetState(*r.Remaining)
	}
	return r, nil
}

// counterAt returns the counter's value at a time: its last point at or
// before it, 0 before its first (the counters start at 0).
func counterAt(pts []point) func(time.Time) float64 {
	i := 0
	var v float64
	// Calls come in time order, so one pass serves the whole series.
	return func(t time.Time) float64 {
		for i < len(pts) && !pts[i].t.After(t) {
			v = pts[i].v
			i++
		}
		return v
	}
}

func remainingOf(errs, total, allowed float64) *float64 {
	if total <= 0 || allowed <= 0 {
		return nil
	}
	r := 1 - (errs/total)/allowed
	return &r
}

func coverage(since *time.Time, start, end time.Time) float64 {
	if since == nil {
		return 1
	}
	return max(0, min(1, end.Sub(*since).Seconds()/end.Sub(start).Seconds()))
}

// burnDownStep spaces a period's burn-down points: whole rollup steps,
// at most maxBurnDownPoints of them (hourly for 30 days).
func burnDownStep(span, step time.Duration) time.Duration {
	n := (span + step*maxBurnDownPoints - 1) / (step * maxBurnDownPoints)
	return max(1, n) * step
}

// RegisterReports serves GET /api/slos/{namespace}/{name}/report on mux.
func (e *Engine) RegisterReports(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/slos/{namespace}/{name}/report", e.serveReport)
}

// serveReport answers GET /api/slos/{namespace}/{name}/report?period=
// month|rolling[&month=YYYY-MM].
func (e *Engine) serveReport(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	s := e.slo(r.PathValue("namespace"), r.PathValue("name"))
	if s == nil {
		writeError(w, http.StatusNotFound, fmt.Errorf("no SLO %s/%s", r.PathValue("namespace"), r.PathValue("name")))
		return
	}
	q := r.URL.Query()
	rep, err := e.Report(r.Context(), s, q.Get("period"), q.Get("month"), time.Now())
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, context.Canceled) || !isInputError(err) {
			code = http.StatusServiceUnavailable
		}
		writeError(w, code, err)
		return
	}
	_ = json.NewEncoder(w).Encode(rep)
}

// isInputError tells a bad parameter from a storage failure.
func isInputError(err error) bool {
	var ie inputError
	return errors.As(err, &ie)
}

type inputError struct{ error }

func writeError(w http.ResponseWriter, code int, err error) {
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}
