package slo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/rules"

	"github.com/glassmesh/glassmesh/control/model"
)

// RulesSource is the source name of the SLO groups in the rules manager;
// /api/v1/rules lists them under the file "glassmesh:generated/slo".
const RulesSource = "slo"

// Rules is what the Manager needs of the rules manager (*ruler.Ruler).
type Rules interface {
	// SetGeneratedGroups replaces the groups of source; on error the
	// groups in effect stay.
	SetGeneratedGroups(source string, groups []rulefmt.RuleGroup) error
	// AlertingRules returns the alerting rules in effect.
	AlertingRules() []*rules.AlertingRule
}

// Manager keeps the rules manager's SLO groups in step with the mesh
// config and answers GET /api/slos from the series those rules record.
type Manager struct {
	rules  Rules
	query  rules.QueryFunc
	logger *slog.Logger
	now    func() time.Time

	updating sync.Mutex // serialises Update; guards groups
	groups   []rulefmt.RuleGroup
	mu       sync.Mutex // guards slos, engine
	slos     []*model.SLO
	engine   *Engine // budgets; nil without the incremental engine
}

// UseEngine makes Update keep e's SLOs in step and /api/slos show e's
// budgets.
func (mg *Manager) UseEngine(e *Engine) {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	mg.engine = e
	e.SetSLOs(mg.slos)
}

