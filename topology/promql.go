package topology

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

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

// promField says where one query's values go in a row, and whether a
// graph's options need them.
type promField struct {
	metric string
	le     bool
	need   func(o *Options) bool
	set    func(v *rowVals, le float64, x float64)
}

func always(*Options) bool { return true }

// needResponseTime is whether the responseTime appender reads quantiles
// (want true) or the average (want false).
func needResponseTime(quantile bool) func(o *Options) bool {
	return func(o *Options) bool {
		return o.Appenders[AppenderResponseTime] && (o.ResponseTime != "avg") == quantile
	}
}

// needBytes is whether the gRPC rate or the throughput appender reads
// request (or response) bytes.
func needBytes(rate, throughput string) func(o *Options) bool {
	return func(o *Options) bool {
		return o.RateGRPC == rate || o.RateGRPC == "total" || (o.Appenders[AppenderThroughput] && o.ThroughputType == throughput)
	}
}

// needTCP: both TCP directions count for dropping series without traffic.
func needTCP(o *Options) bool { return o.RateTCP != "none" }

var promFields = []promField{
	{metric: "istio_requests_total", need: always, set: func(v *rowVals, _, x float64) { v.Requests += x }},
	{metric: "istio_request_duration_milliseconds_sum", need: needResponseTime(false), set: func(v *rowVals, _, x float64) { v.DurSum += x }},
	{metric: "istio_request_duration_milliseconds_bucket", le: true, need: needResponseTime(true), set: setBucket},
	{metric: "istio_request_bytes_sum", need: needBytes("sent", "request"), set: func(v *rowVals, _, x float64) { v.ReqBytes += x }},
	{metric: "istio_response_bytes_sum", need: needBytes("received", "response"), set: func(v *rowVals, _, x float64) { v.RespBytes += x }},
	{metric: "istio_tcp_sent_bytes_total", need: needTCP, set: func(v *rowVals, _, x float64) { v.TCPSent += x }},
	{metric: "istio_tcp_received_bytes_total", need: needTCP, set: func(v *rowVals, _, x float64) { v.TCPRecv += x }},
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
// end], the same rates Kiali queries: one query per metric the options
// need, all at once (a remote store answers them in parallel).
func (g *Graph) promRows(ctx context.Context, o *Options, end time.Time) ([]row, error) {
	vecs := make([]promql.Vector, len(promFields))
	errs := make([]error, len(promFields))
	var wg sync.WaitGroup
	for i, f := range promFields {
		if !f.need(o) {
			continue
		}
		by := groupBy
		if f.le {
			by += ",le"
		}
		q := fmt.Sprintf("sum by (%s) (%s)", by, countOnce(f.metric, o.Duration, o.Namespaces))
		wg.Go(func() {
			if vecs[i], errs[i] = g.q(ctx, q, end); errs[i] != nil {
				errs[i] = fmt.Errorf("topology: the %s query: %w", f.metric, errs[i])
			}
		})
	}
	wg.Wait()
	// The first failure says it (a store that is down fails them all).
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	acc := make(map[rowKey]*rowVals)
	for i, f := range promFields {
		for _, s := range vecs[i] {
			k, leLabel := keyOfLabels(s.Metric)
			v := acc[k]
			if v == nil {
				v = new(rowVals)
				acc[k] = v
			}
			le := 0.0
			if f.le {
				le, _ = strconv.ParseFloat(leLabel, 64)
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

// keyOfLabels is the row key of a series, as keyOf is of a request. One
// pass over the labels (Get walks them each time) and the le bound.
func keyOfLabels(ls labels.Labels) (rowKey, string) {
	var k rowKey
	var code, grpcStatus, le string
	ls.Range(func(l labels.Label) {
		switch l.Name {
		case "source_cluster":
			k.Src.Cluster = l.Value
		case "source_workload_namespace":
			k.Src.Namespace = l.Value
		case "source_workload":
			k.Src.Workload = l.Value
		case "source_app":
			k.Src.App = l.Value
		case "source_version":
			k.Src.Version = l.Value
		case "source_principal":
			k.Src.Principal = l.Value
		case "destination_cluster":
			k.Dst.Cluster = l.Value
		case "destination_workload_namespace":
			k.Dst.Namespace = l.Value
		case "destination_workload":
			k.Dst.Workload = l.Value
		case "destination_app":
			k.Dst.App = l.Value
		case "destination_version":
			k.Dst.Version = l.Value
		case "destination_principal":
			k.Dst.Principal = l.Value
		case "destination_service":
			k.SvcHost = l.Value
		case "destination_service_name":
			k.SvcName = l.Value
		case "destination_service_namespace":
			k.SvcNS = l.Value
		case "request_protocol":
			k.Protocol = l.Value
		case "response_flags":
			k.Flags = l.Value
		case "connection_security_policy":
			k.Security = l.Value
		case "response_code":
			code = l.Value
		case "grpc_response_status":
			grpcStatus = l.Value
		case "le":
			le = l.Value
		}
	})
	switch k.Protocol {
	case "tcp":
		k.TCP = true
	case "grpc":
		c, _ := strconv.Atoi(code)
		k.Code = codeOf(grpcStatus, c)
	default:
		c, _ := strconv.Atoi(code)
		k.Code = codeOf("", c)
	}
	return k, le
}
