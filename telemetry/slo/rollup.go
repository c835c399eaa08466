package slo

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"

	"github.com/glassmesh/glassmesh/control/model"
)

// EventsMetric is the rollup series of the incremental engine: per SLO and
// event kind ("error" or "total"), the cumulative number of events counted
// since the SLO's first rollup. It is a counter written once per step, so
// the events of any window are two point lookups, E(now) - E(now-window),
// whatever the window's length.
const EventsMetric = "slo:sli_events:total"

// Values of the event label of EventsMetric.
const (
	eventLabel = "event"
	eventError = "error"
	eventTotal = "total"
)

// Labels the batched step queries group by: one service of the mesh.
const (
	byService  = "destination_service_namespace, destination_service_name"
	anyService = `destination_service_name!=""`
)

// counts are the error and total events of one SLO over one span.
type counts struct{ errors, total float64 }

// stepCounts returns the events of each SLO (by ID) over (to-span, to],
// from the raw request series through query. Availability and latency
// SLOs are counted with one query per kind for all SLOs, grouped by
// service, so a step costs a handful of queries whatever their number;
// ratio SLOs are the user's own queries, two each. An SLO absent from the
// answer had no events.
func stepCounts(ctx context.Context, query rules.QueryFunc, slos []*model.SLO, to time.Time, span time.Duration) (map[string]counts, error) {
	win, secs := promDuration(span), span.Seconds()
	out := make(map[string]counts, len(slos))
	var avail, lat []*model.SLO
	for _, s := range slos {
		switch in := s.Spec.Indicator; {
		case in.Ratio != nil:
			c, err := ratioCounts(ctx, query, s, win, secs, to)
			if err != nil {
				return nil, err
			}
			out[ID(s)] = c
		case in.Latency != nil:
			lat = append(lat, s)
		default:
			avail = append(avail, s)
		}
	}
	if len(avail) > 0 {
		if err := availabilityCounts(ctx, query, avail, win, secs, to, out); err != nil {
			return nil, err
		}
	}
	if len(lat) > 0 {
		if err := latencyCounts(ctx, query, lat, win, secs, to, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// availabilityCounts counts every availability SLO with two queries: all
// requests and failed requests per service, each counted once by the
// reporter rule, exactly as the rules' SLI selects them.
func availabilityCounts(ctx context.Context, query rules.QueryFunc, slos []*model.SLO, win string, secs float64, to time.Time, out map[string]counts) error {
	total := perService(increaseOnce(requestsTotal, anyService, []string{""}, win), "", 1)
	bad := perService(increaseOnce(requestsTotal, anyService, []string{
		`response_code=~"5.."`,
		fmt.Sprintf(`grpc_response_status=~"%s"`, strings.Join(model.ErrorGRPCStatuses(), "|")),
	}, win), "", 1)
	totals, err := queryByService(ctx, query, total, to, "")
	if err != nil {
		return err
	}
	errs, err := queryByService(ctx, query, bad, to, "")
	if err != nil {
		return err
	}
	for _, s := range slos {
		k := serviceKey(s.Namespace, s.Spec.Service)
		out[ID(s)] = counts{errors: errs[k], total: totals[k]}
	}
	return nil
}

// latencyCounts counts every latency SLO with one query: per service, the
// +Inf bucket (all requests) and the bucket of each threshold in use.
func latencyCounts(ctx context.Context, query rules.QueryFunc, slos []*model.SLO, win string, secs float64, to time.Time, out map[string]counts) error {
	les := []string{regexp.QuoteMeta("+Inf")}
	for _, s := range slos {
		le := regexp.QuoteMeta(labels.FormatOpenMetricsFloat(s.Spec.Indicator.Latency.ThresholdMs))
		if !slices.Contains(les, le) {
			les = append(les, le)
		}
	}
	sel := fmt.Sprintf("%s,le=~%q", anyService, strings.Join(les, "|"))
	byLe, err := queryByService(ctx, query, perService(increaseOnce(durationBuckets, sel, []string{""}, win), "le", 1), to, "le")
	if err != nil {
		return err
	}
	for _, s := range slos {
		k := serviceKey(s.Namespace, s.Spec.Service)
		total := byLe[k+"|+Inf"]
		fast := byLe[k+"|"+labels.FormatOpenMetricsFloat(s.Spec.Indicator.Latency.ThresholdMs)]
		// As in the rules: buckets of one label set may extrapolate
		// differently, so a few "fast" requests can exceed the total.
		out[ID(s)] = counts{errors: max(total-fast, 0), total: total}
	}
	return nil
}

// ratioCounts runs a ratio SLO's own queries over win; they give rates,
// so events are rate × seconds.
func ratioCounts(ctx context.Context, query rules.QueryFunc, s *model.SLO, win string, secs float64, to time.Time) (counts, error) {
	errs, total := sliParts(s, win, "", "", nil)
	var c counts
	for _, q := range []struct {
		expr string
		dst  *float64
	}{{errs, &c.errors}, {total, &c.total}} {
		v, err := query(ctx, q.expr, to)
		if err != nil {
			return counts{}, fmt.Errorf("SLO %s/%s: %w", s.Namespace, s.Name, err)
		}
		if len(v) > 0 && finite(v[0].F) {
			*q.dst = v[0].F * secs
		}
	}
	return c, nil
}

// perService sums the union of rates expr by service (and extra, if
// given) and turns the rates into events over secs.
func perService(expr, extra string, secs float64) string {
	by := byService
	if extra != "" {
		by += ", " + extra
	}
	return fmt.Sprintf("sum by (%s) (\n  %s\n) * %s", by, strings.ReplaceAll(expr, "\n", "\n  "), formatFloat(secs))
}

// queryByService runs q at t and keys its samples by service (and the
// value of extra after a "|").
func queryByService(ctx context.Context, query rules.QueryFunc, q string, t time.Time, extra string) (map[string]float64, error) {
	v, err := query(ctx, q, t)
	if err != nil {
		return nil, err
	}
	out := make(map[string]float64, len(v))
	for _, s := range v {
		if !finite(s.F) {
			continue
		}
		k := serviceKey(s.Metric.Get("destination_service_namespace"), s.Metric.Get("destination_service_name"))
		if extra != "" {
			k += "|" + s.Metric.Get(extra)
		}
		out[k] += s.F
	}
	return out, nil
}

func serviceKey(namespace, name string) string { return namespace + "/" + name }

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// eventLabels are the labels of s's rollup series of one event kind.
func eventLabels(s *model.SLO, event string) labels.Labels {
	b := labels.NewScratchBuilder(6)
	b.Add(labels.MetricName, EventsMetric)
	b.Add(eventLabel, event)
	b.Add(labelNamespace, s.Namespace)
	b.Add(labelID, ID(s))
	b.Add(labelService, s.Spec.Service)
	b.Add(labelSLO, s.Name)
	b.Sort()
	return b.Labels()
}

// increaseOnce is rateOnce's events: the per-series increase over window,
// anchored (Prometheus's extended range selector: from the last sample at
// or before the window's start to the last in it, without extrapolation),
// so that contiguous steps add up to exactly what the counters grew by.
// An extrapolated rate times the step counts a burst in a short step up
// to twice.
func increaseOnce(metric, sel string, variants []string, window string) string {
	var terms []string
	for _, reporter := range onceSelectors {
		for _, v := range variants {
			m := reporter + "," + sel
			if v != "" {
				m += "," + v
			}
			terms = append(terms, fmt.Sprintf("increase(%s{%s}[%s] anchored)", metric, m, window))
		}
	}
	return strings.Join(terms, "\nor ")
}
