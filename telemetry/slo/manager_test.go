package slo

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/telemetry/metrics"
	"github.com/glassmesh/glassmesh/telemetry/metrics/ruler"
)

// newRules runs a real rules manager over e's storage, evaluating every
// second, until the test ends.
func (e *env) newRules(t *testing.T) *ruler.Ruler {
	t.Helper()
	r, err := ruler.New(ruler.Config{Interval: time.Second}, metrics.BackendFromDB(e.st.DB()), e.eng, slog.New(slog.DiscardHandler), e.reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("rules: %v", err)
		}
	})
	return r
}

type slosAnswer struct {
	SLOs []struct {
		Namespace            string                        `json:"namespace"`
		Name                 string                        `json:"name"`
		Service              string                        `json:"service"`
		Objective            float64                       `json:"objective"`
		Window               string                        `json:"window"`
		SLI                  map[string]float64            `json:"sli"`
		ErrorBudgetRemaining *float64                      `json:"errorBudgetRemaining"`
		BurnRates            map[string]float64            `json:"burnRates"`
		VersionBurnRates     map[string]map[string]float64 `json:"versionBurnRates"`
		Thresholds           []Threshold                   `json:"thresholds"`
		Alerts               []AlertStatus                 `json:"alerts"`
	} `json:"slos"`
}

func getSLOs(t *testing.T, srv *httptest.Server, query string) slosAnswer {
	t.Helper()
	resp, err := http.Get(srv.URL + "/api/slos" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/slos%s: %s", query, resp.Status)
	}
	var a slosAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatal(err)
	}
	return a
}

// evaluated reports whether every alert of a has been evaluated.
func evaluated(a slosAnswer) bool {
	for _, s := range a.SLOs {
		for _, al := range s.Alerts {
			if al.State == "unknown" {
				return false
			}
		}
	}
	return true
}

func TestManagerServesSLOs(t *testing.T) {
	e := newEnv(t)
	e.appendCounters(t, time.Now(),
		counter{`istio_requests_total{reporter="source",source_workload="productpage-v1",` + reviews + `,destination_version="v1",response_code="200"}`, 9},
		counter{`istio_requests_total{reporter="source",source_workload="productpage-v1",` + reviews + `,destination_version="v1",response_code="503"}`, 1},
	)
	r := e.newRules(t)
	mg, err := NewManager(r, e.eng.QueryFunc(e.st.Queryable()), nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mg.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	avail := testSLOs()[0]
	quiet := testSLO("ratings-availability", 99, 0, model.Indicator{Availability: &model.AvailabilityIndicator{}})
	quiet.Namespace, quiet.Spec.Service = "shop", "ratings"
	if err := mg.Update(model.NewMesh(model.Objects{SLOs: []*model.SLO{quiet, avail}})); err != nil {
		t.Fatal(err)
	}

	t.Run("a burning SLO shows its SLIs, budget, burn rates and firing alerts", func(t *testing.T) {
		var a slosAnswer
		deadline := time.Now().Add(15 * time.Second)
		for {
			a = getSLOs(t, srv, "")
			if len(a.SLOs) == 2 && a.SLOs[0].ErrorBudgetRemaining != nil && len(a.SLOs[0].Alerts) == 2 &&
				a.SLOs[0].Alerts[0].State == "firing" && a.SLOs[0].Alerts[1].State == "firing" && evaluated(a) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no firing SLO within 15s: %+v", a)
			}
			time.Sleep(200 * time.Millisecond)
		}
		s := a.SLOs[0]
		if s.Namespace != "default" || s.Name != "reviews-availability" || s.Service != "reviews" || s.Objective != 99.9 || s.Window != "30d" {
			t.Errorf("identity: %+v", s)
		}
		for _, w := range []string{"5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"} {
			if !near(s.SLI[w], 0.1) || !near(s.BurnRates[w], 100) {
				t.Errorf("window %s: SLI %v burn rate %v, want 0.1 and 100", w, s.SLI[w], s.BurnRates[w])
			}
		}
		// What a canary's gate judges: the version's own burn.
		for _, w := range []string{"5m", "30m", "1h", "2h", "6h"} {
			if !near(s.VersionBurnRates["v1"][w], 100) {
				t.Errorf("v1's burn rate over %s = %v, want 100 (%v)", w, s.VersionBurnRates["v1"][w], s.VersionBurnRates)
			}
		}
		wantT := []Threshold{{"page", 14.4, "1h", "5m"}, {"page", 6, "6h", "30m"}, {"ticket", 3, "1d", "2h"}, {"ticket", 1, "3d", "6h"}}
		if !slices.Equal(s.Thresholds, wantT) {
			t.Errorf("thresholds = %+v, want %+v", s.Thresholds, wantT)
		}
		if !near(*s.ErrorBudgetRemaining, -99) {
			t.Errorf("errorBudgetRemaining = %v, want -99", *s.ErrorBudgetRemaining)
		}
		want := []AlertStatus{{AlertName, "page", "firing"}, {AlertName, "ticket", "firing"}}
		if len(s.Alerts) != 2 || s.Alerts[0] != want[0] || s.Alerts[1] != want[1] {
			t.Errorf("alerts = %+v, want %+v", s.Alerts, want)
		}
	})
	t.Run("an SLO without traffic has no SLI and no budget figure, and does not alert", func(t *testing.T) {
		s := getSLOs(t, srv, "").SLOs[1]
		if s.Name != "ratings-availability" || len(s.SLI) != 0 || len(s.BurnRates) != 0 || s.ErrorBudgetRemaining != nil {
			t.Errorf("got %+v", s)
		}
		for _, a := range s.Alerts {
			if a.State != "inactive" {
				t.Errorf("alert %+v", a)
			}
		}
	})
	t.Run("namespace filters", func(t *testing.T) {
		a := getSLOs(t, srv, "?namespace=shop")
		if len(a.SLOs) != 1 || a.SLOs[0].Name != "ratings-availability" {
			t.Errorf("?namespace=shop: %+v", a)
		}
		if a := getSLOs(t, srv, "?namespace=shop,default"); len(a.SLOs) != 2 {
			t.Errorf("?namespace=shop,default: %+v", a)
		}
	})
	t.Run("an update without SLOs removes their rules", func(t *testing.T) {
		if err := mg.Update(nil); err != nil {
			t.Fatal(err)
		}
		if a := getSLOs(t, srv, ""); len(a.SLOs) != 0 {
			t.Errorf("got %+v", a)
		}
		if n := len(r.AlertingRules()); n != 0 {
			t.Errorf("%d alerting rules left", n)
		}
	})
}

