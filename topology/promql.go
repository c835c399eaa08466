package topology

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
)

// Querier runs PromQL instant queries; the Graph uses it for windows the
// in-memory aggregates do not hold, or always when Config.PreferQuerier.
type Querier interface {
	// Query evaluates q at ts and returns its instant vector.
	Query(ctx context.Context, q string, ts time.Time) (promql.Vector, error)
}

// EngineQuerier is a Querier over a PromQL engine and a storage, such as
// telemetry/metrics' Engine.PromQL() and Storage.Queryable().
type EngineQuerier struct {
	Engine    *promql.Engine
	Queryable storage.Queryable
}

// Query evaluates q at ts.
func (e EngineQuerier) Query(ctx context.Context, q string, ts time.Time) (promql.Vector, error) {
	qry, err := e.Engine.NewInstantQuery(ctx, e.Queryable, nil, q, ts)
	if err != nil {
		return nil, fmt.Errorf("topology: %s: %w", q, err)
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return nil, fmt.Errorf("topology: %s: %w", q, res.Err)
	}
	v, err := res.Vector()
	if err != nil {
		return nil, fmt.Errorf("topology: %s: %w", q, err)
	}
	return v, nil
}

// groupBy is what Kiali groups the istio_* rates by, plus the labels the
// graph's appenders read (principals, security policy, flags).
const groupBy = "source_cluster,source_workload_namespace,source_workload,source_app,source_version,source_principal," +
	"destination_cluster,destination_service,destination_service_name,destination_service_namespace," +
	"destination_workload_namespace,destination_workload,destination_app,destination_version,destination_principal," +
	"request_protocol,response_code,grpc_response_status,response_flags,connection_security_policy"

// countOnce selects each request once (DESIGN.md): reporter=source, plus
// reporter=destination for callers outside the mesh. With namespaces it
// selects only series touching them (as the graph's namespace filter
// does), so the cost follows the series touched; "or" matches whole label
// sets, so a series selected twice counts once.
func countOnce(metric string, d time.Duration, namespaces []string) string {
	w := strconv.FormatInt(int64(d.Seconds()), 10) + "s"
	sels := []string{`reporter="source"`, `reporter="destination",source_workload="unknown"`}
	if len(namespaces) > 0 {
		re := make([]string, len(namespaces))
		for i, ns := range namespaces {
			re[i] = regexp.QuoteMeta(ns)
		}
		m := strconv.Quote(strings.Join(re, "|"))
		var ns []string
		for _, sel := range sels {
			for _, l := range []string{"source_workload_namespace", "destination_service_namespace", "destination_workload_namespace"} {
				ns = append(ns, sel+","+l+"=~"+m)
			}
		}
		sels = ns
	}
	parts := make([]string, len(sels))
	for i, sel := range sels {
		parts[i] = fmt.Sprintf("rate(%s{%s}[%s])", metric, sel, w)
	}
	return strings.Join(parts, " or ")
}

// promField says where one query's values go in a row.
type promField struct {
	metric string
	le     bool
	set    func(v *rowVals, le float64, x float64)
}

var promFields = []promField{
	{metric: "istio_requests_total", set: func(v *rowVals, _, x float64) { v.Requests += x }},
	{metric: "istio_request_duration_milliseconds_sum", set: func(v *rowVals, _, x float64) { v.DurSum += x }},
	{metric: "istio_request_duration_milliseconds_bucket", le: true, set: setBucket},
	{metric: "istio_request_bytes_sum", set: func(v *rowVals, _, x float64) { v.ReqBytes += x }},
	{metric: "istio_response_bytes_sum", set: func(v *rowVals, _, x float64) { v.RespBytes += x }},
	{metric: "istio_tcp_sent_bytes_total", set: func(v *rowVals, _, x float64) { v.TCPSent += x }},
	{metric: "istio_tcp_received_bytes_total", set: func(v *rowVals, _, x float64) { v.TCPRecv += x }},
}

// setBucket stores a cumulative bucket rate; decumulate turns them into
// per-bucket rates once all are in.
func setBucket(v *rowVals, le, x float64) {
	i := numBuckets - 1
	if !math.IsInf(le, 1) {
		i = bucketIndex(le)
	}
	v.Hist[i] += x
}

// decumulate turns cumulative bucket values into per-bucket ones.
func decumulate(h *[numBuckets]float64) {
	for i := numBuckets - 1; i > 0; i-- {
		h[i] = max(h[i]-h[i-1], 0)
	}
}

// promRows asks the Querier for the rates of every series over [end-d,
// end], the same rates Kiali queries, one query per metric.
func (g *Graph) promRows(ctx context.Context, end time.Time, d time.Duration, namespaces []string) ([]row, error) {
	acc := make(map[rowKey]*rowVals)
	for _, f := range promFields {
		by := groupBy
		if f.le {
			by += ",le"
		}
		q := fmt.Sprintf("sum by (%s) (%s)", by, countOnce(f.metric, d, namespaces))
		vec, err := g.q.Query(ctx, q, end)
		if err != nil {
			return nil, err
		}
		for _, s := range vec {
			k := keyOfLabels(s.Metric)
			v := acc[k]
			if v == nil {
				v = new(rowVals)
				acc[k] = v
			}
			le := 0.0
			if f.le {
				le, _ = strconv.ParseFloat(s.Metric.Get("le"), 64)
			}
			f.set(v, le, s.F)
		}
	}
	rows := make([]row, 0, len(acc))
	for k, v := range acc {
		decumulate(&v.Hist)
		rows = append(rows, row{key: k, val: *v})
	}
	return rows, nil
}

// keyOfLabels is the row key of a series, as keyOf is of a request.
func keyOfLabels(ls labels.Labels) rowKey {
	k := rowKey{
		Src: peer{
			Cluster: ls.Get("source_cluster"), Namespace: ls.Get("source_workload_namespace"),
			Workload: ls.Get("source_workload"), App: ls.Get("source_app"),
			Version: ls.Get("source_version"), Principal: ls.Get("source_principal"),
		},
		Dst: peer{
			Cluster: ls.Get("destination_cluster"), Namespace: ls.Get("destination_workload_namespace"),
			Workload: ls.Get("destination_workload"), App: ls.Get("destination_app"),
			Version: ls.Get("destination_version"), Principal: ls.Get("destination_principal"),
		},
		SvcHost:  ls.Get("destination_service"),
		SvcName:  ls.Get("destination_service_name"),
		SvcNS:    ls.Get("destination_service_namespace"),
		Protocol: ls.Get("request_protocol"),
		Flags:    ls.Get("response_flags"),
		Security: ls.Get("connection_security_policy"),
	}
	switch k.Protocol {
	case "tcp":
		k.TCP = true
	case "grpc":
		code, _ := strconv.Atoi(ls.Get("response_code"))
		k.Code = codeOf(ls.Get("grpc_response_status"), code)
	default:
		code, _ := strconv.Atoi(ls.Get("response_code"))
		k.Code = codeOf("", code)
	}
	return k
}
