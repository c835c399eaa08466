package model

import (
	"slices"
	"strings"
)

// lbAlgorithms are the values of loadBalancer.simple.
var lbAlgorithms = []string{LBRoundRobin, LBLeastRequest, LBRandom}

// trafficPolicy checks a route's spec.trafficPolicy. svc is the route's
// service, nil when it is unknown.
func (v *validator) trafficPolicy(r *TrafficRoute, svc *Service) {
	tp := r.Spec.TrafficPolicy
	if tp == nil {
		return
	}
	const at = "spec.trafficPolicy"
	if tp.LoadBalancer != nil {
		v.loadBalancer(r.Origin, at+".loadBalancer", tp.LoadBalancer)
	}
	if cp := tp.ConnectionPool; cp != nil {
		if cp.TCP != nil {
			v.positive(r.Origin, at+".connectionPool.tcp.connectTimeout", cp.TCP.ConnectTimeout)
		}
		if cp.HTTP != nil {
			v.positive(r.Origin, at+".connectionPool.http.idleTimeout", cp.HTTP.IdleTimeout)
		}
	}
	if tp.OutlierDetection != nil {
		v.outlierDetection(r.Origin, at+".outlierDetection", tp.OutlierDetection, svc)
	}
	if rl := tp.RateLimit; rl != nil {
		switch {
		case rl.RequestsPerSecond == 0:
			v.errorf(r.Origin, at+".rateLimit.requestsPerSecond", "required: a number of requests per second above 0")
		case rl.Burst != 0 && rl.Burst < rl.RequestsPerSecond:
			v.errorf(r.Origin, at+".rateLimit.burst", "%d is less than requestsPerSecond (%d): the bucket could never hold a second's requests", rl.Burst, rl.RequestsPerSecond)
		}
	}
	if m := tp.Mirror; m != nil {
		switch {
		case m.Subset == "":
			v.errorf(r.Origin, at+".mirror.subset", "required: %s", subsetNames(r))
		case r.Subset(m.Subset) == nil:
			v.errorf(r.Origin, at+".mirror.subset", "subset %s is not defined in spec.subsets (%s)", m.Subset, subsetNames(r))
		}
		if m.Percent != nil {
			v.percent(r.Origin, at+".mirror.percent", *m.Percent)
		}
	}
}

func (v *validator) loadBalancer(o Origin, at string, lb *LoadBalancer) {
	if lb.Simple != "" && !slices.Contains(lbAlgorithms, lb.Simple) {
		v.errorf(o, at+".simple", "%s", oneOf("simple", lb.Simple, lbAlgorithms))
	}
	ch := lb.ConsistentHash
	if ch == nil {
		if lb.Simple == "" {
			v.errorf(o, at, "set simple or consistentHash")
		}
		return
	}
	if lb.Simple != "" {
		v.errorf(o, at, "set only one of simple and consistentHash")
	}
	at += ".consistentHash"
	switch {
	case ch.HTTPHeaderName == "" && !ch.UseSourceIP && !o.failed(at+".useSourceIp") && !o.failed(at+".httpHeaderName"):
		v.errorf(o, at, "set httpHeaderName or useSourceIp")
	case ch.HTTPHeaderName != "" && ch.UseSourceIP:
		v.errorf(o, at, "set only one of httpHeaderName and useSourceIp")
	case ch.HTTPHeaderName != "" && !validHeaderName(ch.HTTPHeaderName):
		v.errorf(o, at+".httpHeaderName", "%q is not an HTTP header name", ch.HTTPHeaderName)
	}
	if ch.MinimumRingSize > MaxRingSize {
		v.errorf(o, at+".minimumRingSize", "%d is more than %d", ch.MinimumRingSize, MaxRingSize)
	}
}

// outlierDetection checks the durations and percentages, and warns when no
// algorithm that proxyless gRPC clients run is set on a gRPC service.
func (v *validator) outlierDetection(o Origin, at string, od *OutlierDetection, svc *Service) {
	v.positive(o, at+".interval", od.Interval)
	v.positive(o, at+".baseEjectionTime", od.BaseEjectionTime)
	v.atMost100(o, at+".maxEjectionPercent", od.MaxEjectionPercent)
	if sr := od.SuccessRate; sr != nil {
		v.atMost100(o, at+".successRate.enforcingPercent", sr.EnforcingPercent)
	}
	if fp := od.FailurePercentage; fp != nil {
		v.atMost100(o, at+".failurePercentage.threshold", fp.Threshold)
		v.atMost100(o, at+".failurePercentage.enforcingPercent", fp.EnforcingPercent)
	}
	if od.SuccessRate == nil && od.FailurePercentage == nil && svc != nil && slices.ContainsFunc(svc.Spec.Ports, func(p ServicePort) bool {
		return p.Protocol == ProtocolGRPC
	}) {
		v.warnf(o, at, "proxyless gRPC clients eject only by successRate or failurePercentage (grpc-go has no consecutive-error ejection); set one of them for %s's proxyless callers", svc.Name)
	}
}

// positive reports a negative duration, or a zero one written in the file
// (an unset duration takes its default).
func (v *validator) positive(o Origin, at string, d Duration) {
	if d.Duration < 0 || d.Duration == 0 && o.written(at) {
		v.errorf(o, at, "must be above 0 (leave it out for the default)")
	}
}

func (v *validator) atMost100(o Origin, at string, n uint32) {
	if n > 100 {
		v.errorf(o, at, "%d is out of range 0..100", n)
	}
}

// validHeaderName says whether s is an HTTP header name (an RFC 9110 token)
// that is not a pseudo-header.
func validHeaderName(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r)
	})
}
