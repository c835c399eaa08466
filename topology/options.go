package topology

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Graph types, as Kiali's graphType parameter.
const (
	GraphTypeApp          = "app"
	GraphTypeVersionedApp = "versionedApp"
	GraphTypeWorkload     = "workload"
	GraphTypeService      = "service"
)

// Appender names, as Kiali's appenders parameter.
const (
	AppenderDeadNode       = "deadNode"
	AppenderIdleNode       = "idleNode"
	AppenderResponseTime   = "responseTime"
	AppenderSecurityPolicy = "securityPolicy"
	AppenderThroughput     = "throughput"
	AppenderHealth         = "health"
	// AppenderIstio marks the nodes routes and canaries apply to (hasVS,
	// hasTrafficShifting, hasRequestRouting, canary); it needs the mesh
	// registry (SetMesh).
	AppenderIstio = "istio"
)

// defaultAppenders run when the appenders parameter is absent: Kiali runs
// all of them then, but idleNode walks the whole in-memory history, so
// it runs only when asked for (Kiali's UI asks only with "show idle nodes").
var defaultAppenders = []string{AppenderDeadNode, AppenderIstio, AppenderResponseTime, AppenderSecurityPolicy, AppenderThroughput, AppenderHealth}

// knownAppenders are the ones glassmesh implements; Kiali's others
// (serviceEntry, sidecarsCheck, workloadEntry, aggregateNode, ambient) are
// accepted and ignored, so Kiali's UI URLs work.
var knownAppenders = []string{AppenderDeadNode, AppenderIdleNode, AppenderResponseTime, AppenderSecurityPolicy, AppenderThroughput, AppenderHealth,
	AppenderIstio, "serviceEntry", "sidecarsCheck", "workloadEntry", "aggregateNode", "ambient"}

// Options are the parameters of one graph, Kiali's names and defaults.
type Options struct {
	Namespaces         []string // empty: every namespace
	GraphType          string
	Duration           time.Duration
	QueryTime          time.Time // zero: now
	Appenders          map[string]bool
	InjectServiceNodes bool
	BoxBy              []string // app | namespace | cluster
	RateGRPC           string   // requests | sent | received | total | none
	RateHTTP           string   // requests | none
	RateTCP            string   // sent | received | total | none
	ResponseTime       string   // avg | 50 | 95 | 99
	ThroughputType     string   // request | response
	Refresh            time.Duration
}

// DefaultOptions are Kiali's backend defaults.
func DefaultOptions() Options {
	o := Options{
		GraphType: GraphTypeWorkload, Duration: 10 * time.Minute, Appenders: map[string]bool{},
		RateGRPC: "requests", RateHTTP: "requests", RateTCP: "sent",
		ResponseTime: "95", ThroughputType: "response", Refresh: DefaultRefresh,
	}
	for _, a := range defaultAppenders {
		o.Appenders[a] = true
	}
	return o
}

// ParseOptions reads Kiali's graph parameters from q; a bad value is an
// error naming the parameter.
func ParseOptions(q url.Values) (Options, error) {
	o := DefaultOptions()
	var err error
	if v := q.Get("namespaces"); v != "" {
		o.Namespaces = splitList(v)
	}
	if v := q.Get("graphType"); v != "" {
		if !slices.Contains([]string{GraphTypeApp, GraphTypeVersionedApp, GraphTypeWorkload, GraphTypeService}, v) {
			return o, fmt.Errorf("graphType: must be app, versionedApp, workload or service, got %q", v)
		}
		o.GraphType = v
	}
	if o.Duration, err = durationParam(q, "duration", o.Duration); err != nil {
		return o, err
	}
	if o.Refresh, err = durationParam(q, "refresh", o.Refresh); err != nil {
		return o, err
	}
	if v := q.Get("queryTime"); v != "" {
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil || sec <= 0 {
			return o, fmt.Errorf("queryTime: must be unix seconds, got %q", v)
		}
		o.QueryTime = time.Unix(sec, 0)
	}
	if q.Has("appenders") {
		o.Appenders = map[string]bool{}
		for _, a := range splitList(q.Get("appenders")) {
			if !slices.Contains(knownAppenders, a) {
				return o, fmt.Errorf("appenders: unknown appender %q", a)
			}
			o.Appenders[a] = true
		}
	}
	if v := q.Get("injectServiceNodes"); v != "" {
		if o.InjectServiceNodes, err = strconv.ParseBool(v); err != nil {
			return o, fmt.Errorf("injectServiceNodes: must be true or false, got %q", v)
		}
	}
	if err := o.parseEnums(q); err != nil {
		return o, err
	}
	return o, nil
}

// parseEnums reads the parameters that take one of a few words.
func (o *Options) parseEnums(q url.Values) error {
	for _, p := range []struct {
		name string
		dst  *string
		ok   []string
	}{
		{"rateGrpc", &o.RateGRPC, []string{"requests", "sent", "received", "total", "none"}},
		{"rateHttp", &o.RateHTTP, []string{"requests", "none"}},
		{"rateTcp", &o.RateTCP, []string{"sent", "received", "total", "none"}},
		{"responseTime", &o.ResponseTime, []string{"avg", "50", "95", "99"}},
		{"throughputType", &o.ThroughputType, []string{"request", "response"}},
	} {
		if v := q.Get(p.name); v != "" {
			if !slices.Contains(p.ok, v) {
				return fmt.Errorf("%s: must be one of %s, got %q", p.name, strings.Join(p.ok, ", "), v)
			}
			*p.dst = v
		}
	}
	for _, b := range splitList(q.Get("boxBy")) {
		if !slices.Contains([]string{"app", "namespace", "cluster"}, b) {
			return fmt.Errorf("boxBy: must be app, namespace and/or cluster, got %q", b)
		}
		o.BoxBy = append(o.BoxBy, b)
	}
	return nil
}

// durationParam reads a Go duration ("10m", "600s") or, like Kiali,
// plain seconds.
func durationParam(q url.Values, name string, def time.Duration) (time.Duration, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		sec, err2 := strconv.ParseInt(v, 10, 64)
		if err2 != nil {
			return 0, fmt.Errorf("%s: must be a duration such as 10m or 600s, got %q", name, v)
		}
		d = time.Duration(sec) * time.Second
	}
	if d <= 0 || (name == "duration" && d < time.Second) {
		return 0, fmt.Errorf("%s: must be at least 1s, got %q", name, v)
	}
	return d, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// key is a canonical form of the options: the identity under which
// streams and the cache share results.
func (o *Options) key() string {
	ns := slices.Clone(o.Namespaces)
	slices.Sort(ns)
	var apps []string
	for a, on := range o.Appenders {
		if on {
			apps = append(apps, a)
		}
	}
	slices.Sort(apps)
	var at int64
	if !o.QueryTime.IsZero() {
		at = o.QueryTime.Unix()
	}
	return fmt.Sprintf("%s|%s|%d|%s|%t|%s|%s|%s|%s|%s|%s|%d|%d", strings.Join(ns, ","), o.GraphType, o.Duration,
		strings.Join(apps, ","), o.InjectServiceNodes, strings.Join(o.BoxBy, ","), o.RateGRPC, o.RateHTTP,
		o.RateTCP, o.ResponseTime, o.ThroughputType, o.Refresh, at)
}