// NewManager returns a Manager that installs SLO rules into r and reads
// their series with query, an instant-query function such as
// (*metrics.Engine).QueryFunc(storage). It has no SLOs until Update.
func NewManager(r Rules, query rules.QueryFunc, logger *slog.Logger) (*Manager, error) {
	if r == nil || query == nil {
		return nil, errors.New("slo: rules and query are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{rules: r, query: query, logger: logger, now: time.Now}, nil
}

// Update generates the rule groups of m's SLOs (none when m is nil) and
// installs them, unless they are the groups in effect (a config push that
// only moved weights). On error the rules and SLOs in effect stay.
func (mg *Manager) Update(m *model.Mesh) error {
	mg.updating.Lock()
	defer mg.updating.Unlock()
	var slos []*model.SLO
	if m != nil {
		slos = slices.Clone(m.SLOs)
	}
	groups := Generate(slos)
	if mg.groups != nil && reflect.DeepEqual(groups, mg.groups) {
		mg.setSLOs(slos)
		return nil
	}
	if err := mg.rules.SetGeneratedGroups(RulesSource, groups); err != nil {
		return fmt.Errorf("slo rules: %w", err)
	}
	mg.groups = groups
	mg.setSLOs(slos)
	mg.logger.Debug("SLO rules updated", "slos", len(slos))
	return nil
}

func (mg *Manager) setSLOs(slos []*model.SLO) {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	mg.slos = slos
	if mg.engine != nil {
		mg.engine.SetSLOs(slos)
	}
}

// Status is the state of one SLO, as GET /api/slos shows it.
type Status struct {
	Namespace string  `json:"namespace"`
	Name      string  `json:"name"`
	Service   string  `json:"service"`
	Indicator string  `json:"indicator"` // availability, latency or ratio
	Objective float64 `json:"objective"` // percent
	Window    string  `json:"window"`    // like "30d"
	// SLI is the error ratio per window ("5m" ... "3d" and the SLO
	// window); windows without traffic are left out.
	SLI map[string]float64 `json:"sli"`
	// ErrorBudgetRemaining is the share of the window's budget left (1 =
	// untouched, below 0 = overspent); null without data.
	ErrorBudgetRemaining *float64 `json:"errorBudgetRemaining"`
	// BurnRates is SLI over the allowed error ratio, per window.
	BurnRates map[string]float64 `json:"burnRates"`
	// VersionBurnRates is each destination_version's own burn rate per
	// window ("5m" ... "6h"): what a canary's SLO gate judges.
	VersionBurnRates map[string]map[string]float64 `json:"versionBurnRates"`
	// Thresholds are the alerts' burn-rate thresholds, each with the two
	// windows that must both exceed it, scaled to the SLO's window.
	Thresholds []Threshold   `json:"thresholds"`
	Alerts     []AlertStatus `json:"alerts"`
	// Budget is the error budget from the incremental engine's rollups
	// (state, remaining, time to exhaustion); null before its first
	// round or without the engine.
	Budget *Budget `json:"budget"`
}

// Threshold is one window pair of a burn-rate alert.
type Threshold struct {
	Severity string  `json:"severity"` // page or ticket
	BurnRate float64 `json:"burnRate"`
	Long     string  `json:"long"`
	Short    string  `json:"short"`
}

// AlertStatus is one of an SLO's burn-rate alerts.
type AlertStatus struct {
	Name     string `json:"name"`
	Severity string `json:"severity"` // page or ticket
	State    string `json:"state"`    // inactive, pending, firing, or unknown before the first evaluation
}

// statusQuery selects every series Status reads, for all SLOs at once.
var statusQuery = fmt.Sprintf(`{__name__=~"%s.+|%s.+|%s"}`, SLIErrorMetric, SLIErrorByVersionMetric, PeriodBudgetRemainingMetric)

// Statuses returns the state of the SLOs in namespaces (all when none is
// given), ordered by namespace and name.
func (mg *Manager) Statuses(ctx context.Context, namespaces ...string) ([]Status, error) {
	mg.mu.Lock()
	slos, engine := mg.slos, mg.engine
	mg.mu.Unlock()
	if len(namespaces) > 0 {
		slos = slices.DeleteFunc(slices.Clone(slos), func(s *model.SLO) bool { return !slices.Contains(namespaces, s.Namespace) })
	}
	out := make([]Status, 0, len(slos))
	if len(slos) == 0 {
		return out, nil
	}
	vec, err := mg.query(ctx, statusQuery, mg.now())
	if err != nil {
		return nil, fmt.Errorf("slo status: %w", err)
	}
	byID := map[string][]labelsValue{}
	for _, s := range vec {
		if math.IsNaN(s.F) || math.IsInf(s.F, 0) {
			continue
		}
		id := s.Metric.Get(labelID)
		byID[id] = append(byID[id], labelsValue{s.Metric, s.F})
	}
	alerts := mg.alerts()
	for _, s := range slos {
		st := status(s, byID[ID(s)], alerts[ID(s)])
		if engine != nil {
			if b, ok := engine.Budget(ID(s)); ok {
				st.Budget = &b
			}
		}
		out = append(out, st)
	}
	return out, nil
}

type labelsValue struct {
	metric labels.Labels
	value  float64
}

func status(s *model.SLO, series []labelsValue, alerts []AlertStatus) Status {
	st := Status{
		Namespace: s.Namespace, Name: s.Name, Service: s.Spec.Service,
		Indicator: indicatorKind(s), Objective: s.Spec.Objective, Window: promDuration(sloWindow(s)),
		SLI: map[string]float64{}, BurnRates: map[string]float64{}, VersionBurnRates: map[string]map[string]float64{},
		Thresholds: thresholds(s), Alerts: alerts,
	}
	if st.Alerts == nil {
		st.Alerts = []AlertStatus{}
	}
	allowed := AllowedErrorRatio(s)
	for _, x := range series {
		switch name := x.metric.Get(labels.MetricName); {
		case name == PeriodBudgetRemainingMetric:
			v := x.value
			if st.ErrorBudgetRemaining == nil || v < *st.ErrorBudgetRemaining {
				st.ErrorBudgetRemaining = &v
			}
		case strings.HasPrefix(name, SLIErrorByVersionMetric):
			version, w := x.metric.Get("destination_version"), x.metric.Get(labelWindow)
			if version == "" || w == "" {
				continue
			}
			if st.VersionBurnRates[version] == nil {
				st.VersionBurnRates[version] = map[string]float64{}
			}
			if prev, ok := st.VersionBurnRates[version][w]; !ok || x.value/allowed > prev {
				st.VersionBurnRates[version][w] = x.value / allowed
			}
		case strings.HasPrefix(name, SLIErrorMetric):
			w := x.metric.Get(labelWindow)
			if prev, ok := st.SLI[w]; ok && prev >= x.value {
				continue // several replicas' recordings (a shared store): the worst
			}
			st.SLI[w] = x.value
			st.BurnRates[w] = x.value / allowed
		}
	}
	return st
}

// thresholds are s's alert window pairs with their burn rates.
func thresholds(s *model.SLO) []Threshold {
	period := sloWindow(s)
	out := make([]Threshold, 0, len(alertWindows))
	for _, w := range alertWindows {
		out = append(out, Threshold{Severity: w.severity, BurnRate: round12(burnFactor(period, w.budgetPercent, w.long)),
			Long: promDuration(w.long), Short: promDuration(w.short)})
	}
	return out
}

// alerts returns the SLO alerting rules in effect by sloth_id.
func (mg *Manager) alerts() map[string][]AlertStatus {
	out := map[string][]AlertStatus{}
	for _, r := range mg.rules.AlertingRules() {
		l := r.Labels()
		id := l.Get(labelID)
		if id == "" || r.Name() != AlertName {
			continue
		}
		out[id] = append(out[id], AlertStatus{Name: r.Name(), Severity: l.Get(labelSeverity), State: r.State().String()})
	}
	return out
}

func indicatorKind(s *model.SLO) string {
	switch in := s.Spec.Indicator; {
	case in.Latency != nil:
		return "latency"
	case in.Ratio != nil:
		return "ratio"
	default:
		return "availability"
	}
}

// Register serves GET /api/slos on mux.
func (mg *Manager) Register(mux *http.ServeMux) {
	mux.Handle("GET /api/slos", mg)
}

// ServeHTTP answers GET /api/slos: {"slos": [Status...]}. The namespace
// parameter (repeated, or comma-separated) keeps those namespaces' SLOs.
func (mg *Manager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var namespaces []string
	for _, v := range r.URL.Query()["namespace"] {
		for ns := range strings.SplitSeq(v, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				namespaces = append(namespaces, ns)
			}
		}
	}
	statuses, err := mg.Statuses(r.Context(), namespaces...)
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		mg.logger.Warn("GET /api/slos", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string][]Status{"slos": statuses})
}