// With a shared store, Status reads the store's series when it has them
// (several replicas' recordings: the worst counts), the local TSDB's when
// it has none, and the store's error when it fails.
func TestStatusesPreferTheStore(t *testing.T) {
	e := newEnv(t)
	r := e.newRules(t)
	avail := testSLOs()[0]
	id := ID(avail)
	sample := func(name, window, replica string, v float64) promql.Sample {
		l := labels.FromStrings(labels.MetricName, name, labelID, id, labelWindow, window, "replica", replica)
		return promql.Sample{Metric: l, F: v}
	}
	store := promql.Vector{
		sample(SLIErrorMetric+"5m", "5m", "a", 0.01), sample(SLIErrorMetric+"5m", "5m", "b", 0.05),
		sample(PeriodBudgetRemainingMetric, "30d", "a", 0.4), sample(PeriodBudgetRemainingMetric, "30d", "b", 0.2),
	}
	local := promql.Vector{sample(SLIErrorMetric+"5m", "5m", "", 0.5)}
	var storeErr error
	var storeVec promql.Vector
	q := metrics.PreferQuery(
		func(context.Context, string, time.Time) (promql.Vector, error) { return storeVec, storeErr },
		func(context.Context, string, time.Time) (promql.Vector, error) { return local, nil })
	mg, err := NewManager(r, q, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := mg.Update(model.NewMesh(model.Objects{SLOs: []*model.SLO{avail}})); err != nil {
		t.Fatal(err)
	}
	sli := func() (float64, *float64) {
		st, err := mg.Statuses(t.Context())
		if err != nil || len(st) != 1 {
			t.Fatalf("%v %v", st, err)
		}
		return st[0].SLI["5m"], st[0].ErrorBudgetRemaining
	}
	storeVec = store
	if v, budget := sli(); v != 0.05 || budget == nil || *budget != 0.2 {
		t.Errorf("from the store: SLI %v budget %v, want the worst replica's 0.05 and 0.2", v, budget)
	}
	storeVec = nil
	if v, _ := sli(); v != 0.5 {
		t.Errorf("the store has nothing: SLI %v, want the local 0.5", v)
	}
	storeVec, storeErr = store, errors.New("metrics store http://prometheus:9090: connection refused")
	if st, err := mg.Statuses(t.Context()); err == nil || !strings.Contains(err.Error(), "metrics store http://prometheus:9090") {
		t.Errorf("the store fails: %v %v, want its error (a replica's own share is not the mesh's)", st, err)
	}
}
